"""Model and training: normalization travels with the model, determinism, early stop, divergence."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cpo_synth import CANDIDATES, COST_BPS, SMALL, WARMUP, regime_market

from ludus.cpo.labels import build_labels
from ludus.cpo.model import CPOModel, ModelConfig
from ludus.cpo.training import TrainingDiverged, fit
from ludus.errors import InsufficientDataError


@pytest.fixture(scope="module")
def data():
    from cpo_synth import SignMomentum

    market = regime_market(T=700, seed=4, phi=0.35)
    labels = build_labels(SignMomentum(), market.bars, CANDIDATES, cost_bps=COST_BPS)
    return market, labels


def _cfg(**kw) -> ModelConfig:
    return ModelConfig(**{**SMALL, "epochs": 3, **kw})


def test_normalization_buffers_are_training_statistics_and_saved(data) -> None:
    market, labels = data
    rows = np.arange(WARMUP, 500)
    model = fit(_cfg(), market.conditions, labels, rows, seed=0)
    np.testing.assert_allclose(model.cond_mean.numpy(), market.conditions[rows].mean(0), rtol=1e-4)
    np.testing.assert_allclose(model.theta_std.numpy(), labels.theta.std(0), rtol=1e-5)
    lab = labels.label_returns[:, rows].numpy()
    assert model.label_std.item() == pytest.approx(float(lab.std()), rel=1e-4)
    state = model.state_dict()
    for name in ("cond_mean", "cond_std", "theta_mean", "theta_std", "label_mean", "label_std"):
        assert name in state
    clone = CPOModel.from_state(model.hparams(), state)
    c = torch.from_numpy(market.conditions[rows[:7]])
    t = torch.from_numpy(labels.theta[:7])
    p = labels.position_inputs(rows[:7])[torch.arange(7), torch.arange(7)]  # candidate i at bar i: [7, 2]
    assert torch.equal(clone(c, t, p), model(c, t, p))
    # the output is in raw return units: the scale of the labels, not of the standardized target
    assert model(c, t, p).abs().max().item() < 20 * model.label_std.item()


def test_training_is_deterministic_given_the_seed_and_depends_on_it(data) -> None:
    market, labels = data
    rows = np.arange(WARMUP, 500)
    a = fit(_cfg(dropout=0.1), market.conditions, labels, rows, seed=5)
    b = fit(_cfg(dropout=0.1), market.conditions, labels, rows, seed=5)
    c = fit(_cfg(dropout=0.1), market.conditions, labels, rows, seed=6)
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
    assert not torch.equal(a.net[0].weight, c.net[0].weight)
    # fit leaves the caller's global RNG alone
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    fit(_cfg(epochs=1), market.conditions, labels, rows, seed=5)
    assert torch.equal(torch.rand(3), expected)


def test_should_stop_hook_sees_every_epoch_and_stops(data) -> None:
    market, labels = data
    calls: list[tuple[int, dict]] = []

    def hook(epoch, metrics):
        calls.append((epoch, dict(metrics)))
        return epoch == 1

    fit(
        _cfg(epochs=10),
        market.conditions,
        labels,
        np.arange(WARMUP, 400),
        seed=0,
        should_stop=hook,
        val_rows=np.arange(420, 600),
    )
    assert [e for e, _ in calls] == [0, 1]
    assert set(calls[0][1]) == {"train_loss", "val_loss"}


def test_patience_stops_early_and_keeps_the_best_validation_weights(data) -> None:
    market, labels = data
    seen: list[float] = []
    fit(
        _cfg(epochs=60, patience=2, lr=3e-2),
        market.conditions,
        labels,
        np.arange(WARMUP, 300),
        seed=0,
        val_rows=np.arange(320, 650),
        should_stop=lambda e, m: seen.append(m["val_loss"]) or False,
    )
    assert len(seen) < 60
    best = int(np.argmin(seen))
    assert len(seen) - 1 - best == 2  # stopped exactly `patience` epochs after the best one


def test_an_overflowing_loss_raises_training_diverged(data) -> None:
    market, labels = data
    with pytest.raises(TrainingDiverged, match="loss became"):
        fit(_cfg(loss="rank", rank_weight=1e39), market.conditions, labels, np.arange(WARMUP, 300), seed=0)


def test_only_warm_up_rows_is_insufficient_data(data) -> None:
    market, labels = data
    with pytest.raises(InsufficientDataError) as err:
        fit(_cfg(), market.conditions, labels, np.arange(0, WARMUP), seed=0)
    assert err.value.field == "lookback"


def test_rank_loss_trains(data) -> None:
    market, labels = data
    model = fit(_cfg(loss="rank"), market.conditions, labels, np.arange(WARMUP, 400), seed=0)
    out = model(torch.from_numpy(market.conditions[500:510]), torch.from_numpy(labels.theta[:10]), torch.zeros(10, 2))
    assert torch.isfinite(out).all()


def test_search_space_is_declarative_and_suggestable() -> None:
    space = ModelConfig.search_space()
    assert set(space) <= set(ModelConfig.model_fields)
    for spec in space.values():
        assert spec["type"] in {"int", "float", "categorical"}
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    cfg = ModelConfig.suggest(study.ask(), base=ModelConfig(patience=3))
    assert cfg.patience == 3 and cfg.loss in ("mse", "rank")
    with pytest.raises(ValueError):
        ModelConfig(loss="hinge")


def test_split_first_layer_equals_the_concatenated_rows(data) -> None:
    """forward_block (no [B*K, F+D+2] input built) is forward_normalized on the concatenated rows."""
    market, labels = data
    model = fit(_cfg(), market.conditions, labels, np.arange(WARMUP, 400), seed=1)
    rows = np.arange(WARMUP, WARMUP + 9)
    cond = torch.from_numpy(market.conditions[rows].astype(np.float32))
    theta = torch.from_numpy(labels.theta)
    pos = labels.position_inputs(rows)
    b, k = cond.shape[0], theta.shape[0]
    rows_in = (
        cond.unsqueeze(1).expand(b, k, -1).reshape(b * k, -1),
        theta.unsqueeze(0).expand(b, k, -1).reshape(b * k, -1),
        pos.reshape(b * k, -1),
    )
    with torch.no_grad():
        torch.testing.assert_close(
            model.forward_block(cond, theta, pos),
            model.forward_normalized(*rows_in).reshape(b, k),
            rtol=1e-5,
            atol=1e-5,
        )


def test_candidates_subsampled_per_step_when_k_is_large(data) -> None:
    """With fewer candidates per step than K the fit still learns every candidate's normalization, runs
    deterministically, and differs from the full-K fit (the steps saw other rows)."""
    market, labels = data
    rows = np.arange(WARMUP, 500)
    k = labels.n_candidates
    assert k > 2
    a = fit(_cfg(candidates_per_step=2), market.conditions, labels, rows, seed=3)
    b = fit(_cfg(candidates_per_step=2), market.conditions, labels, rows, seed=3)
    full = fit(_cfg(), market.conditions, labels, rows, seed=3)
    assert torch.equal(a.net[0].weight, b.net[0].weight)
    assert not torch.equal(a.net[0].weight, full.net[0].weight)
    assert all(torch.isfinite(p).all() for p in a.parameters())

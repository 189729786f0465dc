"""What stands between the rule and its power: the bootstrap SE of a Sharpe difference checked against the
analytic Jobson-Korkie/Memmel SE, the policy's switching cost (churn falls as the cost rises), and the
learners trained to convergence on a held-out tail rather than for a fixed number of epochs."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
import torch
from cpo_synth import CANDIDATES, CANDIDATES_WITH_FLAT, COST_BPS, FLAT, WARMUP, SignMomentum, regime_market

from ludus.cpo.bootstrap import sharpe_difference
from ludus.cpo.labels import build_labels
from ludus.cpo.model import ModelConfig
from ludus.cpo.policy import choose, cost_aware_pick, path_from_choices, score_matrix, switching_choices
from ludus.cpo.reinforce import PolicyGradientConfig, expected_reward, fit_softmax_policy
from ludus.cpo.sharpe import annualized_sharpe, sharpe_difference_se
from ludus.cpo.training import MIN_VALIDATION_BARS, fit, holdout_tail

BPY = 252.0


@pytest.mark.parametrize(("rho", "seed"), [(0.0, 1), (0.5, 2), (0.9, 3), (0.5, 4)])
def test_bootstrap_se_agrees_with_jobson_korkie_memmel_on_iid_returns(rho: float, seed: int) -> None:
    """On i.i.d. normal returns (where the analytic formula is exact to first order) the rule's paired
    stationary bootstrap and Memmel's SE of a Sharpe difference agree within 25%."""
    rng = np.random.default_rng(seed)
    n = 2000
    e = rng.normal(0.0, 1.0, (2, n))
    champion = 0.01 * e[0] + 0.5 * 0.01 / math.sqrt(BPY)
    challenger = 0.01 * (rho * e[0] + math.sqrt(1 - rho**2) * e[1]) + 1.5 * 0.01 / math.sqrt(BPY)
    boot = sharpe_difference(challenger[None, :], champion, bars_per_year=BPY, samples=1000, seed=seed)
    analytic = sharpe_difference_se(challenger, champion, BPY)
    print(f"rho {rho}: bootstrap {boot.se[0]:.3f}, Jobson-Korkie/Memmel {analytic:.3f}")
    assert boot.se[0] == pytest.approx(analytic, rel=0.25)
    # the formula itself: sqrt(2 (1 - rho) / n) annualized when both Sharpe ratios are near 0
    assert analytic == pytest.approx(math.sqrt(2 * (1 - rho) / n * BPY), rel=0.1 if rho < 0.9 else 0.3)


def test_bootstrap_se_agrees_with_jobson_korkie_memmel_on_strategy_paths() -> None:
    """Two sign-momentum paths on an i.i.d. market (trading rules' returns: i.i.d.-ish, positions from the past)."""
    market = regime_market(T=2600, seed=11, constant_phi=0.0)
    labels = build_labels(SignMomentum(), market.bars, CANDIDATES, cost_bps=COST_BPS, chunk_size=5)
    idx = np.arange(WARMUP, labels.n_bars - 1)
    a = path_from_choices(labels, torch.full((idx.size,), 0, dtype=torch.long), idx, COST_BPS).returns.double().numpy()
    b = path_from_choices(labels, torch.full((idx.size,), 4, dtype=torch.long), idx, COST_BPS).returns.double().numpy()
    boot = sharpe_difference(a[None, :], b, bars_per_year=BPY, samples=1000, seed=0)
    analytic = sharpe_difference_se(a, b, BPY)
    print(f"bootstrap {boot.se[0]:.3f}, Jobson-Korkie/Memmel {analytic:.3f}")
    assert boot.se[0] == pytest.approx(analytic, rel=0.25)


def _churn(labels, choices, idx) -> tuple[float, int]:
    """(turnover: the sum of |position changes|, θ switches)."""
    pos = labels.positions[choices, torch.from_numpy(idx)].double().numpy()
    ch = choices.numpy()
    return float(np.abs(np.diff(pos)).sum()), int(np.count_nonzero(ch[1:] != ch[:-1]))


def test_churn_falls_as_the_switching_cost_rises() -> None:
    """The policy moves from the held position only when the predicted gain exceeds the cost of the move, in
    the same units (a return): raising the cost must lower its turnover, and a prohibitive cost must stop it."""
    market = regime_market(T=2000, seed=5)
    labels = build_labels(SignMomentum(), market.bars, CANDIDATES, cost_bps=COST_BPS, chunk_size=5)
    config = ModelConfig(hidden=16, layers=1, dropout=0.0, epochs=6, batch_size=512, lr=5e-3, validation_fraction=0.0)
    model = fit(config, market.conditions, labels, np.arange(WARMUP, 1400), seed=0)
    idx = np.arange(1400, labels.n_bars - 1)
    seen = []
    for cost in (0.0, 2.0, 10.0, 50.0, 1000.0):
        ch = choose(model, market.conditions, labels, idx, cost_bps=cost)
        seen.append((cost, *_churn(labels, ch, idx)))
    print(seen)
    turnover = [t for _, t, _ in seen]
    assert all(later <= earlier for earlier, later in pairwise(turnover)), seen
    assert turnover[3] < 0.5 * turnover[0] and turnover[-1] == 0.0, seen


def test_the_held_theta_is_kept_when_it_takes_the_chosen_position() -> None:
    """θ switches are changes of course: hopping to another θ with the same position would change no return."""
    market = regime_market(T=2000, seed=5)
    labels = build_labels(SignMomentum(), market.bars, CANDIDATES, cost_bps=COST_BPS, chunk_size=5)
    config = ModelConfig(hidden=16, layers=1, dropout=0.0, epochs=6, batch_size=512, lr=5e-3, validation_fraction=0.0)
    model = fit(config, market.conditions, labels, np.arange(WARMUP, 1400), seed=0)
    idx = np.arange(1400, labels.n_bars - 1)
    scores = score_matrix(model, market.conditions, labels, idx)
    sticky = switching_choices(scores, labels, idx, COST_BPS)
    # the plain bar-by-bar argmax, without keeping the held θ
    inputs = labels.position_inputs(idx).numpy()
    plain, held = [], 0.0
    for i in range(idx.size):
        k, _ = cost_aware_pick(scores[i].numpy(), inputs[i], held, COST_BPS)
        plain.append(k)
        held = float(inputs[i, k, 0])
    plain_t = torch.tensor(plain)
    a, b = path_from_choices(labels, sticky, idx, COST_BPS), path_from_choices(labels, plain_t, idx, COST_BPS)
    assert torch.equal(a.positions, b.positions) and torch.equal(a.returns, b.returns)
    (_, sticky_switches), (_, plain_switches) = _churn(labels, sticky, idx), _churn(labels, plain_t, idx)
    print(f"θ switches: {plain_switches} hopping, {sticky_switches} keeping the held θ")
    assert sticky_switches < plain_switches


def test_holdout_tail_is_the_most_recent_bars_or_nothing() -> None:
    rows = np.arange(100, 400)
    head, tail = holdout_tail(rows, 0.2)
    assert tail is not None and np.array_equal(np.concatenate([head, tail]), rows) and tail.size == 60
    assert holdout_tail(rows, 0.0) == (rows, None) or holdout_tail(rows, 0.0)[1] is None
    short = np.arange(2 * MIN_VALIDATION_BARS + 5)
    assert holdout_tail(short, 0.2)[1] is None  # a 9-bar tail is no evidence: no early stopping


def test_cpo_training_stops_on_the_held_out_tail_and_keeps_its_best_epoch() -> None:
    market = regime_market(T=1500, seed=3)
    labels = build_labels(SignMomentum(), market.bars, CANDIDATES, cost_bps=COST_BPS, chunk_size=5)
    rows = np.arange(WARMUP, 1400)
    seen: list[dict[str, float]] = []
    config = ModelConfig(
        hidden=16, layers=1, dropout=0.0, epochs=200, batch_size=512, lr=3e-2, patience=3, validation_fraction=0.2
    )
    fit(config, market.conditions, labels, rows, seed=0, should_stop=lambda e, m: seen.append(m) is not None)
    assert all("val_loss" in m for m in seen)  # the tail was held out without a separate validation set
    assert len(seen) < 200  # stopped on evidence, not at the ceiling
    best = int(np.argmin([m["val_loss"] for m in seen]))
    assert len(seen) - 1 - best == 3


def test_cpo_training_by_default_runs_every_epoch_on_every_bar() -> None:
    # early stopping lowered what CPO captured of a known edge (bench/gate_calibration.py): it is opt-in
    market = regime_market(T=1500, seed=3)
    labels = build_labels(SignMomentum(), market.bars, CANDIDATES, cost_bps=COST_BPS, chunk_size=5)
    seen: list[dict[str, float]] = []
    config = ModelConfig(hidden=16, layers=1, epochs=7, batch_size=512, lr=3e-2)
    fit(
        config,
        market.conditions,
        labels,
        np.arange(WARMUP, 1400),
        seed=0,
        should_stop=lambda e, m: seen.append(m) is not None,
    )
    assert len(seen) == 7 and not any("val_loss" in m for m in seen)


def test_policy_gradient_stops_on_the_held_out_tail_and_keeps_its_best_epoch() -> None:
    market = regime_market(T=1500, seed=3)
    labels = build_labels(SignMomentum(), market.bars, CANDIDATES_WITH_FLAT, cost_bps=COST_BPS, chunk_size=5)
    rows = np.arange(WARMUP, 1400)
    head, tail = holdout_tail(rows, 0.2)
    cond = torch.from_numpy(np.asarray(market.conditions, dtype=np.float32)[tail])
    reward = labels.label_returns[:, torch.from_numpy(tail)].T.float()
    stopped = fit_softmax_policy(
        PolicyGradientConfig(epochs=300, patience=3, validation_fraction=0.2), market.conditions, labels, rows, seed=0
    )
    # the kept weights are the best epoch's on the tail: at least as good as any fixed-epoch run's
    for epochs in (1, 5, 20):
        fixed = fit_softmax_policy(
            PolicyGradientConfig(epochs=epochs, validation_fraction=0.0), market.conditions, labels, head, seed=0
        )
        assert expected_reward(stopped, cond, reward) >= expected_reward(fixed, cond, reward) - 1e-4


def test_the_flat_candidate_never_trades() -> None:
    market = regime_market(T=300, seed=1)
    labels = build_labels(SignMomentum(), market.bars, CANDIDATES_WITH_FLAT, cost_bps=COST_BPS, chunk_size=5)
    k = CANDIDATES_WITH_FLAT.index(FLAT)
    own = labels.label_returns[k, :-1]  # the last bar has no outcome
    assert not labels.positions[k].abs().any() and float(own.abs().max()) == 0.0
    assert annualized_sharpe(own.double().numpy(), BPY) == 0.0

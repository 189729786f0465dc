"""The arms: each refitted only on rows before its origin, deciding positions the evaluation turns into net
returns with the same costs; the unconditional best θ, the rolling re-optimization, the ensemble, the
policy-gradient tuner."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from cpo_synth import CANDIDATES, COST_BPS, DEFAULTS_K, WARMUP, SignMomentum, regime_market

from ludus.cpo.arms import (
    ArmData,
    BestFixedArm,
    Decisions,
    EnsembleArm,
    FixedArm,
    PolicyGradientArm,
    RollingArm,
    best_fixed_candidate,
    fixed_objective,
)
from ludus.cpo.evaluation import evaluate
from ludus.cpo.labels import Labels, build_labels
from ludus.cpo.origins import rolling_origins
from ludus.cpo.policy import fixed_path
from ludus.cpo.reinforce import PolicyGradientConfig
from ludus.errors import InputError


@pytest.fixture(scope="module")
def market_labels():
    market = regime_market(T=1400, seed=4, phi=0.35)
    return market, build_labels(SignMomentum(), market.bars, CANDIDATES, cost_bps=COST_BPS)


def _data(market, labels) -> ArmData:
    return ArmData(
        labels=labels,
        conditions=market.conditions,
        cost_bps=COST_BPS,
        bars_per_year=252.0,
        objective="sharpe",
        default_k=DEFAULTS_K,
    )


def test_best_fixed_candidate_uses_only_the_given_bars() -> None:
    T = 200
    rng = np.random.default_rng(2)
    r = rng.normal(0, 0.01, T).astype(np.float32)
    # candidate 0 is right in the first half, candidate 1 in the second half
    sign = np.sign(np.roll(r, -1))
    pos = np.stack([np.where(np.arange(T) < 100, sign, -sign), np.where(np.arange(T) < 100, -sign, sign)])
    labels = Labels(
        positions=torch.tensor(pos, dtype=torch.float32),
        label_returns=torch.zeros(2, T),
        close_returns=torch.tensor(r),
        theta=np.zeros((2, 1), np.float32),
        candidates=[{}, {}],
        cost_bps=1.0,
    )
    assert best_fixed_candidate(labels, np.arange(0, 99)) == 0
    assert best_fixed_candidate(labels, np.arange(100, 198)) == 1
    assert best_fixed_candidate(labels, np.arange(0, 99), "total_return") == 0
    assert best_fixed_candidate(labels, np.arange(100, 198), "max_drawdown") == 1
    with pytest.raises(InputError) as err:
        best_fixed_candidate(labels, np.arange(0, 99), "luck")
    assert err.value.field == "objective"


class Spy:
    """An arm that records what it was fitted on and holds candidate 0."""

    publishable = True

    def __init__(self, name: str, labels: Labels) -> None:
        self.name = name
        self.labels = labels
        self.fits: list[np.ndarray] = []

    def fit(self, rows: np.ndarray) -> None:
        self.fits.append(rows)

    def decide(self, idx: np.ndarray, start_position: float) -> Decisions:
        return Decisions(self.labels.positions[0, idx].numpy().astype(np.float64), np.zeros(idx.size, np.int64))

    def pick(self, held_position: float):
        raise NotImplementedError


def test_evaluation_refits_before_each_origin_and_chains_one_path_with_real_costs(market_labels) -> None:
    market, labels = market_labels
    origins = rolling_origins(len(market.bars), WARMUP, windows=4, embargo=5, holdout_bars=None, min_train_bars=300)
    spy = Spy("spy", labels)
    ev = evaluate(
        [spy, FixedArm("defaults", _data(market, labels), CANDIDATES[DEFAULTS_K], k=DEFAULTS_K)],
        origins,
        labels.close_returns,
        COST_BPS,
    )
    assert len(spy.fits) == 4
    for i, rows in enumerate(spy.fits):
        assert rows.max() < origins.starts[i] - 5 and rows.min() == WARMUP
    # holding one candidate through chained windows is exactly holding it over the whole holdout: the
    # entry is paid once, never again at a window boundary
    whole = fixed_path(labels, 0, origins.oos_idx, COST_BPS)
    np.testing.assert_allclose(ev.paths["spy"].returns, whole.returns.double().numpy(), atol=1e-9)
    np.testing.assert_allclose(
        ev.paths["defaults"].returns,
        fixed_path(labels, DEFAULTS_K, origins.oos_idx, COST_BPS).returns.double().numpy(),
        atol=1e-9,
    )
    assert ev.paths["defaults"].theta_ids is not None and len(ev.window_slices()) == 4


def test_best_fixed_arm_takes_a_search_find_only_when_it_beats_the_candidates(market_labels) -> None:
    market, labels = market_labels
    data = _data(market, labels)
    rows = np.arange(WARMUP, 800)
    best_k = best_fixed_candidate(labels, rows)
    asked: list[int] = []

    def search(value_sign: float):
        def run(stop: int):
            asked.append(stop)
            # a θ that holds the best candidate's position with a sign: +1 equals it, -1 its opposite
            return [({"found": value_sign}, value_sign * labels.positions[best_k].numpy())]

        return run

    worse = BestFixedArm(data, search(-1.0))
    worse.fit(rows)
    assert worse.k == best_k and worse.parameters == CANDIDATES[best_k] and asked == [801]
    assert worse.decide(np.arange(900, 910), 0.0).parameters is None
    # a find that ties the best candidate loses the tie; one that beats every candidate is taken
    shifted = labels.positions[best_k].numpy().copy()
    shifted[rows] = np.sign(labels.close_returns.numpy()[rows + 1])  # a perfect in-sample foresight
    better = BestFixedArm(data, lambda stop: [({"oracle": 1}, shifted)])
    better.fit(rows)
    assert better.k == -1 and better.parameters == {"oracle": 1}
    assert better.decide(np.arange(900, 910), 0.0).parameters == {"oracle": 1}
    assert better.pick(0.0).parameters == {"oracle": 1}


def test_rolling_arm_reoptimizes_on_the_trailing_window_only(market_labels) -> None:
    market, labels = market_labels
    arm = RollingArm(_data(market, labels), window_bars=100, refit_bars=50)
    arm.fit(np.arange(WARMUP, 600))
    idx = np.arange(600, 760)
    ch = arm.choices(idx)
    for t, k in zip(idx, ch, strict=True):
        refit = WARMUP + ((t - WARMUP) // 50) * 50
        values = fixed_objective(
            labels.positions, labels.close_returns, np.arange(refit - 100, refit), COST_BPS, "sharpe", 252.0
        )
        assert k == int(np.argmax(values))
    assert len(set(ch.tolist())) > 1  # the regimes flip: so does its choice
    # too few rows after the start: the defaults
    early = RollingArm(_data(market, labels), window_bars=100, refit_bars=50)
    early.fit(np.arange(WARMUP, 30))
    assert early.choices(np.array([WARMUP + 5]))[0] == DEFAULTS_K
    assert arm.pick(0.0).parameters == CANDIDATES[int(arm.choices(np.array([len(market.bars) - 1]))[0])]


def test_ensemble_holds_the_average_position_and_publishes_nothing(market_labels) -> None:
    market, labels = market_labels
    arm = EnsembleArm(_data(market, labels))
    d = arm.decide(np.arange(100, 110), 0.0)
    np.testing.assert_allclose(d.positions, labels.positions[:, 100:110].double().mean(0).numpy())
    assert (d.choices == -1).all() and not arm.publishable and arm.pick(0.0).parameters is None


def test_policy_gradient_tuner_learns_the_regime_from_the_labels(market_labels) -> None:
    market, labels = market_labels
    arm = PolicyGradientArm(_data(market, labels), PolicyGradientConfig(epochs=15), seed=0)
    arm.fit(np.arange(WARMUP, 1000))
    idx = np.arange(1000, 1398)
    d = arm.decide(idx, 0.0)
    direction = np.array([CANDIDATES[k]["direction"] for k in d.choices])
    vix = market.conditions[idx, 0]
    assert (direction[vix < 18] == 1).mean() > 0.7 and (direction[vix > 27] == -1).mean() > 0.7
    again = PolicyGradientArm(_data(market, labels), PolicyGradientConfig(epochs=15), seed=0)
    again.fit(np.arange(WARMUP, 1000))
    np.testing.assert_array_equal(again.decide(idx, 0.0).choices, d.choices)

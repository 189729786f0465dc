"""The rule: the bootstrap SE of a Sharpe difference, the deflated z, and the decision - including its
false-replacement rate and power measured on synthetic return paths where the truth is known."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ludus.constants import (
    ARM_BEST_FIXED,
    ARM_CPO,
    ARM_DEFAULTS,
    ARM_ENSEMBLE,
    DECISION_CHANGED,
    DECISION_KEPT,
    ROLE_CHAMPION,
)
from ludus.cpo.bootstrap import mean_block_length, sharpe_difference, stationary_indices
from ludus.cpo.decision import decide
from ludus.cpo.deflation import deflated_confidence, z_threshold
from ludus.cpo.evaluation import ArmPath, Evaluation
from ludus.cpo.origins import Origins
from ludus.errors import InputError

BPY = 252.0
N_BARS = 1000
SIGMA = 0.01


def _paths(
    rng: np.random.Generator, deltas: list[float], rho: float, n: int = N_BARS, champion_sharpe: float = 0.5
) -> tuple[np.ndarray, np.ndarray]:
    """Champion [n] and challengers [M, n]: correlation ``rho`` with the champion, true annualized Sharpe
    ``champion_sharpe + delta``."""
    e = rng.normal(0.0, 1.0, (1 + len(deltas), n))
    champion = SIGMA * e[0] + champion_sharpe * SIGMA / math.sqrt(BPY)
    ch = np.stack(
        [
            SIGMA * (rho * e[0] + math.sqrt(1 - rho**2) * e[1 + j]) + (champion_sharpe + d) * SIGMA / math.sqrt(BPY)
            for j, d in enumerate(deltas)
        ]
    )
    return champion, ch


def _evaluation(
    champion: np.ndarray, challengers: dict[str, np.ndarray], publishable: tuple[str, ...] = ()
) -> Evaluation:
    n = champion.size
    origins = Origins(first=0, stop=n + 100, starts=(100, 100 + n // 2), embargo=0)
    idx = origins.oos_idx

    def path(name: str, r: np.ndarray, pub: bool = True) -> ArmPath:
        return ArmPath(
            name=name,
            publishable=pub,
            idx=idx,
            positions=np.ones(n),
            returns=r,
            choices=np.zeros(n, dtype=np.int64),
            theta_ids=np.zeros(n, dtype=np.int64),
        )

    paths = {ARM_DEFAULTS: path(ARM_DEFAULTS, champion)}
    for name, r in challengers.items():
        paths[name] = path(name, r, name not in (ARM_ENSEMBLE,) or name in publishable)
    return Evaluation(origins=origins, paths=paths)


def test_z_threshold_is_sidak_and_grows_with_the_configurations() -> None:
    assert z_threshold(1, 0.05) == pytest.approx(1.6449, abs=1e-4)
    values = [z_threshold(n, 0.05) for n in (1, 6, 25, 100, 1000, 10**6)]
    assert values == sorted(values) and values[-1] < 6.0
    for n in (1, 7, 500):
        # the deflated confidence at the threshold is exactly 1 - alpha
        assert deflated_confidence(z_threshold(n, 0.05), n) == pytest.approx(0.95, abs=1e-9)
    with pytest.raises(ValueError):
        z_threshold(0, 0.05)


def test_stationary_bootstrap_keeps_blocks_and_covers_the_series() -> None:
    rng = np.random.default_rng(0)
    idx = stationary_indices(500, 200, 10.0, rng)
    assert idx.shape == (200, 500) and idx.min() >= 0 and idx.max() < 500
    steps = (np.diff(idx, axis=1) % 500) == 1
    runs = idx.size / (idx.shape[0] + np.count_nonzero(~steps))
    assert 8.0 < runs < 12.0  # mean block length ~10
    assert mean_block_length(1000) == pytest.approx(10.0)


@pytest.mark.parametrize("rho", [0.0, 0.8])
def test_bootstrap_se_matches_the_sharpe_difference_of_iid_returns(rho: float) -> None:
    rng = np.random.default_rng(1)
    champion, ch = _paths(rng, [0.0], rho, n=2000)
    d = sharpe_difference(ch, champion, bars_per_year=BPY, samples=1000, seed=2)
    expected = math.sqrt(2 * (1 - rho) * BPY / 2000)  # Jobson-Korkie/Memmel for small per-bar Sharpes
    assert d.se[0] == pytest.approx(expected, rel=0.12)
    assert d.z[0] == pytest.approx(d.delta[0] / d.se[0])


def _replacement_rate(
    n_markets: int, deltas: list[float], rho: float, n_configurations: int, seed: int, n_bars: int = N_BARS
) -> float:
    rng = np.random.default_rng(seed)
    names = [ARM_CPO, ARM_BEST_FIXED, "rolling", "policy_gradient", ARM_ENSEMBLE, "published"][: len(deltas)]
    changed = 0
    for m in range(n_markets):
        champion, ch = _paths(rng, deltas, rho, n=n_bars)
        ev = _evaluation(champion, dict(zip(names, ch, strict=True)))
        rep = decide(
            ev,
            ARM_DEFAULTS,
            n_configurations=n_configurations,
            alpha=0.05,
            min_improvement=0.0,
            bars_per_year=BPY,
            samples=200,
            seed=m,
        )
        changed += rep.outcome == DECISION_CHANGED
    return changed / n_markets


@pytest.mark.slow  # a calibration over many synthetic markets (bench/gate_calibration.py measures it at scale)
def test_false_replacement_rate_and_power_of_the_rule() -> None:
    """No challenger better than the champion -> replaced at most at alpha; +1 Sharpe over 8 years of bars
    from a challenger correlated 0.8 with the champion (SE of the difference ~0.22) -> replaced >= 80%."""
    n = 200
    binomial = 2 * math.sqrt(0.05 * 0.95 / n)
    # one challenger, no deflation: the threshold is calibrated (close to alpha, not far below or above it)
    single = _replacement_rate(n, [0.0], 0.5, 1, seed=3)
    assert 0.05 - binomial - 0.01 <= single <= 0.05 + binomial, single
    # five challengers, deflated for 25 configurations: at most alpha
    family = _replacement_rate(n, [0.0] * 5, 0.5, 25, seed=4)
    assert family <= 0.05 + binomial, family
    power = _replacement_rate(100, [1.0, 0.0, 0.0], 0.8, 25, seed=5, n_bars=2000)
    weak = _replacement_rate(100, [0.3, 0.0, 0.0], 0.8, 25, seed=6, n_bars=2000)
    print(
        f"\nfalse replacement: one challenger {single:.3f}, five deflated {family:.3f}; power +1.0: {power:.2f}, "
        f"+0.3: {weak:.2f}"
    )
    assert power >= 0.8 and weak < power


def test_kept_with_the_numbers_and_changed_for_the_best_publishable_winner() -> None:
    rng = np.random.default_rng(7)
    champion, ch = _paths(rng, [0.0, 3.0, 4.0], 0.9, n=2000)
    ev = _evaluation(champion, {ARM_CPO: ch[0], ARM_BEST_FIXED: ch[1], ARM_ENSEMBLE: ch[2]})
    rep = decide(
        ev, ARM_DEFAULTS, n_configurations=40, alpha=0.05, min_improvement=0.0, bars_per_year=BPY, samples=300, seed=0
    )
    # the ensemble has the largest edge but is no parameter set: the best publishable winner is chosen
    assert rep.outcome == DECISION_CHANGED and rep.chosen == ARM_BEST_FIXED
    assert rep.verdict(ARM_ENSEMBLE).passed and not rep.verdict(ARM_ENSEMBLE).publishable
    assert "equal-weight ensemble also cleared the rule" in rep.reason
    assert rep.verdict(ARM_DEFAULTS).role == ROLE_CHAMPION and rep.n_configurations == 40
    assert rep.dsr >= 0.95 and rep.psr >= rep.dsr

    only_ensemble = decide(
        _evaluation(champion, {ARM_CPO: ch[0], ARM_ENSEMBLE: ch[2]}),
        ARM_DEFAULTS,
        n_configurations=40,
        alpha=0.05,
        min_improvement=0.0,
        bars_per_year=BPY,
        samples=300,
        seed=0,
    )
    assert only_ensemble.outcome == DECISION_KEPT and only_ensemble.chosen == ARM_DEFAULTS
    assert "not a parameter set Constellations can trade" in only_ensemble.reason

    margin = decide(
        _evaluation(champion, {ARM_BEST_FIXED: ch[1]}),
        ARM_DEFAULTS,
        n_configurations=40,
        alpha=0.05,
        min_improvement=10.0,
        bars_per_year=BPY,
        samples=300,
        seed=0,
    )
    assert margin.outcome == DECISION_KEPT and "below min_improvement 10.00" in margin.reason

    v = rep.verdict(ARM_CPO)
    assert not v.passed
    kept = decide(
        _evaluation(champion, {ARM_CPO: ch[0]}),
        ARM_DEFAULTS,
        n_configurations=40,
        alpha=0.05,
        min_improvement=0.0,
        bars_per_year=BPY,
        samples=300,
        seed=0,
    )
    c = kept.verdict(ARM_CPO)
    defaults = kept.verdict(ARM_DEFAULTS)
    assert kept.reason.startswith(
        f"kept: strategy defaults (champion) earned Sharpe {defaults.sharpe:.2f}"
        f" over 2,000 out-of-sample bars in 2 windows"
    )
    assert (
        f"{c.delta_sharpe:+.2f} ± {c.delta_se:.2f}, z {c.z:.2f} < {kept.z_threshold:.2f} needed with 40 " in kept.reason
    )
    assert len(c.window_sharpes) == 2


def _with_sharpe(r: np.ndarray, sharpe: float) -> np.ndarray:
    """``r`` shifted to an annualized Sharpe of exactly ``sharpe`` (its spread unchanged)."""
    sd = r.std()
    return r - r.mean() + sharpe * sd / math.sqrt(BPY)


def test_the_defaults_doing_better_than_the_in_sample_optimum_are_kept_not_replaced_by_it() -> None:
    # the case: out of sample CPO 0.10, the unconditional θ 0.04, the defaults 0.69 - the old gate
    # published the unconditional θ
    rng = np.random.default_rng(12)
    champion, ch = _paths(rng, [0.0, 0.0], 0.6, n=252)
    ev = _evaluation(
        _with_sharpe(champion, 0.69), {ARM_CPO: _with_sharpe(ch[0], 0.10), ARM_BEST_FIXED: _with_sharpe(ch[1], 0.04)}
    )
    rep = decide(
        ev,
        ARM_DEFAULTS,
        n_configurations=64 + 8 + 8 + 2,
        alpha=0.05,
        min_improvement=0.05,
        bars_per_year=BPY,
        samples=500,
        seed=0,
    )
    assert rep.outcome == DECISION_KEPT and rep.chosen == ARM_DEFAULTS
    assert rep.verdict(ARM_BEST_FIXED).delta_sharpe == pytest.approx(-0.65, abs=1e-6)
    assert rep.reason.startswith("kept: strategy defaults (champion) earned Sharpe 0.69")


def test_bad_champion_and_configurations_are_input_errors() -> None:
    champion, ch = _paths(np.random.default_rng(8), [0.0], 0.5)
    ev = _evaluation(champion, {ARM_CPO: ch[0]})
    with pytest.raises(InputError):
        decide(ev, "nope", n_configurations=3, alpha=0.05, min_improvement=0.0, bars_per_year=BPY, samples=100, seed=0)
    with pytest.raises(InputError):
        decide(
            ev,
            ARM_DEFAULTS,
            n_configurations=0,
            alpha=0.05,
            min_improvement=0.0,
            bars_per_year=BPY,
            samples=100,
            seed=0,
        )
    alone = decide(
        _evaluation(champion, {}),
        ARM_DEFAULTS,
        n_configurations=1,
        alpha=0.05,
        min_improvement=0.0,
        bars_per_year=BPY,
        samples=100,
        seed=0,
    )
    assert alone.outcome == DECISION_KEPT and alone.best_challenger is None and "no challenger" in alone.reason

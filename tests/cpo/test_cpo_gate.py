"""Gate: PSR/DSR against their definitions, best fixed θ, and the activation rule with its reasons."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ludus.cpo.gate import (
    best_fixed_candidate,
    deflated_sharpe_ratio,
    evaluate_gate,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
)
from ludus.cpo.labels import Labels
from ludus.cpo.policy import PolicyPath
from ludus.errors import InputError


def _path(returns: np.ndarray, positions: np.ndarray | None = None) -> PolicyPath:
    r = torch.tensor(returns, dtype=torch.float32)
    pos = torch.ones_like(r) if positions is None else torch.tensor(positions, dtype=torch.float32)
    return PolicyPath(idx=np.arange(len(r)), choices=torch.zeros(len(r), dtype=torch.long), positions=pos,
                      returns=r)


def test_psr_matches_bailey_lopez_de_prado() -> None:
    r = np.random.default_rng(0).standard_t(5, 500) * 0.01 + 0.001
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = stats.skew(r), stats.kurtosis(r, fisher=False)
    for bench in (0.0, 0.05):
        z = (sr - bench) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr ** 2)
        assert probabilistic_sharpe_ratio(r, bench) == pytest.approx(stats.norm.cdf(z), rel=1e-6)
    assert probabilistic_sharpe_ratio(-r) < 0.5 < probabilistic_sharpe_ratio(r)


def test_expected_max_sharpe_approximates_the_maximum_of_normals() -> None:
    # E[max of 100 standard normals] = 2.50759 (exact); the closed form is within ~1%
    assert expected_max_sharpe(100, 1.0) == pytest.approx(2.50759, rel=0.015)
    assert expected_max_sharpe(100, 0.04) == pytest.approx(0.2 * expected_max_sharpe(100, 1.0))
    assert expected_max_sharpe(1, 1.0) == 0.0


def test_dsr_deflates_with_more_trials_and_more_dispersed_sharpes() -> None:
    r = np.random.default_rng(1).normal(0.001, 0.01, 750)
    assert deflated_sharpe_ratio(r, 1, 0.01) == pytest.approx(probabilistic_sharpe_ratio(r))
    values = [deflated_sharpe_ratio(r, n, 0.001) for n in (2, 10, 100, 1000)]
    assert values == sorted(values, reverse=True)
    assert deflated_sharpe_ratio(r, 50, 0.004) < deflated_sharpe_ratio(r, 50, 0.001)


def test_best_fixed_candidate_uses_only_the_given_bars() -> None:
    T = 200
    rng = np.random.default_rng(2)
    r = rng.normal(0, 0.01, T).astype(np.float32)
    # candidate 0 is right in the first half, candidate 1 in the second half
    sign = np.sign(np.roll(r, -1))
    pos = np.stack([np.where(np.arange(T) < 100, sign, -sign), np.where(np.arange(T) < 100, -sign, sign)])
    labels = Labels(positions=torch.tensor(pos, dtype=torch.float32), label_returns=torch.zeros(2, T),
                    close_returns=torch.tensor(r), theta=np.zeros((2, 1), np.float32), candidates=[{}, {}],
                    cost_bps=1.0)
    assert best_fixed_candidate(labels, np.arange(0, 99)) == 0
    assert best_fixed_candidate(labels, np.arange(100, 198)) == 1
    assert best_fixed_candidate(labels, np.arange(0, 99), "total_return") == 0
    assert best_fixed_candidate(labels, np.arange(100, 198), "max_drawdown") == 1
    with pytest.raises(InputError) as err:
        best_fixed_candidate(labels, np.arange(0, 99), "luck")
    assert err.value.field == "objective"


def test_gate_activates_and_says_why() -> None:
    rng = np.random.default_rng(3)
    cpo = _path(rng.normal(0.002, 0.01, 750))
    base = _path(rng.normal(0.0002, 0.01, 750))
    rep = evaluate_gate(cpo, base, None, bars_per_year=252, min_improvement=0.5, n_trials=20,
                        trial_sharpes=rng.normal(0, 0.03, 20))
    assert rep.active
    assert rep.reason.startswith(f"active: CPO holdout Sharpe {rep.cpo['sharpe']:.2f} beats unconditional best θ")
    assert ">= min_improvement 0.50" in rep.reason and "DSR" in rep.reason
    assert rep.improvement == pytest.approx(rep.cpo["sharpe"] - rep.best_fixed["sharpe"])
    assert {"sharpe", "total_return", "max_drawdown", "turnover", "trades", "psr"} <= set(rep.cpo)
    assert rep.to_dict()["active"] is True


def test_gate_must_beat_the_better_baseline() -> None:
    rng = np.random.default_rng(4)
    noise = rng.normal(0, 0.01, 750)
    cpo = _path(noise + 0.0015)
    weak = _path(noise - 0.001)
    strong = _path(noise + 0.0012)
    rep = evaluate_gate(cpo, weak, strong, bars_per_year=252, min_improvement=0.5, n_trials=5)
    assert rep.baseline == "defaults" and not rep.active
    assert "does not beat strategy defaults" in rep.reason and "(difference" in rep.reason


def test_a_margin_without_statistical_support_is_refused() -> None:
    rng = np.random.default_rng(5)
    cpo = _path(rng.normal(0.0004, 0.01, 60))  # beats the baseline, but 60 bars prove little
    base = _path(rng.normal(-0.001, 0.01, 60))
    rep = evaluate_gate(cpo, base, None, bars_per_year=252, min_improvement=0.5, n_trials=200,
                        trial_sharpes=rng.normal(0, 0.05, 200))
    assert rep.improvement >= 0.5 and not rep.active
    assert rep.reason.startswith("not active: DSR") and "although CPO holdout Sharpe" in rep.reason


def test_gate_rejects_zero_trials() -> None:
    p = _path(np.zeros(30))
    with pytest.raises(InputError):
        evaluate_gate(p, p, None, bars_per_year=252, min_improvement=0.1, n_trials=0)

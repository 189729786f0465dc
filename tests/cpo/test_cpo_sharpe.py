"""Sharpe statistics: the annualized Sharpe against the engine's, PSR/DSR against their definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from ludus.cpo.sharpe import (
    annualized_sharpe,
    deflated_sharpe_ratio,
    expected_max_sharpe,
    probabilistic_sharpe_ratio,
)
from ludus.strategies.engine import compute_metrics


def test_annualized_sharpe_is_the_engines() -> None:
    r = np.random.default_rng(9).normal(0.0005, 0.01, (3, 400))
    want = compute_metrics(torch.from_numpy(r), torch.ones(3, 400), 252.0)["sharpe"].numpy()
    np.testing.assert_allclose(annualized_sharpe(r, 252.0), want, rtol=1e-9)
    assert annualized_sharpe(np.zeros(50), 252.0) == 0.0


def test_psr_matches_bailey_lopez_de_prado() -> None:
    r = np.random.default_rng(0).standard_t(5, 500) * 0.01 + 0.001
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = stats.skew(r), stats.kurtosis(r, fisher=False)
    for bench in (0.0, 0.05):
        z = (sr - bench) * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
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

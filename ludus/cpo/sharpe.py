"""Sharpe-ratio statistics: the annualized Sharpe of the engine, and the probabilistic and deflated Sharpe
ratios of Bailey & López de Prado (2012, 2014), which work on per-bar (not annualized) Sharpe ratios.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from scipy.stats import norm

EULER_GAMMA = 0.5772156649015329


def _np(returns: Any) -> np.ndarray:
    if isinstance(returns, torch.Tensor):
        returns = returns.detach().cpu().numpy()
    arr = np.asarray(returns, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def _moments(r: np.ndarray) -> tuple[float, float, float]:
    """Per-bar Sharpe, skewness and (non-excess) kurtosis of returns."""
    sd = r.std(ddof=1) if r.size > 1 else 0.0
    if not sd > 0:
        return 0.0, 0.0, 3.0
    sr = r.mean() / sd
    z = (r - r.mean()) / r.std(ddof=0)
    return float(sr), float(np.mean(z**3)), float(np.mean(z**4))


def annualized_sharpe(returns: np.ndarray, bars_per_year: float) -> np.ndarray:
    """mean / std (ddof 0) x sqrt(bars_per_year) along the last axis, 0 where the std is 0 (the engine's)."""
    r = np.asarray(returns, dtype=np.float64)
    mean = r.mean(axis=-1)
    std = np.sqrt(np.maximum((r * r).mean(axis=-1) - mean * mean, 0.0))
    out: np.ndarray = np.divide(mean, std, out=np.zeros_like(mean), where=std > 1e-300)
    return out * math.sqrt(bars_per_year)


def sharpe_difference_se(a: Any, b: Any, bars_per_year: float) -> float:
    """Analytic standard error of the annualized Sharpe(a) - Sharpe(b) of two paired return series, for
    i.i.d. normal returns: Jobson & Korkie (1981) as corrected by Memmel (2003),
    ``Var = [2 (1 - rho) + (SR_a^2 + SR_b^2 - 2 SR_a SR_b rho^2) / 2] / n`` on per-bar Sharpe ratios. A check
    on the bootstrap (:mod:`ludus.cpo.bootstrap`), which also carries fat tails and dependence."""
    x, y = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"series of {x.size} and {y.size} bars")
    n = x.size
    sx, sy = x.std(), y.std()
    if n < 3 or sx <= 0 or sy <= 0:
        return float("nan")
    sr_a, sr_b = x.mean() / sx, y.mean() / sy
    rho = float(np.corrcoef(x, y)[0, 1])
    var = (2.0 * (1.0 - rho) + 0.5 * (sr_a**2 + sr_b**2 - 2.0 * sr_a * sr_b * rho**2)) / n
    return float(math.sqrt(max(var, 0.0) * bars_per_year))


def per_bar_sharpe(returns: Any) -> float:
    """Mean / standard deviation of per-bar returns (0 for a flat series)."""
    return _moments(_np(returns))[0]


def probabilistic_sharpe_ratio(returns: Any, sr_benchmark: float = 0.0) -> float:
    """P(true per-bar Sharpe > ``sr_benchmark``) given the sample's length, skewness and kurtosis."""
    r = _np(returns)
    n = r.size
    if n < 3:
        return float("nan")
    sr, skew, kurt = _moments(r)
    if sr == 0.0 and r.std() == 0.0:
        return 0.0 if sr_benchmark >= 0 else 1.0
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    denom = math.sqrt(max(denom, 1e-12))
    return float(norm.cdf((sr - sr_benchmark) * math.sqrt(n - 1) / denom))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected maximum per-bar Sharpe of ``n_trials`` skill-less configurations with Sharpe variance V."""
    if n_trials <= 1 or sr_variance <= 0:
        return 0.0
    n = float(n_trials)
    return math.sqrt(sr_variance) * float(
        (1 - EULER_GAMMA) * norm.ppf(1 - 1 / n) + EULER_GAMMA * norm.ppf(1 - 1 / (n * math.e))
    )


def deflated_sharpe_ratio(returns: Any, n_trials: int, sr_variance: float) -> float:
    """PSR against the expected maximum Sharpe of ``n_trials`` tries (per-bar Sharpe variance ``sr_variance``)."""
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(n_trials, sr_variance))

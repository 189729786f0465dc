"""The A/B gate on the holdout: CPO vs the unconditional best θ vs the strategy's defaults, all net of costs.

Rule (documented in the GateReport reason):

1. ``improvement = Sharpe(CPO) - max(Sharpe(best fixed θ), Sharpe(defaults))`` (annualized, holdout) must be
   ``>= min_improvement``: CPO has to beat the BETTER of the two baselines by the job's margin.
2. The Deflated Sharpe Ratio of the CPO holdout returns must be ``>= min_dsr`` (default 0.95): the probability
   that CPO's true Sharpe exceeds the Sharpe the best of ``n_trials`` configurations would reach by luck alone
   (the expected maximum under the null, from the variance of the trials' Sharpes). This rejects a margin that
   is a fluke of a short or noisy holdout.

PSR and DSR follow Bailey & López de Prado (2012, 2014) and work on per-bar (not annualized) Sharpe ratios.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from scipy.stats import norm

from ludus.cpo.labels import Labels
from ludus.cpo.policy import PolicyPath, fixed_path, path_metrics
from ludus.errors import InputError

EULER_GAMMA = 0.5772156649015329
DEFAULT_MIN_DSR = 0.95
GATE_METRICS = ("sharpe", "total_return", "max_drawdown", "turnover", "trades")


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
    return float(sr), float(np.mean(z ** 3)), float(np.mean(z ** 4))


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
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr ** 2
    denom = math.sqrt(max(denom, 1e-12))
    return float(norm.cdf((sr - sr_benchmark) * math.sqrt(n - 1) / denom))


def expected_max_sharpe(n_trials: int, sr_variance: float) -> float:
    """Expected maximum per-bar Sharpe of ``n_trials`` skill-less configurations with Sharpe variance V."""
    if n_trials <= 1 or sr_variance <= 0:
        return 0.0
    n = float(n_trials)
    return math.sqrt(sr_variance) * ((1 - EULER_GAMMA) * norm.ppf(1 - 1 / n)
                                     + EULER_GAMMA * norm.ppf(1 - 1 / (n * math.e)))


def deflated_sharpe_ratio(returns: Any, n_trials: int, sr_variance: float) -> float:
    """PSR against the expected maximum Sharpe of ``n_trials`` tries (per-bar Sharpe variance ``sr_variance``)."""
    return probabilistic_sharpe_ratio(returns, expected_max_sharpe(n_trials, sr_variance))


def best_fixed_candidate(labels: Labels, insample_idx: Any, objective: str = "sharpe", *,
                         bars_per_year: float = 252.0) -> int:
    """Index of the candidate with the best in-sample ``objective`` (an engine metric, higher is better)."""
    from ludus.strategies.engine import compute_metrics

    idx = np.asarray(insample_idx, dtype=np.int64)
    t = torch.from_numpy(idx)
    pos = labels.positions[:, t]
    prev = torch.zeros_like(pos)
    if idx.size > 1:
        contiguous = torch.from_numpy(np.diff(idx) == 1)
        prev[:, 1:] = torch.where(contiguous, pos[:, :-1], torch.zeros_like(pos[:, :-1]))
    ret = pos * labels.close_returns[t + 1] - labels.cost_bps * 1e-4 * (pos - prev).abs()
    metrics = compute_metrics(ret, pos, bars_per_year)
    key = objective.lower()
    if key not in metrics:
        raise InputError("objective", objective, f"unknown objective; one of {', '.join(sorted(metrics))}")
    values = metrics[key].detach().cpu().double()
    if key == "max_drawdown":
        values = -values  # a positive fraction: smaller is better
    values = torch.nan_to_num(values, nan=-math.inf)
    return int(torch.argmax(values))


@dataclass
class GateReport:
    """Outcome of the holdout comparison; ``reason`` says why the model is (not) activated."""

    active: bool
    reason: str
    cpo: dict[str, float]
    best_fixed: dict[str, float]
    defaults: dict[str, float] | None
    baseline: str  # "best_fixed" or "defaults": the better of the two, which CPO had to beat
    improvement: float
    min_improvement: float
    psr: float
    dsr: float
    min_dsr: float
    n_trials: int
    sr_variance: float
    holdout_bars: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _summary(path: PolicyPath, bars_per_year: float) -> dict[str, float]:
    m = path_metrics(path.returns, path.positions, bars_per_year)
    out = {k: m[k] for k in GATE_METRICS if k in m}
    out.update({k: v for k, v in m.items() if k not in out})
    out["psr"] = probabilistic_sharpe_ratio(path.returns)
    return out


def evaluate_gate(cpo: PolicyPath, best_fixed: PolicyPath, defaults: PolicyPath | None = None, *,
                  bars_per_year: float, min_improvement: float, n_trials: int,
                  trial_sharpes: Sequence[float] | None = None, min_dsr: float = DEFAULT_MIN_DSR) -> GateReport:
    """Compare the three policies on the holdout and decide whether the CPO model may become active.

    ``n_trials``: configurations tried to arrive at this model (model-search trials, plus candidates if the
    caller wants them counted). ``trial_sharpes``: their per-bar Sharpe ratios (e.g. validation); their
    variance sets the DSR's null. Without them, the per-bar Sharpe variance of the two baselines and CPO on
    the holdout is used as a rough stand-in.
    """
    if n_trials < 1:
        raise InputError("n_trials", n_trials, "must be >= 1")
    c = _summary(cpo, bars_per_year)
    b = _summary(best_fixed, bars_per_year)
    d = _summary(defaults, bars_per_year) if defaults is not None else None
    if d is not None and d["sharpe"] > b["sharpe"]:
        base_name, base = "defaults", d
    else:
        base_name, base = "best_fixed", b
    improvement = c["sharpe"] - base["sharpe"]

    if trial_sharpes is not None and len(trial_sharpes) > 1:
        sr_var = float(np.var(np.asarray(trial_sharpes, dtype=np.float64), ddof=1))
    else:
        sr_var = float(np.var([per_bar_sharpe(p.returns) for p in (cpo, best_fixed, defaults) if p is not None],
                              ddof=1))
    sr_var = sr_var if math.isfinite(sr_var) else 0.0
    psr = probabilistic_sharpe_ratio(cpo.returns)
    dsr = deflated_sharpe_ratio(cpo.returns, n_trials, sr_var)

    label = "unconditional best θ" if base_name == "best_fixed" else "strategy defaults"
    beats = improvement >= min_improvement
    if beats:
        head = (f"CPO holdout Sharpe {c['sharpe']:.2f} beats {label} {base['sharpe']:.2f} by {improvement:.2f} "
                f">= min_improvement {min_improvement:.2f}")
    else:
        head = (f"CPO holdout Sharpe {c['sharpe']:.2f} does not beat {label} {base['sharpe']:.2f} by "
                f"min_improvement {min_improvement:.2f} (difference {improvement:.2f})")
    dsr_ok = math.isfinite(dsr) and dsr >= min_dsr
    tail = (f"DSR {dsr:.3f} {'>=' if dsr_ok else '<'} {min_dsr:.2f} "
            f"({n_trials} trials, PSR {psr:.3f}, {len(cpo.returns)} holdout bars)")
    active = beats and dsr_ok
    if active:
        reason = f"active: {head}; {tail}"
    elif not beats:
        reason = f"not active: {head}; {tail}"
    else:
        reason = f"not active: {tail} although {head}"
    return GateReport(active=active, reason=reason, cpo=c, best_fixed=b, defaults=d, baseline=base_name,
                      improvement=float(improvement), min_improvement=float(min_improvement), psr=psr, dsr=dsr,
                      min_dsr=float(min_dsr), n_trials=int(n_trials), sr_variance=sr_var,
                      holdout_bars=len(cpo.returns))


def gate_paths(labels: Labels, holdout_idx: Any, *, best_fixed_k: int, default_k: int | None,
               cost_bps: float) -> tuple[PolicyPath, PolicyPath | None]:
    """Holdout paths of the best fixed candidate and of the defaults' candidate (when among the candidates)."""
    best = fixed_path(labels, best_fixed_k, holdout_idx, cost_bps)
    dflt = fixed_path(labels, default_k, holdout_idx, cost_bps) if default_k is not None else None
    return best, dflt

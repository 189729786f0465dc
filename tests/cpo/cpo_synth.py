"""Synthetic markets, a tiny strategy and the CPO core run end to end, shared by the CPO tests.

Conditions are crafted directly (fast and clear): the regime a test plants is exactly what the model can see.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ludus.data.bars import Bars

WINDOWS = (1, 2, 3, 5, 10)
DIRECTIONS = (1, -1)
CANDIDATES = [{"window": w, "direction": d} for w in WINDOWS for d in DIRECTIONS]
DEFAULTS_K = CANDIDATES.index({"window": 10, "direction": 1})
COST_BPS = 2.0
WARMUP = 20


class MomentumSpace:
    """Just what the CPO core needs from a ParameterSpace: names, to_tensors, encode."""

    names = ("window", "direction")

    def to_tensors(self, sets: Sequence[Mapping[str, Any]], device: Any = "cpu") -> dict[str, torch.Tensor]:
        return {"window": torch.tensor([int(s["window"]) for s in sets], dtype=torch.long, device=device),
                "direction": torch.tensor([int(s["direction"]) for s in sets], dtype=torch.int8, device=device)}

    def encode(self, sets: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.array([[np.log(s["window"]), s["direction"]] for s in sets], dtype=np.float32)


class SignMomentum:
    """pos[t] = direction * sign(close[t] - close[t-window]): momentum (+1) or contrarian (-1)."""

    name = "sign_momentum"
    space = MomentumSpace()

    def positions(self, market: Any, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        close = market.close64
        T = close.shape[0]
        rows = []
        for w, d in zip(params["window"].tolist(), params["direction"].tolist()):
            mom = torch.zeros(T, dtype=close.dtype, device=close.device)
            mom[w:] = close[w:] - close[:-w]
            rows.append(torch.sign(mom) * d)
        return torch.stack(rows).to(torch.int8)


def make_bars(returns: np.ndarray, symbol: str = "SYN") -> Bars:
    close = 100.0 * np.cumprod(1.0 + returns)
    ts = np.datetime64("2000-01-03", "ns") + np.arange(len(close)) * np.timedelta64(1, "D")
    return Bars(symbol, "1d", ts, close.copy(), close.copy(), close.copy(), close, np.ones_like(close))


def conditions_from(returns: np.ndarray, vix: np.ndarray) -> np.ndarray:
    """[T, 3] causal conditions: the VIX-like series, 20-bar realized vol, last return (NaN in warm-up)."""
    T = len(returns)
    cond = np.full((T, 3), np.nan, dtype=np.float32)
    csum = np.concatenate([[0.0], np.cumsum(returns ** 2)])
    for t in range(WARMUP, T):
        cond[t, 0] = vix[t]
        cond[t, 1] = np.sqrt((csum[t + 1] - csum[t + 1 - WARMUP]) / WARMUP) * np.sqrt(252)
        cond[t, 2] = returns[t]
    return cond


@dataclass
class Market:
    bars: Bars
    conditions: np.ndarray
    regime: np.ndarray


def regime_market(T: int = 2600, seed: int = 7, *, observable: bool = True, phi: float = 0.25,
                  constant_phi: float | None = None, sigma: float = 0.01) -> Market:
    """Returns whose autocorrelation switches sign with a persistent hidden regime.

    Trending regime (s=1): r[t+1] = +phi r[t] + e (short-window momentum wins); mean-reverting (s=0): -phi
    (contrarian wins). ``observable``: a VIX-like condition reveals the regime (VIX ~ 15 vs 30 + noise);
    otherwise the VIX is independent of it. ``constant_phi``: no regimes at all, one autocorrelation.
    """
    rng = np.random.default_rng(seed)
    s = np.zeros(T, dtype=np.int64)
    s[0] = 1
    for t in range(1, T):
        s[t] = s[t - 1] if rng.random() < 0.97 else 1 - s[t - 1]
    r = np.zeros(T)
    eps = rng.normal(0.0, sigma, T)
    for t in range(1, T):
        a = constant_phi if constant_phi is not None else (phi if s[t - 1] == 1 else -phi)
        r[t] = a * r[t - 1] + eps[t]
    if observable and constant_phi is None:
        vix = np.where(s == 1, 15.0, 30.0) + rng.normal(0.0, 3.0, T)
    else:
        vix = 22.0 + np.cumsum(rng.normal(0.0, 0.5, T)) * 0.1 + rng.normal(0.0, 3.0, T)
    return Market(make_bars(r), conditions_from(r, vix), s)


@dataclass
class CpoRun:
    labels: Any
    split: Any
    model: Any
    cpo: Any
    best_fixed: Any
    defaults: Any
    best_k: int
    report: Any


SMALL = {"hidden": 32, "layers": 2, "dropout": 0.0, "epochs": 15, "batch_size": 512, "lr": 3e-3}


def run_cpo(market: Market, *, seed: int = 0, min_improvement: float = 0.5, holdout: int = 750) -> CpoRun:
    """The CPO core end to end as the pipeline runs it: labels, folds, fit, policy, baselines, gate."""
    from ludus.cpo.folds import walk_forward
    from ludus.cpo.gate import best_fixed_candidate, evaluate_gate, gate_paths, per_bar_sharpe
    from ludus.cpo.labels import build_labels
    from ludus.cpo.model import ModelConfig
    from ludus.cpo.policy import fixed_path, policy_path
    from ludus.cpo.training import fit

    labels = build_labels(SignMomentum(), market.bars, CANDIDATES, cost_bps=COST_BPS, chunk_size=3)
    split = walk_forward(len(market.bars), WARMUP, folds=2, embargo=5, holdout=holdout)
    train, val = split.folds[-1]
    model = fit(ModelConfig(**SMALL), market.conditions, labels, train, seed=seed, val_rows=val)
    cpo = policy_path(model, market.conditions, labels, split.holdout_idx, cost_bps=COST_BPS)
    best_k = best_fixed_candidate(labels, split.insample_idx, "sharpe")
    best, dflt = gate_paths(labels, split.holdout_idx, best_fixed_k=best_k, default_k=DEFAULTS_K,
                            cost_bps=COST_BPS)
    # the configurations tried: the K candidates (their in-sample Sharpes set the DSR's null)
    trial_sharpes = [per_bar_sharpe(fixed_path(labels, k, split.insample_idx, COST_BPS).returns)
                     for k in range(labels.n_candidates)]
    report = evaluate_gate(cpo, best, dflt, bars_per_year=252, min_improvement=min_improvement,
                           n_trials=labels.n_candidates, trial_sharpes=trial_sharpes)
    return CpoRun(labels, split, model, cpo, best, dflt, best_k, report)

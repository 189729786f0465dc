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
#: the θ that stands aside (direction 0: always flat); with it the candidates can also go risk-off
FLAT = {"window": 1, "direction": 0}
CANDIDATES_WITH_FLAT = [*CANDIDATES, FLAT]
COST_BPS = 2.0
WARMUP = 20


class MomentumSpace:
    """Just what the CPO core needs from a ParameterSpace: names, to_tensors, encode."""

    names = ("window", "direction")

    def to_tensors(self, sets: Sequence[Mapping[str, Any]], device: Any = "cpu") -> dict[str, torch.Tensor]:
        return {
            "window": torch.tensor([int(s["window"]) for s in sets], dtype=torch.long, device=device),
            "direction": torch.tensor([int(s["direction"]) for s in sets], dtype=torch.int8, device=device),
        }

    def encode(self, sets: Sequence[Mapping[str, Any]]) -> np.ndarray:
        return np.array([[np.log(s["window"]), s["direction"]] for s in sets], dtype=np.float32)


class SignMomentum:
    """pos[t] = direction * sign(close[t] - close[t-window]): momentum (+1), contrarian (-1) or flat (0)."""

    name = "sign_momentum"
    space = MomentumSpace()

    def positions(self, market: Any, params: Mapping[str, torch.Tensor]) -> torch.Tensor:
        close = market.close64
        T = close.shape[0]
        rows = []
        for w, d in zip(params["window"].tolist(), params["direction"].tolist(), strict=True):
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
    csum = np.concatenate([[0.0], np.cumsum(returns**2)])
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


def regime_market(
    T: int = 2600,
    seed: int = 7,
    *,
    observable: bool = True,
    phi: float = 0.25,
    constant_phi: float | None = None,
    sigma: float = 0.01,
) -> Market:
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


def momentum_regime_market(
    T: int,
    seed: int,
    *,
    p_stress: float,
    phi_calm: float,
    phi_stress: float,
    stay: float = 0.98,
    sigma: float = 0.01,
    vol_stress: float = 1.0,
) -> Market:
    """A calm regime (share 1 - p_stress) where r[t+1] = +phi_calm r[t] + e and a stress regime where
    r[t+1] = -phi_stress r[t] + vol_stress e; a VIX-like condition (15 calm, 30 stress, noise 3) reveals the
    regime.

    Short-window momentum is the unconditional best θ when calm dominates; switching to the contrarian in
    stress is the conditional edge ("reversal"). ``phi_stress = 0`` with ``vol_stress > 1``: stress is pure
    noise, louder, where every trading θ only pays its costs and standing aside is the edge ("risk-off").
    ``phi_stress = phi_calm`` with ``p_stress = 0`` is a market with one autocorrelation (no conditional
    edge); ``phi_calm = phi_stress = 0``: i.i.d. returns (no edge at all).
    """
    rng = np.random.default_rng(seed)
    leave_stress = 1.0 - stay
    leave_calm = leave_stress * p_stress / (1.0 - p_stress) if p_stress > 0 else 0.0
    u = rng.random(T)
    s = np.zeros(T, dtype=np.int64)
    if p_stress > 0:
        s[0] = int(rng.random() < p_stress)
        for t in range(1, T):
            s[t] = s[t - 1] if u[t] >= (leave_stress if s[t - 1] else leave_calm) else 1 - s[t - 1]
    eps = rng.normal(0.0, sigma, T)
    r = np.zeros(T)
    for t in range(1, T):
        r[t] = (-phi_stress * r[t - 1] + vol_stress * eps[t]) if s[t - 1] else phi_calm * r[t - 1] + eps[t]
    vix = np.where(s == 1, 30.0, 15.0) + rng.normal(0.0, 3.0, T)
    return Market(make_bars(r), conditions_from(r, vix), s)


def oracle_positions(champion: np.ndarray, regime: np.ndarray, stress: str = "contrarian") -> np.ndarray:
    """The regime oracle's positions: the champion's (momentum-1) in calm; in stress its opposite
    (``stress="contrarian"``, the reversal design) or flat (``"flat"``, the risk-off design)."""
    if stress not in ("contrarian", "flat"):
        raise ValueError(f"stress={stress!r}: contrarian or flat")
    return np.where(regime == 1, -champion if stress == "contrarian" else 0.0 * champion, champion)


def oracle_edge(
    *,
    p_stress: float,
    phi_calm: float,
    phi_stress: float,
    T: int = 400_000,
    seed: int = 1,
    stay: float = 0.98,
    vol_stress: float = 1.0,
    stress: str = "contrarian",
) -> float:
    """True annualized Sharpe of the regime oracle (momentum-1 calm; contrarian-1 or flat in stress, see
    :func:`oracle_positions`) minus momentum-1's, measured on one very long market of the same process (net of
    COST_BPS)."""
    from ludus.cpo.sharpe import annualized_sharpe

    m = momentum_regime_market(
        T, seed, p_stress=p_stress, phi_calm=phi_calm, phi_stress=phi_stress, stay=stay, vol_stress=vol_stress
    )
    r = m.bars.close / np.concatenate([[m.bars.close[0]], m.bars.close[:-1]]) - 1.0
    champ = np.sign(r)
    oracle = oracle_positions(champ, m.regime, stress)

    def net(pos: np.ndarray) -> np.ndarray:
        prev = np.concatenate([[0.0], pos[:-1]])
        return pos[:-1] * r[1:] - COST_BPS * 1e-4 * np.abs(pos - prev)[:-1]

    return float(annualized_sharpe(net(oracle), 252) - annualized_sharpe(net(champ), 252))


def phi_for_edge(edge: float, *, p_stress: float, phi_calm: float, T: int = 400_000, stay: float = 0.98) -> float:
    """The stress autocorrelation whose regime oracle beats momentum-1 by ``edge`` annualized Sharpe."""
    lo, hi = 0.0, 0.95
    for _ in range(16):
        mid = (lo + hi) / 2
        if oracle_edge(p_stress=p_stress, phi_calm=phi_calm, phi_stress=mid, T=T, stay=stay) < edge:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def vol_for_edge(edge: float, *, p_stress: float, phi_calm: float, T: int = 400_000, stay: float = 0.98) -> float:
    """The stress volatility multiple (stress pure noise) whose risk-off oracle (momentum-1 calm, flat in
    stress) beats momentum-1 by ``edge`` annualized Sharpe."""
    lo, hi = 1.0, 12.0
    for _ in range(12):
        mid = (lo + hi) / 2
        if (
            oracle_edge(
                p_stress=p_stress, phi_calm=phi_calm, phi_stress=0.0, T=T, stay=stay, vol_stress=mid, stress="flat"
            )
            < edge
        ):
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


#: fixed epochs on every training bar (no validation tail): fast, and what these tests were sized with; the
#: production default (train until a held-out tail stops improving) has tests of its own (test_cpo_power)
SMALL = {
    "hidden": 32,
    "layers": 2,
    "dropout": 0.0,
    "epochs": 15,
    "batch_size": 512,
    "lr": 3e-3,
    "validation_fraction": 0.0,
}
#: a tiny conditional model: what a fast test can refit at every origin
TINY = {
    "hidden": 16,
    "layers": 1,
    "dropout": 0.0,
    "epochs": 4,
    "batch_size": 512,
    "lr": 5e-3,
    "validation_fraction": 0.0,
}
MOMENTUM_1 = CANDIDATES.index({"window": 1, "direction": 1})


@dataclass
class DecisionRun:
    labels: Any
    origins: Any
    evaluation: Any
    report: Any


def decision_arms(
    market: Market,
    labels: Any,
    *,
    champion_k: int,
    seeds: Sequence[int] = (0, 1, 2),
    model: Mapping[str, Any] = TINY,
    pg_epochs: int | Mapping[str, Any] = 10,
    challengers: Sequence[str] | None = None,
    cost_bps: float = COST_BPS,
) -> list[Any]:
    """The champion (candidate ``champion_k`` held fixed) and the challengers, built as the pipeline does."""
    from ludus.constants import (
        ARM_BEST_FIXED,
        ARM_CPO,
        ARM_DEFAULTS,
        ARM_ENSEMBLE,
        ARM_POLICY_GRADIENT,
        ARM_PUBLISHED,
        ARM_ROLLING,
        CHALLENGER_ARMS,
    )
    from ludus.cpo.arms import (
        ArmData,
        BestFixedArm,
        CPOArm,
        EnsembleArm,
        FixedArm,
        PolicyGradientArm,
        RollingArm,
    )
    from ludus.cpo.model import ModelConfig
    from ludus.cpo.reinforce import PolicyGradientConfig

    pg = {"epochs": pg_epochs, "validation_fraction": 0.0} if isinstance(pg_epochs, int) else dict(pg_epochs)
    candidates = labels.candidates
    data = ArmData(
        labels=labels,
        conditions=market.conditions,
        cost_bps=cost_bps,
        bars_per_year=252.0,
        objective="sharpe",
        default_k=DEFAULTS_K,
    )
    champion = ARM_DEFAULTS if champion_k == DEFAULTS_K else ARM_PUBLISHED
    arms = [FixedArm(champion, data, candidates[champion_k], k=champion_k)]
    make = {
        ARM_CPO: lambda: CPOArm(data, ModelConfig(**model), list(seeds)),
        ARM_BEST_FIXED: lambda: BestFixedArm(data),
        ARM_DEFAULTS: lambda: FixedArm(ARM_DEFAULTS, data, candidates[DEFAULTS_K], k=DEFAULTS_K),
        ARM_ENSEMBLE: lambda: EnsembleArm(data),
        ARM_ROLLING: lambda: RollingArm(data, window_bars=252, refit_bars=63),
        ARM_POLICY_GRADIENT: lambda: PolicyGradientArm(data, PolicyGradientConfig(**pg), seed=0),
    }
    for name in challengers if challengers is not None else CHALLENGER_ARMS:
        if name != champion:
            arms.append(make[name]())
    return arms


def run_decision(
    market: Market,
    *,
    champion_k: int = DEFAULTS_K,
    windows: int = 3,
    min_train: int = 504,
    n_configurations: int | None = None,
    alpha: float = 0.05,
    samples: int = 500,
    seed: int = 0,
    seeds: Sequence[int] = (0, 1, 2),
    model: Mapping[str, Any] = TINY,
    pg_epochs: int | Mapping[str, Any] = 10,
    challengers: Sequence[str] | None = None,
    candidates: Sequence[Mapping[str, Any]] = CANDIDATES,
    cost_bps: float = COST_BPS,
) -> DecisionRun:
    """Labels, rolling origins, every arm refitted at each origin, and the rule, as the pipeline runs them.

    ``n_configurations`` defaults to what this run tried: the candidates, one model configuration and the
    challengers. ``pg_epochs``: the policy-gradient tuner's epochs (a fixed count, no validation tail), or
    its whole PolicyGradientConfig."""
    from ludus.cpo.decision import decide
    from ludus.cpo.evaluation import evaluate
    from ludus.cpo.labels import build_labels
    from ludus.cpo.origins import rolling_origins

    labels = build_labels(SignMomentum(), market.bars, list(candidates), cost_bps=cost_bps, chunk_size=5)
    origins = rolling_origins(
        len(market.bars), WARMUP, windows=windows, embargo=5, holdout_bars=None, min_train_bars=min_train
    )
    arms = decision_arms(
        market,
        labels,
        champion_k=champion_k,
        seeds=seeds,
        model=model,
        pg_epochs=pg_epochs,
        challengers=challengers,
        cost_bps=cost_bps,
    )
    evaluation = evaluate(arms, origins, labels.close_returns, cost_bps)
    n = n_configurations if n_configurations is not None else len(candidates) + 1 + len(arms) - 1
    report = decide(
        evaluation,
        arms[0].name,
        n_configurations=n,
        alpha=alpha,
        min_improvement=0.0,
        bars_per_year=252.0,
        samples=samples,
        seed=seed,
    )
    return DecisionRun(labels, origins, evaluation, report)

"""The champion/challenger evidence of one decision as report blocks (:attr:`SymbolReport.arms`).

From the stored :class:`~ludus.contracts.evidence.DecisionEvidence` (every arm's out-of-sample positions and net
returns on the same decision bars, the windows, the θ held per bar) and the symbol's stored result (the rule's
numbers per arm): the verdict, every arm's equity and drawdown against buy-and-hold, ΔSharpe ± SE against the
champion per window and overall, what CPO chose over time, turnover and cost drag, Sharpe per year and per
volatility regime, and how much history each arm learned from at each origin.

Numbers the rule used are copied as stored; what the report computes itself (buy-and-hold, per-window standard
errors, gross Sharpe, cost drag per year) says so in its note. Buy-and-hold needs the job's bars (re-read from
the price store); without them, or when they no longer reproduce the stored paths, it is left out and the
problem is reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from itertools import pairwise
from typing import Any

import numpy as np
import torch

from ludus.constants import (
    ARM_BEST_FIXED,
    ARM_CPO,
    ARM_LABELS,
    DECISION_CHANGED,
    ROLE_CHAMPION,
    UNPUBLISHABLE_ARMS,
)
from ludus.contracts.evidence import ArmEvidence, DecisionEvidence
from ludus.cpo.bootstrap import sharpe_difference
from ludus.cpo.labels import close_returns
from ludus.cpo.policy import path_metrics
from ludus.data.bars import Bars
from ludus.report.document import (
    CHAMPION_SUFFIX,
    CURVE_BUY_AND_HOLD,
    ArmBlock,
    Breakdown,
    ChartRow,
    Curve,
    EquityPanel,
    LineChart,
    Matrix,
    MatrixRow,
    Number,
    Series,
    Verdict,
    Window,
)
from ludus.report.periods import sharpe, sharpe_by_volatility, sharpe_by_year, trailing_volatility
from ludus.report.periods import timestamp_text as _ts

# ``data-block`` names of the section's blocks, in page order (the browser tests look them up).
BLOCK_VERDICT = "arms.verdict"
BLOCK_RULE = "arms.rule"
BLOCK_EQUITY = "arms.equity"
BLOCK_WINDOWS = "arms.windows"
BLOCK_DELTA = "arms.delta"
BLOCK_THETA = "arms.theta"
BLOCK_COSTS = "arms.costs"
BLOCK_COST_BY_YEAR = "arms.cost_by_year"
BLOCK_BY_YEAR = "arms.by_year"
BLOCK_BY_VOLATILITY = "arms.by_volatility"
BLOCK_LEARNED = "arms.learned"
#: tolerance between a path's stored net returns and the same positions re-earned on the re-read bars
#: (the stored returns are float32 rounded to 9 decimals)
REPLAY_TOLERANCE = 1e-6
#: the bootstrap seed of the per-window standard errors when the job named none
DEFAULT_SEED = 0


@dataclass
class ArmsSection:
    """The blocks and what kept some of them out."""

    blocks: list[ArmBlock] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def arm_label(name: str, role: str | None = None) -> str:
    """How the page names an arm (``CPO policy (champion)``)."""
    label = ARM_LABELS.get(name, name)
    return f"{label}{CHAMPION_SUFFIX}" if role == ROLE_CHAMPION else label


def arms_section(
    ev: DecisionEvidence, result: Mapping[str, Any], bars: Bars | None, payload: Mapping[str, Any], bars_per_year: float
) -> ArmsSection:
    """Every block of the decision's evidence, in page order."""
    out = ArmsSection()
    stamps = np.array([_naive(t) for t in ev.timestamps], dtype="datetime64[us]")
    windows = _windows(ev, stamps)
    by_result = {a.get("name"): a for a in result.get("arms") or []}
    champion = next(a for a in ev.arms if a.name == ev.champion)
    nets = {a.name: np.asarray(a.returns, dtype=np.float64) for a in ev.arms}

    idx = _bar_index(bars, stamps) if bars is not None else None
    market: np.ndarray | None = None
    if bars is None:
        out.problems.append(
            "buy-and-hold and the volatility regimes need the job's bars, which are not in the price store any more"
        )
    elif idx is None:
        out.problems.append(
            "the price store no longer holds the decision's out-of-sample bars: buy-and-hold and "
            "the volatility regimes are left out"
        )
    else:
        market = close_returns(bars.close)
        worst = _replay_error(ev, market, idx)
        if worst > REPLAY_TOLERANCE:
            out.problems.append(
                f"the re-read bars do not reproduce the stored paths (largest difference "
                f"{worst:.2e} per bar): the price history was rewritten since the job ran; "
                "buy-and-hold and the volatility regimes are left out"
            )
            market = None

    out.blocks.append(_verdict(ev, result, payload))
    out.blocks.append(_rule(ev, by_result))
    out.blocks.append(_equity(ev, stamps, windows, nets, market, idx, by_result, bars_per_year))
    out.blocks.append(_window_sharpes(ev, stamps))
    out.blocks.append(_deltas(ev, stamps, nets, champion, by_result, payload, bars_per_year))
    theta = _theta_chart(ev, stamps, windows)
    if theta is not None:
        out.blocks.append(theta)
    out.blocks.append(_costs(ev, nets, by_result, bars_per_year))
    out.blocks.append(_cost_by_year(ev, stamps))
    year_nets = dict(_labelled(ev, nets))
    vol_nets = dict(year_nets)
    if market is not None and idx is not None:
        bh = _buy_and_hold(market, idx, ev.cost_bps)
        year_nets[CURVE_BUY_AND_HOLD] = bh
        vol_nets[CURVE_BUY_AND_HOLD] = bh
    out.blocks.append(
        _keyed(
            sharpe_by_year(
                stamps,
                year_nets,
                bars_per_year,
                note="annualized, over the out-of-sample bars only (by the day of the decision); a year with fewer "
                "than 20 of them is left blank",
            ),
            BLOCK_BY_YEAR,
            "Sharpe per calendar year of every arm, out of sample",
        )
    )
    if market is not None and idx is not None and bars is not None:
        vol = trailing_volatility(bars.close, bars_per_year)[idx + 1]
        out.blocks.append(
            _keyed(
                sharpe_by_volatility(
                    vol,
                    vol_nets,
                    bars_per_year,
                    note="regimes: terciles, over the out-of-sample bars, of the annualized volatility of the 21 bars "
                    "known when each position was set",
                ),
                BLOCK_BY_VOLATILITY,
                "Sharpe per volatility regime of every arm, out of sample",
            )
        )
    out.blocks.append(_learned(ev, stamps, windows))
    return out


# --- the verdict and the rule -------------------------------------------------------------------------------


def _verdict(ev: DecisionEvidence, result: Mapping[str, Any], payload: Mapping[str, Any]) -> Verdict:
    counts = ev.configurations
    stored = result.get("configurations") or counts.to_dict()
    numbers = [
        Number(
            key="decision.z_threshold",
            label="z needed (deflated)",
            value=_finite(result.get("z_threshold", ev.z_threshold)),
        )
    ]
    numbers.append(
        Number(
            key="decision.configurations.total",
            label="configurations tried on this key",
            value=sum(
                int(stored.get(k) or 0) for k in ("candidates", "model_trials", "baseline_trials", "challengers")
            ),
        )
    )
    labels = {
        "candidates": "candidate θ",
        "model_trials": "model-search trials",
        "baseline_trials": "unconditional θ-search trials",
        "challengers": "challengers judged",
        "jobs": "jobs on this key",
    }
    numbers += [
        Number(key=f"decision.configurations.{k}", label=f"… {label}", value=stored.get(k))
        for k, label in labels.items()
        if k in stored
    ]
    gate = payload.get("gate") or {}
    numbers += [
        Number(key="decision.alpha", label="alpha (chance of any false replacement)", value=ev.alpha),
        Number(key="decision.min_improvement", label="min improvement (Sharpe)", value=gate.get("min_improvement")),
        Number(key="decision.oos_bars", label="out-of-sample bars", value=result.get("oos_bars", len(ev.timestamps))),
        Number(key="decision.windows", label="windows", value=len(ev.windows)),
        Number(key="decision.bootstrap_samples", label="bootstrap samples", value=ev.bootstrap_samples),
        Number(key="decision.block_length", label="mean bootstrap block (bars)", value=_finite(ev.block_length)),
    ]
    champion = result.get("champion") or {}
    return Verdict(
        key=BLOCK_VERDICT,
        title="The decision",
        decision=str(result.get("decision") or ev.decision),
        chosen=str(result.get("arm") or ev.chosen_arm),
        champion=ev.champion,
        champion_parameters=dict(champion.get("parameters") or {}),
        champion_source=champion.get("source"),
        reason=ev.reason,
        numbers=numbers,
        note=(
            "z* = Φ⁻¹((1 − α)^(1/N)) for the N configurations ever tried on this key: if none had an edge, "
            "the luckiest would clear z* with probability α. A challenger replaces the champion only when "
            "its ΔSharpe ≥ z* standard errors and ≥ the min improvement; "
            + ("it did." if ev.decision == DECISION_CHANGED else "none did: the champion is kept.")
        ),
    )


_RULE_COLUMNS = (
    ("sharpe", "Sharpe"),
    ("delta_sharpe", "ΔSharpe"),
    ("delta_se", "± SE"),
    ("z", "z"),
    ("total_return", "total return"),
    ("max_drawdown", "max drawdown"),
)


def _rule(ev: DecisionEvidence, by_result: Mapping[str, Mapping[str, Any]]) -> Matrix:
    rows = []
    for a in ev.arms:
        stored = by_result.get(a.name) or {}
        cells: list[Number | str | None] = [a.role]
        for key, label in _RULE_COLUMNS:
            value = stored.get(key) if stored else getattr(a, key, None)
            cells.append(
                None if value is None else Number(key=f"arms.{a.name}.{key}", label=label, value=_finite(value))
            )
        cells.append("yes" if a.passed else "no")
        cells.append("no" if a.name in UNPUBLISHABLE_ARMS else "yes")
        rows.append(MatrixRow(label=arm_label(a.name), cells=cells))
    return Matrix(
        key=BLOCK_RULE,
        title="Every arm on the chained out-of-sample path, against the champion",
        columns=["role", *(label for _, label in _RULE_COLUMNS), "cleared the rule", "publishable"],
        rows=rows,
        note="net of costs, as stored with the result; ± SE: the paired stationary block bootstrap of "
        "the Sharpe difference (the same resampled bars for both arms)",
    )


# --- equity, windows, ΔSharpe ---------------------------------------------------------------------------------


def _equity(
    ev: DecisionEvidence,
    stamps: np.ndarray,
    windows: list[Window],
    nets: Mapping[str, np.ndarray],
    market: np.ndarray | None,
    idx: np.ndarray | None,
    by_result: Mapping[str, Mapping[str, Any]],
    bars_per_year: float,
) -> EquityPanel:
    curves = []
    for a in ev.arms:
        stored = by_result.get(a.name) or {}
        metrics = [
            Number(key=f"oos.{a.name}.{k}", label=k, value=_finite(stored.get(k, getattr(a, k, None))))
            for k in ("sharpe", "total_return", "max_drawdown", "turnover")
        ]
        curves.append(_curve(arm_label(a.name, a.role), nets[a.name], metrics))
    note = "every arm's decisions over the same out-of-sample bars, windows chained, net of costs"
    if market is not None and idx is not None:
        bh = _buy_and_hold(market, idx, ev.cost_bps)
        held = torch.as_tensor(bh)
        m: dict[str, float | None] = {
            **path_metrics(held, torch.ones_like(held), bars_per_year),  # the engine's
            "sharpe": sharpe(bh, bars_per_year),
        }  # definitions, as the arms'
        metrics = [
            Number(key=f"oos.buy_and_hold.{k}", label=k, value=_finite(m[k]))
            for k in ("sharpe", "total_return", "max_drawdown", "turnover")
        ]
        curves.append(_curve(CURVE_BUY_AND_HOLD, bh, metrics))
        note += "; buy-and-hold: long from the first decision, recomputed on the job's bars"
    return EquityPanel(
        key=BLOCK_EQUITY,
        title="Equity and drawdown of every arm, out of sample",
        timestamps=[_ts(t) for t in stamps],
        curves=curves,
        windows=windows,
        note=note + "; the shaded bands are the evaluation windows (every arm refitted at the start of each)",
    )


def _window_sharpes(ev: DecisionEvidence, stamps: np.ndarray) -> Breakdown:
    periods = _window_names(ev, stamps)
    values = {arm_label(a.name, a.role): [_finite(w.sharpes.get(a.name)) for w in ev.windows] for a in ev.arms}
    return Breakdown(
        key=BLOCK_WINDOWS,
        title="Sharpe of every arm per evaluation window",
        metric="sharpe",
        periods=periods,
        values=values,
        bars=[w.stop - w.start for w in ev.windows],
        note="annualized, as stored with the decision",
    )


def _deltas(
    ev: DecisionEvidence,
    stamps: np.ndarray,
    nets: Mapping[str, np.ndarray],
    champion: ArmEvidence,
    by_result: Mapping[str, Mapping[str, Any]],
    payload: Mapping[str, Any],
    bars_per_year: float,
) -> Breakdown:
    challengers = [a for a in ev.arms if a.name != ev.champion]
    seed = (payload.get("search") or {}).get("seed")
    seed = DEFAULT_SEED if seed is None else int(seed)
    values: dict[str, list[float | None]] = {arm_label(a.name): [] for a in challengers}
    errors: dict[str, list[float | None]] = {arm_label(a.name): [] for a in challengers}
    for w in ev.windows:
        base = nets[champion.name][w.start : w.stop]
        diff = (
            sharpe_difference(
                np.stack([nets[a.name][w.start : w.stop] for a in challengers]),
                base,
                bars_per_year=bars_per_year,
                samples=ev.bootstrap_samples,
                seed=seed,
            )
            if challengers
            else None
        )
        for j, a in enumerate(challengers):
            mine, theirs = w.sharpes.get(a.name), w.sharpes.get(champion.name)
            delta = None if mine is None or theirs is None else mine - theirs
            values[arm_label(a.name)].append(_finite(delta))
            errors[arm_label(a.name)].append(None if diff is None else _finite(float(diff.se[j])))
    for a in challengers:
        stored = by_result.get(a.name) or {}
        values[arm_label(a.name)].append(_finite(stored.get("delta_sharpe", a.delta_sharpe)))
        errors[arm_label(a.name)].append(_finite(stored.get("delta_se", a.delta_se)))
    return Breakdown(
        key=BLOCK_DELTA,
        title=f"ΔSharpe ± SE of every challenger against the champion "
        f"({arm_label(ev.champion)}), per window and overall",
        metric="ΔSharpe",
        periods=[*_window_names(ev, stamps), "all windows"],
        values=values,
        errors=errors,
        bars=[*(w.stop - w.start for w in ev.windows), len(ev.timestamps)],
        note="'all windows': the stored ΔSharpe and SE the rule judged; per window: the stored window Sharpes' "
        "difference, its SE the same paired block bootstrap run by the report on that window alone (the "
        "rule used only the aggregate); error bars ±1 SE",
    )


# --- what CPO chose -------------------------------------------------------------------------------------------


def _theta_chart(ev: DecisionEvidence, stamps: np.ndarray, windows: list[Window]) -> LineChart | None:
    cpo = next((a for a in ev.arms if a.name == ARM_CPO), None)
    if cpo is None:
        return None
    shown = [cpo] + [a for a in ev.arms if a.name in (ARM_BEST_FIXED, ev.champion) and a is not cpo]
    held = {a.name: theta_per_bar(ev, a) for a in shown}
    names = list(dict.fromkeys(k for c in ev.candidates for k in c))
    rows = []
    for p in names:
        series = [
            Series(name=arm_label(a.name, a.role), values=[None if t is None else t.get(p) for t in held[a.name]])
            for a in shown
            if any(t is not None for t in held[a.name])
        ]
        rows.append(ChartRow(title=p, series=series))
    rows.append(
        ChartRow(
            title="position",
            series=[Series(name=arm_label(a.name, a.role), values=_rounded(a.positions)) for a in shown],
        )
    )
    switches = _switches(held[cpo.name])
    return LineChart(
        key=BLOCK_THETA,
        title=f"What CPO chose: θ per bar and the position it implied ({switches} θ switches over {len(stamps)} bars)",
        timestamps=[_ts(t) for t in stamps],
        rows=rows,
        windows=windows,
        note="the θ each arm held at each out-of-sample decision (CPO re-scores every candidate "
        "each bar and switches only when the predicted gain exceeds the cost of moving); the "
        "unconditional best θ is re-chosen at each origin; the bottom row is the position held",
    )


def theta_per_bar(ev: DecisionEvidence, arm: ArmEvidence) -> list[dict[str, Any] | None]:
    """The θ ``arm`` held at each decision bar: the candidate it chose, or its window's own θ (None: no θ)."""
    out: list[dict[str, Any] | None] = []
    for i, w in enumerate(ev.windows):
        own = arm.parameters[i] if i < len(arm.parameters) else None
        for t in range(w.start, w.stop):
            k = arm.choices[t] if arm.choices is not None else -1
            out.append(dict(ev.candidates[k]) if k >= 0 else (dict(own) if own else None))
    return out


def _switches(thetas: Sequence[dict[str, Any] | None]) -> int:
    return sum(1 for a, b in pairwise(thetas) if a != b)


# --- costs --------------------------------------------------------------------------------------------------


def _costs(
    ev: DecisionEvidence,
    nets: Mapping[str, np.ndarray],
    by_result: Mapping[str, Mapping[str, Any]],
    bars_per_year: float,
) -> Matrix:
    years = len(ev.timestamps) / bars_per_year
    rows = []
    for a in ev.arms:
        stored = by_result.get(a.name) or {}
        moves = np.abs(np.diff(np.r_[0.0, np.asarray(a.positions, dtype=np.float64)]))
        cost = ev.cost_bps * 1e-4 * moves
        thetas = theta_per_bar(ev, a)
        switches = _switches(thetas) if any(t is not None for t in thetas) else None
        cells: list[Number | str | None] = [
            Number(key=f"costs.{a.name}.turnover", label="turnover / year", value=_finite(stored.get("turnover"))),
            Number(
                key=f"costs.{a.name}.switches_per_year",
                label="θ switches / year",
                value=_finite(stored.get("switches_per_year")),
            ),
            None if switches is None else Number(key=f"costs.{a.name}.switches", label="θ switches", value=switches),
            Number(
                key=f"costs.{a.name}.cost_drag",
                label="cost drag / year",
                unit="bps",
                value=_finite(float(cost.sum() * 1e4 / years)) if years > 0 else None,
            ),
            Number(
                key=f"costs.{a.name}.gross_sharpe",
                label="Sharpe before costs",
                value=sharpe(nets[a.name] + cost, bars_per_year),
            ),
            Number(key=f"costs.{a.name}.sharpe", label="Sharpe net", value=_finite(stored.get("sharpe", a.sharpe))),
        ]
        rows.append(MatrixRow(label=arm_label(a.name, a.role), cells=cells))
    return Matrix(
        key=BLOCK_COSTS,
        title=f"Turnover and cost drag at {ev.cost_bps:g} bps per unit of position moved",
        columns=[
            "turnover / year",
            "θ switches / year",
            "θ switches",
            "cost drag / year",
            "Sharpe before costs",
            "Sharpe net",
        ],
        rows=rows,
        note="turnover, θ switches per year and net Sharpe as stored; the cost drag (bps of capital per "
        "year) and the Sharpe before costs are recomputed from the stored positions",
    )


def _cost_by_year(ev: DecisionEvidence, stamps: np.ndarray) -> Breakdown:
    years = stamps.astype("datetime64[Y]").astype(int) + 1970
    periods = sorted(set(years.tolist()))
    values = {}
    for a in ev.arms:
        moves = np.abs(np.diff(np.r_[0.0, np.asarray(a.positions, dtype=np.float64)]))
        values[arm_label(a.name, a.role)] = [
            _finite(round(float(ev.cost_bps * moves[years == y].sum()), 6)) for y in periods
        ]
    return Breakdown(
        key=BLOCK_COST_BY_YEAR,
        title="Cost drag of every arm per calendar year",
        metric="bps",
        periods=[str(y) for y in periods],
        values=values,
        bars=[int((years == y).sum()) for y in periods],
        note=f"bps of capital paid in costs in each year ({ev.cost_bps:g} bps × position moved), "
        "out-of-sample bars only (the first and last year may be partial)",
    )


# --- what each arm learned from ------------------------------------------------------------------------------


def _learned(ev: DecisionEvidence, stamps: np.ndarray, windows: list[Window]) -> Matrix:
    rows = []
    for a in ev.arms:
        cells: list[Number | str | None] = []
        for i, w in enumerate(ev.windows):
            span = w.learned.get(a.name)
            if span is None:
                cells.append(None)
                continue
            detail = (
                f"{_ts(np.datetime64(_naive(span.first), 'us'))} .. {_ts(np.datetime64(_naive(span.last), 'us'))}"
                if span.rows and span.first and span.last
                else "nothing: a fixed rule"
            )
            cells.append(Number(key=f"learned.w{i + 1}.{a.name}", label="rows", value=span.rows, detail=detail))
        rows.append(MatrixRow(label=arm_label(a.name, a.role), cells=cells))
    note = (
        "decision rows (bars whose outcome was known at the origin) behind each arm's choice at the window's "
        "origin: the learned arms (CPO, the unconditional best θ, the policy-gradient tuner) every row from "
        "the first usable one up to the origin minus the embargo, the rolling re-optimization its trailing "
        "window, the fixed rules and the ensemble none"
    )
    if not any(w.learned for w in ev.windows):
        note = "this job's evidence predates the record of what each arm learned from"
    return Matrix(
        key=BLOCK_LEARNED,
        title="How much history each arm learned from, per origin",
        columns=[f"w{i + 1} (origin {_ts(stamps[w.start])})" for i, w in enumerate(ev.windows)],
        rows=rows,
        note=note,
    )


# --- helpers ------------------------------------------------------------------------------------------------


def _labelled(ev: DecisionEvidence, nets: Mapping[str, np.ndarray]) -> list[tuple[str, np.ndarray]]:
    return [(arm_label(a.name, a.role), nets[a.name]) for a in ev.arms]


def _keyed(b: Breakdown, key: str, title: str) -> Breakdown:
    return b.model_copy(update={"key": key, "title": title})


def _windows(ev: DecisionEvidence, stamps: np.ndarray) -> list[Window]:
    return [
        Window(label=f"w{i + 1}", start=_ts(stamps[w.start]), end=_ts(stamps[w.stop - 1]))
        for i, w in enumerate(ev.windows)
        if w.stop > w.start
    ]


def _window_names(ev: DecisionEvidence, stamps: np.ndarray) -> list[str]:
    return [f"w{i + 1} {_ts(stamps[w.start])}..{_ts(stamps[w.stop - 1])}" for i, w in enumerate(ev.windows)]


def _bar_index(bars: Bars, stamps: np.ndarray) -> np.ndarray | None:
    """Where each decision bar lies in ``bars`` (None when one is missing or is the last bar)."""
    ts = np.asarray(bars.timestamps).astype("datetime64[us]")
    idx = np.searchsorted(ts, stamps)
    if idx.size == 0 or idx.max() >= len(ts) - 1 or not np.array_equal(ts[idx], stamps):
        return None
    return idx


def _replay_error(ev: DecisionEvidence, market: np.ndarray, idx: np.ndarray) -> float:
    """Largest difference between a stored net return and its positions re-earned on the re-read bars."""
    worst = 0.0
    nxt = market[idx + 1]
    for a in ev.arms:
        pos = np.asarray(a.positions, dtype=np.float64)
        prev = np.r_[0.0, pos[:-1]]
        again = pos * nxt - ev.cost_bps * 1e-4 * np.abs(pos - prev)
        worst = max(worst, float(np.abs(again - np.asarray(a.returns, dtype=np.float64)).max(initial=0.0)))
    return worst


def _buy_and_hold(market: np.ndarray, idx: np.ndarray, cost_bps: float) -> np.ndarray:
    """Long at every decision bar from flat: the entry pays the cost once."""
    net = market[idx + 1].copy()
    net[0] -= cost_bps * 1e-4
    return net


def _curve(name: str, net: np.ndarray, metrics: list[Number]) -> Curve:
    eq = np.cumprod(1.0 + net)
    return Curve(name=name, equity=_rounded(eq), drawdown=_rounded(_drawdown(eq)), metrics=metrics)


def _drawdown(equity: np.ndarray) -> np.ndarray:
    return equity / np.maximum(1.0, np.maximum.accumulate(equity)) - 1.0


def _rounded(values: Any) -> list[float]:
    return [round(float(v), 6) for v in values]


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _naive(value: datetime) -> datetime:
    return value.astimezone(timezone.utc).replace(tzinfo=None) if value.tzinfo is not None else value


__all__ = ["ArmsSection", "arm_label", "arms_section", "theta_per_bar"]

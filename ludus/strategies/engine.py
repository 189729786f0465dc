"""The batched backtest engine: P parameter sets over T bars as tensors, chunked over P to bound memory.

Conventions (DESIGN.md): the signal is computed at the close of bar t and the position is held from close
t to close t+1; cost = cost_bps x |Δposition| charged at t; simple per-bar returns
r[t] = close[t]/close[t-1] - 1 (r[0] = 0); Sharpe annualized by the interval's bars per year:

    net[:, t] = pos[:, t-1] * r[t] - cost_bps * 1e-4 * |pos[:, t] - pos[:, t-1]|,   pos[:, -1] = 0

Two paths compute the same metrics from the bars where each set's position changes (prefix sums and range
statistics of per-market tables, exact in float64):

- CPU: the fused engine (``fused``, ``kernels``): one numba pass per set over the bars makes the decision of
  each bar and folds each finished run into the set's sums. No [P, T] array exists; memory is the market's
  tables (``Market.tables()``, O(T), indicator rows built block by block of bars beyond a cache budget).
- CUDA: tensors of [chunk, T] int8 positions from each rule's ``tensor_positions``, their changes gathered
  and reduced by ``segments.path_sums``; the only loop is over chunks of sets.

``compute_metrics`` is the same definitions over every bar of given net returns.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from ludus.errors import InputError
from ludus.strategies.base import Strategy
from ludus.strategies.fused import numpy_params, run_scan
from ludus.strategies.market import MarketTensors
from ludus.strategies.segments import SideTables, path_sums, position_changes

METRICS = ("total_return", "cagr", "sharpe", "sortino", "max_drawdown", "calmar", "trades", "turnover", "exposure")
DEFAULT_MEMORY_BUDGET = 256 * 2**20  # bytes of per-chunk temporaries on CPU
_CPU_CACHE_ELEMENTS = 1 << 19  # elements of a [chunk, T] block that keep the chunk's passes in L2/L3
_EVENTS_PER_BATCH = 1 << 18  # position changes gathered before their metrics are computed in one batch
_BYTES_PER_ELEMENT = 48  # live [chunk, T] temporaries while positions and metrics of a chunk are computed


@dataclass
class BacktestResult:
    """Metrics per set ({name: Tensor[P]} on CPU), and optionally net returns / positions [P, T]."""

    metrics: dict[str, torch.Tensor]
    returns: torch.Tensor | None = None
    positions: torch.Tensor | None = None

    def rows(self) -> list[dict[str, float]]:
        """One dict of floats per set."""
        cols = {k: v.double().tolist() for k, v in self.metrics.items()}
        return [{k: cols[k][i] for k in cols} for i in range(len(next(iter(cols.values()))))] if cols else []


def resolve_device(pref: str | torch.device = "auto") -> torch.device:
    """``auto``: CUDA when present, else CPU; ``cuda`` without a GPU is an InputError."""
    if isinstance(pref, torch.device):
        return pref
    pref = (pref or "auto").lower()
    if pref == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if pref.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InputError("device", pref, "CUDA is not available on this machine; use auto or cpu")
        return torch.device(pref)
    if pref == "cpu":
        return torch.device("cpu")
    raise InputError("device", pref, "must be auto, cpu or cuda")


def bar_returns(close: torch.Tensor) -> torch.Tensor:
    """r[t] = close[t]/close[t-1] - 1 with r[0] = 0."""
    r = torch.zeros_like(close)
    r[1:] = close[1:] / close[:-1] - 1.0
    return r


def net_returns(positions: torch.Tensor, close: torch.Tensor, cost_bps: float) -> torch.Tensor:
    """[P, T] per-bar returns net of costs (see the module docstring), in ``close``'s dtype."""
    return _net(positions, bar_returns(close), cost_bps * 1e-4)


def _net(positions: torch.Tensor, r: torch.Tensor, cost: float) -> torch.Tensor:
    pos = positions.to(r.dtype)
    prev = torch.nn.functional.pad(pos[:, :-1], (1, 0))
    net = prev * r
    if cost:
        net -= cost * (pos - prev).abs()
    return net


def compute_metrics(net: torch.Tensor, positions: torch.Tensor, bars_per_year: float) -> dict[str, torch.Tensor]:
    """Metrics per set from net returns [P, T] and positions [P, T].

    total_return = prod(1+net) - 1; cagr over T/bars_per_year years; sharpe = mean/std (ddof 0) x
    sqrt(bars_per_year); sortino = mean / sqrt(mean(min(net,0)^2)) x sqrt(bars_per_year) (0 when no loss);
    max_drawdown = max_t 1 - equity_t / max(1, max_{s<=t} equity_s) (a positive fraction); calmar =
    cagr / max_drawdown (0 when no drawdown); trades = bars where the position changes; turnover = sum
    |Δposition| per year; exposure = fraction of bars with a position.
    """
    t = net.shape[1]
    years = t / bars_per_year
    pos = positions
    prev = torch.nn.functional.pad(pos[:, :-1], (1, 0))
    change = pos != prev
    delta = (pos.to(torch.int16) - prev.to(torch.int16)).abs() if not pos.is_floating_point() else (pos - prev).abs()
    return _metrics_from(net, change.sum(1), delta.sum(1).to(net.dtype), (pos != 0).sum(1), years, bars_per_year)


def _metrics_from(
    net: torch.Tensor,
    trades: torch.Tensor,
    abs_delta: torch.Tensor,
    held: torch.Tensor,
    years: float,
    bars_per_year: float,
) -> dict[str, torch.Tensor]:
    t = net.shape[1]
    mean = net.mean(1)
    std = (net * net).mean(1).sub_(mean * mean).clamp_(min=0).sqrt_()
    down = net.clamp(max=0)
    down_dev = (down * down).mean(1).sqrt_()
    log_eq = torch.log1p(net.clamp(min=-1 + 1e-12)).cumsum_(1)
    peak = log_eq.cummax(1).values.clamp_(min=0)
    worst = (log_eq - peak).amin(1)
    total_log = log_eq[:, -1]
    return _finish(total_log, worst, mean, std, down_dev, trades, abs_delta, held, t, years, bars_per_year)


def _finish(total_log, worst, mean, std, down_dev, trades, abs_delta, held, t, years, bars_per_year):
    ann = math.sqrt(bars_per_year)
    total_return = torch.expm1(total_log)
    cagr = torch.expm1(total_log / years) if years > 0 else torch.zeros_like(total_log)
    max_dd = -torch.expm1(worst)
    zero = torch.zeros_like(mean)
    sharpe = torch.where(std > 0, mean / std.clamp(min=1e-30) * ann, zero)
    sortino = torch.where(down_dev > 0, mean / down_dev.clamp(min=1e-30) * ann, zero)
    calmar = torch.where(max_dd > 0, cagr / max_dd.clamp(min=1e-30), zero)
    return {
        "total_return": total_return,
        "cagr": cagr,
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": max_dd,
        "calmar": calmar,
        "trades": trades.to(mean.dtype),
        "turnover": abs_delta.to(mean.dtype) / years if years > 0 else abs_delta.to(mean.dtype),
        "exposure": held.to(mean.dtype) / t,
    }


def _metrics_of_sums(
    s: dict[str, torch.Tensor], t: int, years: float, bars_per_year: float, dtype: torch.dtype
) -> dict[str, torch.Tensor]:
    """Metrics from per-set float64 path sums (``segments.path_sums`` / ``fused.run_scan``), in ``dtype``."""
    mean = s["net"] / t
    std = (s["net2"] / t - mean * mean).clamp_(min=0).sqrt_()
    down_dev = (s["down2"] / t).sqrt_()
    out = _finish(
        s["log"], s["worst"], mean, std, down_dev, s["trades"], s["abs_delta"], s["held"], t, years, bars_per_year
    )
    return {k: v.to(dtype) for k, v in out.items()}


def _metrics_of_changes(
    flat: torch.Tensor,
    new: torch.Tensor,
    n_sets: int,
    tables: SideTables,
    cost: float,
    t: int,
    years: float,
    bars_per_year: float,
    dtype: torch.dtype,
) -> dict[str, torch.Tensor]:
    """Metrics of int8 positions [n_sets, T] from the bars where they change (``segments.path_sums``),
    computed in float64 and returned in the backtest dtype; the same definitions as ``compute_metrics``."""
    return _metrics_of_sums(path_sums(flat, new, n_sets, tables, cost), t, years, bars_per_year, dtype)


def auto_chunk_size(n_sets: int, n_bars: int, device: torch.device, memory_budget: int | None = None) -> int:
    """Sets per chunk: bounded by a memory budget on every device, and on CPU by cache size."""
    if device.type == "cuda":
        budget = memory_budget or int(torch.cuda.mem_get_info(device)[0] * 0.5)
        size = budget // (_BYTES_PER_ELEMENT * max(n_bars, 1))
    else:
        size = min(
            (memory_budget or DEFAULT_MEMORY_BUDGET) // (_BYTES_PER_ELEMENT * max(n_bars, 1)),
            max(_CPU_CACHE_ELEMENTS // max(n_bars, 1), 8),
        )
    return int(max(1, min(size, n_sets)))


def params_to_tensors(
    strategy: Strategy, params: Sequence[Mapping[str, Any]] | Mapping[str, torch.Tensor], market: MarketTensors
) -> dict[str, torch.Tensor]:
    """Accept validated parameter dicts or ready [P] tensors (from ``strategy.space.to_tensors``)."""
    if isinstance(params, Mapping):
        return {k: v.to(market.device) for k, v in params.items()}
    return strategy.space.to_tensors(params, market.device, torch.float64)  # decisions compare float64


def run_backtest(
    strategy: Strategy,
    market: MarketTensors,
    params: Sequence[Mapping[str, Any]] | Mapping[str, torch.Tensor],
    *,
    cost_bps: float,
    bars_per_year: float,
    chunk_size: int | None = None,
    keep_returns: bool = False,
    keep_positions: bool = False,
    memory_budget: int | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> BacktestResult:
    """Backtest P parameter sets at once; metrics (and optionally [P, T] returns/positions) per set.

    ``on_chunk(done, total)`` is called as sets are done (progress bars). ``chunk_size`` is the number of
    sets per chunk (the result does not depend on it); ``memory_budget`` bounds the [chunk, T] temporaries of
    the CUDA path (the CPU path has none).
    """
    if cost_bps < 0 or not math.isfinite(cost_bps):
        raise InputError("cost_bps", cost_bps, "must be a finite number >= 0")
    tensors = params_to_tensors(strategy, params, market)
    n = int(next(iter(tensors.values())).shape[0]) if tensors else 0
    t = len(market)
    if n == 0:
        raise InputError("params", [], "need at least one parameter set")
    if t < 2:
        raise InputError("bars", t, "need at least 2 bars to backtest")
    if market.device.type == "cpu":
        return _run_fused(
            strategy,
            market,
            tensors,
            n,
            cost_bps * 1e-4,
            bars_per_year,
            chunk_size,
            keep_returns,
            keep_positions,
            on_chunk,
        )
    return _run_tensors(
        strategy,
        market,
        tensors,
        n,
        cost_bps * 1e-4,
        bars_per_year,
        chunk_size,
        keep_returns,
        keep_positions,
        memory_budget,
        on_chunk,
    )


def _run_tensors(
    strategy: Strategy,
    market: MarketTensors,
    tensors: Mapping[str, torch.Tensor],
    n: int,
    cost: float,
    bars_per_year: float,
    chunk_size: int | None,
    keep_returns: bool,
    keep_positions: bool,
    memory_budget: int | None,
    on_chunk: Callable[[int, int], None] | None,
) -> BacktestResult:
    """The torch path (CUDA; runs on any device): [chunk, T] positions, metrics from their changes."""
    t = len(market)
    size = chunk_size or auto_chunk_size(n, t, market.device, memory_budget)
    r = market.returns
    years = t / bars_per_year
    tables = SideTables.of(market)
    strategy.prepare(market, tensors)
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in METRICS}
    kept_r, kept_p = [], []
    # Positions are made chunk by chunk (cache-sized [chunk, T] blocks); only the bars where they change are
    # kept, and the metrics of a run of chunks are computed from those changes in one batch.
    changes: list[tuple[torch.Tensor, torch.Tensor]] = []
    pending, since = 0, 0

    def flush(upto: int) -> None:
        flat = torch.cat([c[0] for c in changes]) if changes else torch.zeros(0, dtype=torch.int64)
        new = torch.cat([c[1] for c in changes]) if changes else torch.zeros(0, dtype=torch.int8)
        metrics = _metrics_of_changes(
            flat.to(market.device),
            new.to(market.device),
            upto - since,
            tables,
            cost,
            t,
            years,
            bars_per_year,
            market.dtype,
        )
        for k in METRICS:
            parts[k].append(metrics[k].cpu())
        changes.clear()

    for start in range(0, n, size):
        chunk = {k: v[start : start + size] for k, v in tensors.items()}
        pos = strategy.tensor_positions(market, chunk)
        flat, new = position_changes(pos)
        changes.append((flat + (start - since) * t, new))
        pending += flat.shape[0]
        if pending >= _EVENTS_PER_BATCH:
            flush(min(start + size, n))
            pending, since = 0, min(start + size, n)
        if keep_returns:
            kept_r.append(_net(pos, r, cost))
        if keep_positions:
            kept_p.append(pos)
        if on_chunk is not None:
            on_chunk(min(start + size, n), n)
    if since < n:
        flush(n)
    return BacktestResult(
        {k: torch.cat(v) for k, v in parts.items()},
        torch.cat(kept_r) if keep_returns else None,
        torch.cat(kept_p) if keep_positions else None,
    )


def _run_fused(
    strategy: Strategy,
    market: MarketTensors,
    tensors: Mapping[str, torch.Tensor],
    n: int,
    cost: float,
    bars_per_year: float,
    chunk_size: int | None,
    keep_returns: bool,
    keep_positions: bool,
    on_chunk: Callable[[int, int], None] | None,
) -> BacktestResult:
    """The CPU path: the fused engine over the market's kept tables."""
    tables = market.tables()
    arrays = numpy_params(tensors)
    t = len(market)
    positions = np.zeros((n, t), dtype=np.int8) if keep_returns or keep_positions else None
    sums = run_scan(
        lambda rows: strategy.bind(tables, {k: v[rows] for k, v in arrays.items()}, cost),
        tables,
        n,
        cost,
        chunk_size=chunk_size,
        positions=positions,
        on_progress=on_chunk,
    )
    metrics = _metrics_of_sums(
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in sums.items()},
        t,
        t / bars_per_year,
        bars_per_year,
        market.dtype,
    )
    pos = torch.from_numpy(positions) if positions is not None else None
    net = _net(pos, market.returns, cost) if keep_returns and pos is not None else None  # keep_returns keeps pos
    return BacktestResult(metrics, net, pos if keep_positions else None)

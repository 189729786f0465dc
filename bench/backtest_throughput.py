"""Batched backtest throughput of every rule on the real S&P 500 close: the engine against today's engine
(commit ``baseline_engine.BASELINE_COMMIT``), vectorbt and a plain torch version, all in the same process.

    .venv/bin/python bench/backtest_throughput.py [--device auto] [--threads 1] [--repeats 5] [--no-vectorbt]

The headline sweep is the issue's grid: fast 5..54 x slow 20..216 step 4 with fast < slow (2,329 sets,
long_flat, 1 bp cost) over SPX's 5,031 daily bars. Every other rule runs 2,329 sets sampled from its declared
space (Sobol, seed 1; long_short included). Bar-evals/s = sets x bars / seconds for positions and every
metric (total return, CAGR, Sharpe, Sortino, max drawdown, Calmar, trades, turnover, exposure). Each timed
run starts from a fresh MarketTensors, so building the market and indicator tables is part of the time; the
figure is the best of ``--repeats`` runs after a warm-up (the machine may be shared: the best run is the
least disturbed one). Each rule's metrics are checked against today's engine (positions identical: trades,
exposure; the rest to 1e-6 relative).

vectorbt (the ``bench`` extra) runs the same grid (MA.run for both windows, long while fast > slow,
Portfolio.from_signals at the close with a 1 bp fee) and its order counts are compared with the engine's
trades. The plain torch baseline (gather the two SMA rows per set, compare, net returns, log1p/cumsum/cummax
for the drawdown, all on [P, T] float32) is kept for the ``engine / naive`` line.
Peak memory: the growth of the process's max RSS during the engine runs on CPU (getrusage),
torch.cuda.max_memory_allocated on CUDA. The last line is ``bar_evals_per_s=<integer> device=<cpu|cuda>``
(the SMA grid's rate).
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from baseline_engine import BASELINE_COMMIT, load_baseline

from ludus.data.sample import sample_bars
from ludus.data.symbols import bars_per_year
from ludus.strategies.engine import resolve_device, run_backtest
from ludus.strategies.market import MarketTensors
from ludus.strategies.registry import get_strategy

COST_BPS = 1.0
FAST = range(5, 55)
SLOW = range(20, 217, 4)
GRID_SETS = 2329
BASELINE_COMMIT_SHORT = BASELINE_COMMIT[:7]
RULES = ("sma_cross", "ema_cross", "macd", "donchian_breakout", "rsi_reversion", "bollinger_reversion")


def sma_grid(strategy) -> list[dict]:
    """The issue's (fast, slow) grid, validated against the strategy's declared space."""
    sets = [strategy.space.validate({"fast": f, "slow": s, "mode": "long_flat"}) for s in SLOW for f in FAST if f < s]
    if len(sets) != GRID_SETS:
        raise SystemExit(f"grid has {len(sets)} sets, expected {GRID_SETS}")
    return sets


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _maxrss() -> int:
    """Max resident set size of this process in bytes (Linux reports KiB, macOS bytes)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


def naive_sma_cross(close64: torch.Tensor, fast: torch.Tensor, slow: torch.Tensor, bpy: float) -> dict:
    """The straightforward torch version: every step on the whole [P, T] tensor, float32 returns."""
    t = close64.shape[0]
    cs = torch.cat([close64.new_zeros(1), close64.cumsum(0)])
    idx = torch.arange(1, t + 1, device=close64.device)

    def sma(w: torch.Tensor) -> torch.Tensor:
        w = w[:, None]
        out = (cs[idx] - cs[(idx - w).clamp(min=0)]) / w
        return out.masked_fill(idx < w, float("nan"))

    pos = (sma(fast) > sma(slow)).float()
    r = torch.zeros(t, device=close64.device)
    r[1:] = (close64[1:] / close64[:-1] - 1).float()
    prev = torch.nn.functional.pad(pos[:, :-1], (1, 0))
    net = prev * r - COST_BPS * 1e-4 * (pos - prev).abs()
    log_eq = torch.log1p(net).cumsum(1)
    peak = log_eq.cummax(1).values.clamp(min=0)
    years = t / bpy
    mean, std = net.mean(1), net.std(1, unbiased=False)
    max_dd = -torch.expm1((log_eq - peak).amin(1))
    cagr = torch.expm1(log_eq[:, -1] / years)
    return {
        "total_return": torch.expm1(log_eq[:, -1]),
        "cagr": cagr,
        "sharpe": mean / std * math.sqrt(bpy),
        "sortino": mean / net.clamp(max=0).square().mean(1).sqrt() * math.sqrt(bpy),
        "max_drawdown": max_dd,
        "calmar": cagr / max_dd,
        "trades": (pos != prev).sum(1),
        "turnover": (pos - prev).abs().sum(1) / years,
        "exposure": pos.mean(1),
    }


def _best(fn, repeats: int, device: torch.device) -> tuple[float, object]:
    fn()  # warm-up: allocator, kernels, lazily built tables of other objects
    best, out = math.inf, None
    for _ in range(repeats):
        _sync(device)
        began = time.perf_counter()
        out = fn()
        _sync(device)
        best = min(best, time.perf_counter() - began)
    return best, out


def _agree(new: dict, old: dict) -> float:
    """Worst relative difference of the metrics (trades and exposure must be equal: same positions)."""
    for key in ("trades", "exposure"):
        if not torch.equal(new[key].double(), old[key].double().cpu()):
            return math.inf
    return max(
        float(((new[k].double() - old[k].double().cpu()).abs() / old[k].double().cpu().abs().clamp(min=1e-3)).max())
        for k in new
    )


def vectorbt_grid(close: np.ndarray, fast: list[int], slow: list[int]):
    """The SMA grid in vectorbt: order counts per set (None when vectorbt is not installed)."""
    try:
        import pandas as pd
        import vectorbt as vbt
    except ImportError:
        return None
    series = pd.Series(close)
    fast_ma = vbt.MA.run(series, window=fast, short_name="fast").ma.to_numpy()
    slow_ma = vbt.MA.run(series, window=slow, short_name="slow").ma.to_numpy()
    above = pd.DataFrame(fast_ma > slow_ma)
    pf = vbt.Portfolio.from_signals(series, above, ~above, fees=COST_BPS * 1e-4, freq="1D")
    pf.total_return()
    pf.sharpe_ratio()
    pf.max_drawdown()
    return pf.orders.count().to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (0: torch's default). The fused CPU engine is single-threaded; "
        "on a shared machine whose cores are busy, 1 avoids OpenMP threads spinning",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best is reported")
    parser.add_argument("--no-vectorbt", action="store_true", help="skip the vectorbt comparison")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    bars = sample_bars("SPX")
    bpy = bars_per_year(bars.interval)
    t_bars = len(bars)
    baseline = load_baseline()
    print(
        f"SPX {bars.interval}: {t_bars} bars; device {device} ({torch.get_num_threads()} torch threads); "
        f"cost {COST_BPS} bp; best of {args.repeats} after a warm-up; load {os.getloadavg()}"
    )
    print(
        f"sma_cross grid fast {FAST.start}..{FAST.stop - 1} x slow {SLOW.start}..{SLOW.stop - 1} step "
        f"{SLOW.step}, fast < slow: {GRID_SETS} sets; other rules: {GRID_SETS} sets sampled from their space; "
        f"today's engine = commit {BASELINE_COMMIT_SHORT}"
    )
    print(
        f"{'rule':<22}{'today ms':>10}{'engine ms':>11}{'today bar-evals/s':>20}{'engine bar-evals/s':>20}"
        f"{'ratio':>8}  metrics vs today"
    )

    rates: dict[str, float] = {}
    ratios: dict[str, float] = {}
    grid_result = None
    rss0 = _maxrss()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for name in RULES:
        strategy = get_strategy(name)
        sets = sma_grid(strategy) if name == "sma_cross" else strategy.space.sample(GRID_SETS, seed=1)
        params = strategy.space.to_tensors(sets, device)
        evals = len(sets) * t_bars

        def engine(strategy=strategy, params=params):
            return run_backtest(
                strategy, MarketTensors.from_bars(bars, device=device), params, cost_bps=COST_BPS, bars_per_year=bpy
            )

        secs, result = _best(engine, args.repeats, device)
        rates[name] = evals / secs
        if name == "sma_cross":
            grid_result = result
        label = f"{name}{' (grid)' if name == 'sma_cross' else ''}"
        if baseline is None:
            print(f"{label:<22}{'-':>10}{secs * 1e3:11.1f}{'-':>20}{rates[name]:20,.0f}")
            continue
        old = baseline.strategy(name)

        def today(old=old, params=params):
            return baseline.engine.run_backtest(
                old,
                baseline.market.MarketTensors.from_bars(bars, device=device),
                params,
                cost_bps=COST_BPS,
                bars_per_year=bpy,
            )

        old_secs, old_result = _best(today, max(1, min(args.repeats, 3)), device)
        ratios[name] = old_secs / secs
        agree = _agree(result.metrics, old_result.metrics)
        print(
            f"{label:<22}{old_secs * 1e3:10.1f}{secs * 1e3:11.1f}{evals / old_secs:20,.0f}{rates[name]:20,.0f}"
            f"{ratios[name]:7.1f}x  {'same positions, ' if math.isfinite(agree) else 'DIFFERENT positions'}"
            f"{f'to {agree:.1e}' if math.isfinite(agree) else ''}"
        )
    peak = torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _maxrss() - rss0
    how = "allocator" if device.type == "cuda" else "max RSS growth"
    print(f"peak memory of the runs: {peak / 2**20:.1f} MiB ({how})")

    strategy = get_strategy("sma_cross")
    sets = sma_grid(strategy)
    params = strategy.space.to_tensors(sets, device)
    evals = len(sets) * t_bars
    if not args.no_vectorbt:
        fast, slow = [s["fast"] for s in sets], [s["slow"] for s in sets]
        orders = vectorbt_grid(bars.close, fast, slow)  # also the warm-up: vectorbt compiles its kernels
        if orders is None:
            print("vectorbt not installed (pip install -e '.[bench]'): no vectorbt ratio")
        else:
            vbt_secs, orders = _best(
                lambda: vectorbt_grid(bars.close, fast, slow), max(1, min(args.repeats, 3)), torch.device("cpu")
            )
            same = int((orders == grid_result.metrics["trades"].numpy().astype(np.int64)).sum())
            print(
                f"vectorbt sma_cross grid {vbt_secs * 1e3:10.1f} ms  {evals / vbt_secs:16,.0f} bar-evals/s; "
                f"engine / vectorbt: {rates['sma_cross'] * vbt_secs / evals:.1f}x; orders = trades in "
                f"{same}/{len(sets)} sets"
            )

    market = MarketTensors.from_bars(bars, device=device)
    base_secs, base = _best(
        lambda: naive_sma_cross(market.close64, params["fast"], params["slow"], bpy),
        max(1, min(args.repeats, 3)),
        device,
    )
    base_rate = evals / base_secs
    print(
        f"naive   sma_cross      {base_secs * 1e3:8.1f} ms  {base_rate:16,.0f} bar-evals/s (plain unchunked torch, "
        f"float32 [P, T])"
    )
    worst = max(
        float(
            (
                (grid_result.metrics[k].double() - base[k].double().cpu()).abs()
                / base[k].double().cpu().abs().clamp(min=1e-3)
            ).max()
        )
        for k in grid_result.metrics
    )
    print(
        f"engine / naive: {rates['sma_cross'] / base_rate:.1f}x; metrics agree to {worst:.1e} (relative, float32 "
        f"baseline); best sharpe {grid_result.metrics['sharpe'].max().item():.3f}"
    )
    if ratios:
        worst_rule = min(ratios, key=ratios.get)
        print(f"min_rule_ratio={ratios[worst_rule]:.2f} rule={worst_rule}")
    print(f"bar_evals_per_s={int(rates['sma_cross'])} device={device.type}")


if __name__ == "__main__":
    main()

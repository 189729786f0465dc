"""Batched backtest throughput: the SMA-crossover grid on the real S&P 500 close, against a plain torch version.

    .venv/bin/python bench/backtest_throughput.py [--device auto] [--threads 0] [--repeats 5] [--no-secondary]

The sweep is the issue's grid: fast 5..54 x slow 20..216 step 4 with fast < slow (2,329 sets, long_flat,
1 bp cost) over SPX's 5,031 daily bars. Bar-evals/s = sets x bars / seconds for positions, and every metric
(total return, CAGR, Sharpe, Sortino, max drawdown, Calmar, trades, turnover, exposure). Each timed run starts
from a fresh MarketTensors, so the indicator tables are part of the time; the figure is the best of
``--repeats`` runs after a warm-up (the machine may be shared: the best run is the least disturbed one).
Peak memory: the growth of the process's max RSS during the engine runs on CPU (getrusage; includes torch's
allocator, unlike tracemalloc), torch.cuda.max_memory_allocated on CUDA.

The baseline is what one writes without the engine, in the same process: a straightforward unchunked torch
version of the same sweep (gather the two SMA rows per set, compare, net returns, log1p/cumsum/cummax for the
drawdown, all on [P, T] float32), checked against the engine. The last line is machine-readable:
``bar_evals_per_s=<integer> device=<cpu|cuda>``.
"""

from __future__ import annotations

import argparse
import math
import resource
import sys
import time

import torch

from ludus.data.sample import sample_bars
from ludus.data.symbols import bars_per_year
from ludus.strategies.engine import resolve_device, run_backtest
from ludus.strategies.market import MarketTensors
from ludus.strategies.registry import get_strategy

COST_BPS = 1.0
FAST = range(5, 55)
SLOW = range(20, 217, 4)
GRID_SETS = 2329


def sma_grid(strategy) -> list[dict]:
    """The issue's (fast, slow) grid, validated against the strategy's declared space."""
    sets = [strategy.space.validate({"fast": f, "slow": s, "mode": "long_flat"}) for s in SLOW for f in FAST
            if f < s]
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
    return {"total_return": torch.expm1(log_eq[:, -1]), "cagr": cagr, "sharpe": mean / std * math.sqrt(bpy),
            "sortino": mean / net.clamp(max=0).square().mean(1).sqrt() * math.sqrt(bpy), "max_drawdown": max_dd,
            "calmar": cagr / max_dd, "trades": (pos != prev).sum(1), "turnover": (pos - prev).abs().sum(1) / years,
            "exposure": pos.mean(1)}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (0: torch's default). On a shared machine whose cores are "
                             "busy, 1 avoids OpenMP threads spinning against other processes")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs; the best is reported")
    parser.add_argument("--no-secondary", action="store_true", help="skip the rsi_reversion figure")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    bars = sample_bars("SPX")
    bpy = bars_per_year(bars.interval)
    t_bars = len(bars)
    strategy = get_strategy("sma_cross")
    sets = sma_grid(strategy)
    params = strategy.space.to_tensors(sets, device)
    evals = len(sets) * t_bars
    print(f"SPX {bars.interval}: {t_bars} bars; sma_cross grid fast {FAST.start}..{FAST.stop - 1} x slow "
          f"{SLOW.start}..{SLOW.stop - 1} step {SLOW.step}, fast < slow: {len(sets)} sets; device {device} "
          f"({torch.get_num_threads()} CPU threads); cost {COST_BPS} bp; best of {args.repeats} after a warm-up")

    def engine():
        market = MarketTensors.from_bars(bars, device=device)
        return run_backtest(strategy, market, params, cost_bps=COST_BPS, bars_per_year=bpy)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = _maxrss()
    secs, result = _best(engine, args.repeats, device)
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _maxrss() - rss0)
    rate = evals / secs
    print(f"engine  sma_cross      {secs * 1e3:8.1f} ms  {rate:16,.0f} bar-evals/s  peak memory "
          f"{peak / 2**20:7.1f} MiB ({'allocator' if device.type == 'cuda' else 'max RSS growth'})")

    market = MarketTensors.from_bars(bars, device=device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = _maxrss()
    base_secs, base = _best(lambda: naive_sma_cross(market.close64, params["fast"], params["slow"], bpy),
                            max(1, min(args.repeats, 3)), device)
    base_peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else _maxrss() - rss0)
    base_rate = evals / base_secs
    print(f"naive   sma_cross      {base_secs * 1e3:8.1f} ms  {base_rate:16,.0f} bar-evals/s  peak memory "
          f"{base_peak / 2**20:7.1f} MiB (plain unchunked torch, float32 [P, T])")
    worst = max(float(((result.metrics[k].double() - base[k].double().cpu()).abs()
                       / base[k].double().cpu().abs().clamp(min=1e-3)).max()) for k in result.metrics)
    print(f"engine / naive: {rate / base_rate:.1f}x; metrics agree to {worst:.1e} (relative, float32 baseline); "
          f"best sharpe {result.metrics['sharpe'].max().item():.3f}")

    if not args.no_secondary:
        rsi = get_strategy("rsi_reversion")
        rsi_sets = rsi.space.sample(GRID_SETS, seed=1)
        rsi_params = rsi.space.to_tensors(rsi_sets, device)
        rsi_secs, _ = _best(lambda: run_backtest(rsi, MarketTensors.from_bars(bars, device=device), rsi_params,
                                                 cost_bps=COST_BPS, bars_per_year=bpy), args.repeats, device)
        print(f"engine  rsi_reversion  {rsi_secs * 1e3:8.1f} ms  {len(rsi_sets) * t_bars / rsi_secs:16,.0f} "
              f"bar-evals/s  ({len(rsi_sets)} sampled sets, secondary)")
    print(f"bar_evals_per_s={int(rate)} device={device.type}")


if __name__ == "__main__":
    main()

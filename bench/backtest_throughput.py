"""Batched backtest throughput on the real SPX sample, against a naive per-parameter-set numpy loop.

    .venv/bin/python bench/backtest_throughput.py [--sets 20000] [--baseline-sets 40] [--device auto]

Bar-evals/s = parameter sets x bars / seconds, for positions, net returns and all metrics. The engine's time
includes computing the indicator tables (nothing is cached before the timed run). The baseline is what one
writes without the engine: for each set, numpy over the bars (Wilder's RSI and the enter/exit rule need a
loop over bars), timed on a small subset and extrapolated per set. The last line is machine-readable:
``bar_evals_per_s=<integer> device=<cpu|cuda>``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch

from ludus.data.sample import sample_bars
from ludus.data.symbols import bars_per_year
from ludus.strategies.engine import run_backtest
from ludus.strategies.market import MarketTensors
from ludus.strategies.registry import get_strategy

STRATEGIES = ("sma_cross", "rsi_reversion")
COST_BPS = 1.0


# --- naive baseline: one parameter set at a time ----------------------------------------------------------


def _metrics(net: np.ndarray, pos: np.ndarray, bpy: float) -> dict[str, float]:
    equity = np.cumprod(1 + net)
    peak = np.maximum(np.maximum.accumulate(equity), 1.0)
    std = net.std()
    prev = np.concatenate([[0], pos[:-1]])
    return {"total_return": equity[-1] - 1, "sharpe": net.mean() / std * math.sqrt(bpy) if std > 0 else 0.0,
            "max_drawdown": float(np.max(1 - equity / peak)), "trades": int(np.count_nonzero(pos != prev)),
            "exposure": np.count_nonzero(pos) / len(pos)}


def _net(pos: np.ndarray, r: np.ndarray) -> np.ndarray:
    prev = np.concatenate([[0.0], pos[:-1]])
    return prev * r - COST_BPS * 1e-4 * np.abs(pos - prev)


def _sma(x: np.ndarray, w: int) -> np.ndarray:
    cs = np.concatenate([[0.0], np.cumsum(x)])
    out = np.full(len(x), np.nan)
    out[w - 1:] = (cs[w:] - cs[:-w]) / w
    return out


def naive_sma_cross(close: np.ndarray, r: np.ndarray, p: dict, bpy: float) -> dict[str, float]:
    fast, slow = _sma(close, p["fast"]), _sma(close, p["slow"])
    pos = np.where(fast > slow, 1.0, -1.0 if p["mode"] == "long_short" else 0.0)
    pos[: p["slow"] - 1] = 0.0
    return _metrics(_net(pos, r), pos, bpy)


def naive_rsi_reversion(close: np.ndarray, r: np.ndarray, p: dict, bpy: float) -> dict[str, float]:
    n = p["period"]
    d = np.diff(close, prepend=close[0])
    gain, loss = np.maximum(d, 0), np.maximum(-d, 0)
    rsi = np.full(len(close), np.nan)
    ag, al = gain[1:n + 1].mean(), loss[1:n + 1].mean()
    for t in range(n, len(close)):  # Wilder's smoothing is a recursion: a loop over bars
        if t > n:
            ag, al = (ag * (n - 1) + gain[t]) / n, (al * (n - 1) + loss[t]) / n
        rsi[t] = 100.0 if al == 0 else 100 - 100 / (1 + ag / al)
    pos, state, short = np.zeros(len(close)), 0, p["mode"] == "long_short"
    for t in range(len(close)):  # the enter/exit rule carries state from bar to bar
        v = rsi[t]
        if v < p["lower"]:
            state = 1
        elif short and v > p["upper"]:
            state = -1
        elif (state == 1 and v >= p["exit"]) or (state == -1 and v <= p["exit"]):
            state = 0
        pos[t] = state
    return _metrics(_net(pos, r), pos, bpy)


NAIVE = {"sma_cross": naive_sma_cross, "rsi_reversion": naive_rsi_reversion}


# --- the run ----------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", type=int, default=20_000, help="parameter sets per strategy")
    parser.add_argument("--baseline-sets", type=int, default=40, help="sets the naive loop really runs")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--threads", type=int, default=0,
                        help="CPU threads for torch (0: torch's default). On a shared machine whose cores are "
                             "busy, 1 avoids OpenMP threads spinning against other processes (10x slower)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)

    from ludus.strategies.engine import resolve_device

    device = resolve_device(args.device)
    bars = sample_bars("SPX")
    bpy = bars_per_year(bars.interval)
    close = bars.close.astype(np.float64)
    r = np.concatenate([[0.0], close[1:] / close[:-1] - 1])
    t_bars = len(bars)
    print(f"SPX 1d: {t_bars} bars, device {device} ({torch.get_num_threads()} CPU threads), cost {COST_BPS} bps")

    engine_evals, engine_secs, naive_per_set = 0, 0.0, {}
    for name in STRATEGIES:
        strategy = get_strategy(name)
        sets = strategy.space.sample(args.sets, seed=1)
        # Warm-up on a throwaway market (allocator, kernels), so the timed run starts with empty caches.
        run_backtest(strategy, MarketTensors.from_bars(bars, device=device), sets[:64], cost_bps=COST_BPS,
                     bars_per_year=bpy)
        market = MarketTensors.from_bars(bars, device=device)
        _sync(device)
        began = time.perf_counter()
        result = run_backtest(strategy, market, sets, cost_bps=COST_BPS, bars_per_year=bpy)
        _sync(device)
        secs = time.perf_counter() - began
        engine_evals += len(sets) * t_bars
        engine_secs += secs
        print(f"engine {name:14s} {len(sets):6d} sets in {secs:7.3f} s: {len(sets) * t_bars / secs:14,.0f} "
              f"bar-evals/s (best sharpe {result.metrics['sharpe'].max().item():.3f})")

        subset = sets[: args.baseline_sets]
        began = time.perf_counter()
        naive = [NAIVE[name](close, r, p, bpy) for p in subset]
        per_set = (time.perf_counter() - began) / len(subset)
        naive_per_set[name] = per_set
        # The baseline computes the same thing: check it agrees with the engine on the subset.
        agree = np.allclose([m["sharpe"] for m in naive], result.metrics["sharpe"][: len(subset)].double().numpy(),
                            rtol=1e-3, atol=1e-4)
        print(f"naive  {name:14s} {len(subset):6d} sets, {per_set * 1e3:8.2f} ms/set: "
              f"{t_bars / per_set:14,.0f} bar-evals/s (sharpe agrees with engine: {agree})")

    rate = engine_evals / engine_secs
    naive_secs = sum(naive_per_set[n] * args.sets for n in STRATEGIES)  # extrapolated to every set
    naive_rate = engine_evals / naive_secs
    print(f"engine total: {engine_evals:,} bar-evals in {engine_secs:.2f} s = {rate:,.0f} bar-evals/s")
    print(f"naive  total (extrapolated): {naive_secs:.1f} s = {naive_rate:,.0f} bar-evals/s")
    print(f"speed-up engine/naive: {rate / naive_rate:.1f}x")
    print(f"bar_evals_per_s={int(rate)} device={device.type}")


if __name__ == "__main__":
    main()

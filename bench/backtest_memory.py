"""Peak memory of a sweep against the number of bars: the issue's 2,329-set SMA grid over synthetic 1-minute
series of T = 1e4 .. 1e6 bars.

    .venv/bin/python bench/backtest_memory.py [--bars 10000,100000,491400,1000000] [--rules sma_cross,...]

Each (rule, T) runs in a fresh child process so that its peak RSS is its own: the child builds the bars (a
random walk of T one-minute bars), the MarketTensors and runs ``run_backtest`` with the default settings
(metrics only, as a sweep does), then reports its max RSS (getrusage, the whole process: Python, torch,
numba and the data included), its RSS after the imports, the market's tables and the wall time. 491,400 bars
is five years of 1-minute bars at 390 a day. The last line is ``peak_mib=<peak RSS in MiB at the largest T>``
(of the first rule).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

GRID = [(f, s) for s in range(20, 217, 4) for f in range(5, 55) if f < s]  # the 2,329-set grid
SETS = len(GRID)


def _rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def child(rule: str, n_bars: int) -> dict:
    """One measurement, in this (fresh) process."""
    import numpy as np
    import torch

    from ludus.data.bars import Bars
    from ludus.strategies.engine import run_backtest
    from ludus.strategies.market import MarketTensors
    from ludus.strategies.registry import get_strategy

    torch.set_num_threads(1)
    strategy = get_strategy(rule)
    if rule == "sma_cross":
        sets = [strategy.space.validate({"fast": f, "slow": s, "mode": "long_flat"}) for f, s in GRID]
    else:
        sets = strategy.space.sample(SETS, seed=1)
    # warm the kernels on a tiny series: compiling (or loading numba's cache) is not the sweep's memory
    tiny = _walk(np, Bars, 300, 1)
    run_backtest(strategy, MarketTensors.from_bars(tiny), sets[:4], cost_bps=1.0, bars_per_year=98_280)
    after_imports = _rss_mib()
    bars = _walk(np, Bars, n_bars, 7)
    began = time.perf_counter()
    market = MarketTensors.from_bars(bars)
    result = run_backtest(strategy, market, sets, cost_bps=1.0, bars_per_year=98_280)
    secs = time.perf_counter() - began
    return {
        "rule": rule,
        "bars": n_bars,
        "sets": len(sets),
        "seconds": secs,
        "peak_mib": _rss_mib(),
        "base_mib": after_imports,
        "tables_mib": market.tables().nbytes / 2**20,
        "best_sharpe": float(result.metrics["sharpe"].max()),
    }


def _walk(np, bars_cls, n: int, seed: int):
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    spread = np.abs(rng.normal(0, 0.0003, n)) * close
    ts = np.datetime64("2019-01-02T14:30", "ns") + np.arange(n) * np.timedelta64(60, "s")
    return bars_cls("SYN", "1m", ts, close.copy(), close + spread, close - spread, close, np.ones(n))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--bars", default="10000,30000,100000,300000,491400,1000000", help="comma-separated numbers of bars"
    )
    parser.add_argument("--rules", default="sma_cross", help="comma-separated rules (first one is the headline)")
    parser.add_argument("--child", nargs=2, metavar=("RULE", "BARS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]))))
        return
    sizes = [int(float(x)) for x in args.bars.split(",")]
    rules = args.rules.split(",")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print(
        f"P = {SETS} sets per rule; synthetic 1-minute bars; one fresh process per row, torch at 1 thread; "
        f"load {os.getloadavg()}"
    )
    print(
        f"{'rule':<20}{'bars':>10}{'peak RSS MiB':>14}{'after imports':>15}{'tables MiB':>12}{'seconds':>9}"
        f"{'bar-evals/s':>16}"
    )
    headline = None
    for rule in rules:
        for n in sizes:
            out = subprocess.run(
                [sys.executable, __file__, "--child", rule, str(n)], env=env, check=True, capture_output=True, text=True
            ).stdout
            row = json.loads(out.strip().splitlines()[-1])
            print(
                f"{rule:<20}{n:>10,}{row['peak_mib']:14.1f}{row['base_mib']:15.1f}{row['tables_mib']:12.1f}"
                f"{row['seconds']:9.2f}{row['sets'] * n / row['seconds']:16,.0f}"
            )
            if rule == rules[0] and n == max(sizes):
                headline = row["peak_mib"]
    print(f"peak_mib={headline:.1f}")


if __name__ == "__main__":
    main()

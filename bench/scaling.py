"""Throughput against the number of trial actors, with the ideal (linear) line for comparison.

Each trial runs a small batched backtest-like torch computation (P candidate parameter sets x T bars:
positions from a moving-average rule, per-bar returns net of costs, a Sharpe ratio) single-threaded, so one
actor = one core's worth of work. trials/s and bar-evaluations/s (P x T per trial) are printed per actor
count next to ideal = actors x the 1-actor figure. On a machine with few cores the measured line flattens
at the core count: the figure is what this machine can do, the ideal line what the dispatcher allows.

Usage: python bench/scaling.py [--actors 1,2,4,8] [--trials 48] [--bars 2500] [--candidates 64]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")

import optuna

from ludus.search.samplers import make_sampler

optuna.logging.set_verbosity(optuna.logging.ERROR)


class BacktestObjective:
    """P candidates x T bars of a moving-average rule on a random walk; returns the best Sharpe."""

    def __init__(self, bars: int, candidates: int) -> None:
        self.bars = bars
        self.candidates = candidates

    def suggest(self, trial):
        return {"cost_bps": trial.suggest_float("cost_bps", 0.0, 10.0), "seed": trial.suggest_int("seed", 0, 99)}

    def __call__(self, ctx) -> float:
        import torch

        torch.set_num_threads(1)
        g = torch.Generator().manual_seed(int(ctx.params["seed"]))
        r = torch.randn(self.bars, generator=g) * 0.01
        close = torch.cumprod(1 + r, 0)
        windows = torch.arange(5, 5 + self.candidates)
        csum = torch.cumsum(torch.cat([torch.zeros(1), close]), 0)
        total = 0.0
        for _ in range(10):  # ~tens of ms of work per trial
            ma = torch.stack([(csum[w:] - csum[:-w])[: self.bars - 200] / w for w in windows.tolist()])
            pos = (close[199 : self.bars - 1] > ma[:, : self.bars - 200]).float()
            net = pos[:, :-1] * r[201 : self.bars] - ctx.params["cost_bps"] * 1e-4 * (pos[:, 1:] - pos[:, :-1]).abs()
            sharpe = net.mean(1) / (net.std(1) + 1e-12) * 252**0.5
            total += float(sharpe.max())
        return total / 10


def measure(actors: int, trials: int, objective: BacktestObjective) -> float:
    from ludus.cluster.dispatch import RayExecutor
    from ludus.config import Settings

    ex = RayExecutor(Settings(max_actors=actors, cpus_per_actor=1.0, gpus_per_trial=0.0, device="cpu"), None)
    try:
        ex.start(wait_all=True)
        ex.run(optuna.create_study(sampler=make_sampler("tpe", 0)), objective, actors, None, None)  # warm
        study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 0))
        t0 = time.perf_counter()
        ex.run(study, objective, trials, None, None)
        return trials / (time.perf_counter() - t0)
    finally:
        ex.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--actors", default="1,2,4,8")
    ap.add_argument("--trials", type=int, default=48)
    ap.add_argument("--bars", type=int, default=2500)
    ap.add_argument("--candidates", type=int, default=64)
    args = ap.parse_args()
    counts = sorted({int(a) for a in args.actors.split(",")})

    import ray

    ray.init(
        address="local",
        num_cpus=max(counts) + 1,
        num_gpus=0,
        include_dashboard=False,
        log_to_driver=False,
        namespace="ludus-bench",
    )
    objective = BacktestObjective(args.bars, args.candidates)
    evals = args.candidates * (args.bars - 201) * 10
    print(
        f"scaling: {args.trials} trials per point, {evals:,} bar-evaluations per trial; host CPUs="
        f"{os.cpu_count()} (shared with other work: figures are contended)"
    )
    print(f"{'actors':>6s} {'trials/s':>9s} {'ideal':>9s} {'bar-evals/s':>13s} {'ideal':>13s} {'efficiency':>10s}")
    base = None
    for k in counts:
        tps = measure(k, args.trials, objective)
        base = base or tps / k
        ideal = base * k
        print(f"{k:6d} {tps:9.2f} {ideal:9.2f} {tps * evals:13.3e} {ideal * evals:13.3e} {tps / ideal:10.0%}")
    ray.shutdown()


if __name__ == "__main__":
    main()

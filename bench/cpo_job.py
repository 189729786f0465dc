"""The demo CPO job (trials/jobs/cpo_spx_demo.json) end to end, in-process and on a local Ray.

Each run gets a fresh SQLite database with the shipped sample data (SPX, IXIC, VIX, GOOG daily), so nothing is
resumed. The in-process run pins torch to the cores the process owns, as `ludus optimize --no-ray` does.
Prints the phase timings of both runs and the label throughput (candidate-bars backtested per second).

First, the model search's cost per trial before and after issue 11's training step, in this process on one
torch thread: the demo job's labels, folds and model search space; the same trial configurations (drawn once
from the space) trained by the old step (bench/baseline_training.py: concatenated inputs, AdamW's default
loop, a host sync per step) and by today's (split first layer, fused AdamW, no per-step sync), alternating;
and today's with the CPU default (dropout off). The objective values are printed beside, to show the
quality kept.

The last lines are ``job_wall_s=<seconds>`` (the Ray run's wall, what `ludus optimize` does by default, the Ray
start included) and ``model_search_s_per_trial=<seconds>`` (today's step, CPU defaults).

    .venv/bin/python bench/cpo_job.py [--job trials/jobs/cpo_spx_demo.json] [--only inprocess|ray]
                                      [--trial-configs 3] [--skip-jobs]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from ludus.config import Settings
from ludus.contracts.job import parse_job
from ludus.data.prices import PriceStore
from ludus.data.sample import load_sample
from ludus.db.engine import make_engine
from ludus.db.migrate import upgrade
from ludus.pipeline import PHASE_TIMINGS, run_job


def fresh_database(directory: Path, name: str) -> str:
    url = f"sqlite:///{directory / name}.db"
    upgrade(url)
    engine = make_engine(url)
    load_sample(PriceStore(engine))
    engine.dispose()
    return url


class _Ctx:
    """A TrialContext with fixed parameters (no pruning)."""

    def __init__(self, params: dict, number: int) -> None:
        self.params, self.number = params, number

    def report(self, value: float, step: int) -> None:
        pass

    def should_prune(self) -> bool:
        return False

    def set_user_attr(self, key: str, value: object) -> None:
        pass


def trial_costs(job_path: Path, url: str, n_configs: int) -> dict[str, list[tuple[float, float]]]:
    """(seconds, objective value) per trial configuration for the old step, today's step at the same
    settings, and today's step with the CPU defaults (dropout 0); alternating so load drifts hit all alike."""
    import optuna
    import torch
    from baseline_training import old_fit

    from ludus.cpo import training
    from ludus.pipeline.run import _JobRun
    from ludus.search.objectives import CPOModelObjective, suggest_from_space
    from ludus.search.trial import InProcessExecutor

    torch.set_num_threads(1)
    job = parse_job(job_path.read_text())
    engine = make_engine(url)
    run = _JobRun(job, engine, Settings(database_url=url, device="cpu"), lambda event: None, resume=False)
    run.validate()
    works = run.load_data()
    run.prepare_conditions(works)
    w = works[0]
    run.labels(w, InProcessExecutor())
    objective = CPOModelObjective(
        w.conditions.values,
        w.labels,
        w.folds,
        objective=job.objective,
        cost_bps=job.cost_bps,
        bars_per_year=run.bars_per_year,
        device="cpu",
        seed=run.seed,
        space=run.model_space,
    )
    # the configurations: drawn from the space as it was (dropout searched in [0, 0.2])
    space = dict(run.model_space, dropout={"type": "float", "low": 0.0, "high": 0.2})
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=11))
    configs = [suggest_from_space(study.ask(), space) for _ in range(n_configs)]
    new_fit = training.fit
    out: dict[str, list[tuple[float, float]]] = {"before": [], "after": [], "after_cpu_defaults": []}
    try:
        for i, params in enumerate(configs):
            for kind, rows in out.items():
                training.fit = old_fit if kind == "before" else new_fit
                p = dict(params, dropout=0.0) if kind == "after_cpu_defaults" else params
                start = time.perf_counter()
                value = objective(_Ctx(p, i))
                rows.append((time.perf_counter() - start, value))
    finally:
        training.fit = new_fit
    engine.dispose()
    print(
        "trial configurations:",
        "; ".join(
            ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in c.items()) for c in configs
        ),
    )
    return out


def run_once(job_path: Path, url: str, executor_kind: str) -> tuple[float, dict[str, float], str]:
    """Run the job; returns (wall seconds including the executor's start, timings, verdict)."""
    job = parse_job(job_path.read_text())
    settings = Settings(database_url=url)
    engine = make_engine(url)
    start = time.perf_counter()
    if executor_kind == "ray":
        from ludus.cli.optimize import share_cores_with_local_ray
        from ludus.cluster.dispatch import RayExecutor

        share_cores_with_local_ray(None)  # as `ludus optimize` does with a local Ray
        executor = RayExecutor.for_job(job, settings)
    else:
        from ludus.cpo.threads import pin_torch_threads
        from ludus.search.trial import InProcessExecutor

        pin_torch_threads()  # as `ludus optimize --no-ray` does
        executor = InProcessExecutor()
    try:
        result = run_job(
            job, engine=engine, settings=settings, progress=lambda event: None, executor=executor, resume=False
        )
    finally:
        executor.close()
    wall = time.perf_counter() - start
    engine.dispose()
    verdict = "; ".join(f"{s.symbol}: {s.reason}" for s in result.symbols)
    return wall, dict(result.timings), verdict


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", type=Path, default=REPO / "trials" / "jobs" / "cpo_spx_demo.json")
    parser.add_argument("--only", choices=("inprocess", "ray"), default=None)
    parser.add_argument("--trial-configs", type=int, default=3, help="configurations timed per step kind")
    parser.add_argument("--skip-jobs", action="store_true", help="only the per-trial costs")
    args = parser.parse_args()
    kinds = [] if args.skip_jobs else [args.only] if args.only else ["inprocess", "ray"]
    job = parse_job(args.job.read_text())
    print(
        f"job {args.job.name}: {job.strategy} on {','.join(job.symbols)}, {job.candidates} candidates, "
        f"{job.search.trials} model trials, lookback {job.lookback.model_dump(exclude_none=True)}, "
        f"cpus={os.cpu_count()}, loadavg={os.getloadavg()}"
    )
    walls: dict[str, float] = {}
    timings: dict[str, dict[str, float]] = {}
    threads: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="ludus-bench-") as tmp:
        costs = trial_costs(args.job, fresh_database(Path(tmp), "trials"), args.trial_configs)
        print(f"{'step':<20}{'s/trial':>10}{'objective values':>40}")
        for kind, rows in costs.items():
            mean = sum(t for t, _ in rows) / len(rows)
            print(f"{kind:<20}{mean:>10.2f}{', '.join(f'{v:.3f}' for _, v in rows):>40}")
        for kind in kinds:
            url = fresh_database(Path(tmp), kind)
            walls[kind], timings[kind], verdict = run_once(args.job, url, kind)
            threads[kind] = torch.get_num_threads()
            print(
                f"[{kind}] wall {walls[kind]:.1f}s (driver torch threads {threads[kind]}, loadavg "
                f"{os.getloadavg()}); {verdict}",
                flush=True,
            )
    if kinds:
        print(f"{'phase':<14}" + "".join(f"{k:>12}" for k in kinds))
        for phase in (*PHASE_TIMINGS, "total"):
            print(f"{phase:<14}" + "".join(f"{timings[k].get(phase, 0.0):>12.2f}" for k in kinds))
        for kind in kinds:
            rate = timings[kind].get("label_bar_evals_per_s", 0.0)
            print(f"label_throughput_{kind}={rate:,.0f} bar-evals/s")
        for kind in kinds:
            print(f"{kind}_wall_s={walls[kind]:.2f}")
        if len(walls) == 2:
            print(f"inprocess_over_ray={walls['inprocess'] / walls['ray']:.2f}")
    before = sum(t for t, _ in costs["before"]) / len(costs["before"])
    after = sum(t for t, _ in costs["after"]) / len(costs["after"])
    default = sum(t for t, _ in costs["after_cpu_defaults"]) / len(costs["after_cpu_defaults"])
    print(f"loadavg={os.getloadavg()[0]:.2f} threads={torch.get_num_threads()}")
    print(f"model_search_s_per_trial_before={before:.3f}")
    print(f"model_search_s_per_trial_same_settings={after:.3f}")
    print(f"step_speedup_same_settings={before / after:.2f}")
    if kinds:
        print(f"job_wall_s={walls['ray' if 'ray' in walls else kinds[0]]:.2f}")
    print(f"model_search_s_per_trial={default:.3f}")


if __name__ == "__main__":
    main()

"""The demo CPO job (trials/jobs/cpo_spx_demo.json) end to end, in-process and on a local Ray.

Each run gets a fresh SQLite database with the shipped sample data (SPX, IXIC, VIX, GOOG daily), so nothing is
resumed. Prints the phase timings of both runs and the label throughput (candidate-bars backtested per second);
the LAST line is ``job_wall_s=<seconds>``: the wall time of the Ray run (what `ludus optimize` does by default,
the Ray start included).

    .venv/bin/python bench/cpo_job.py [--job trials/jobs/cpo_spx_demo.json] [--only inprocess|ray]
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
        from ludus.search.trial import InProcessExecutor

        executor = InProcessExecutor()
    try:
        result = run_job(job, engine=engine, settings=settings, progress=lambda event: None, executor=executor,
                         resume=False)
    finally:
        executor.close()
    wall = time.perf_counter() - start
    engine.dispose()
    verdict = "; ".join(f"{s.symbol}: {s.reason}" for s in result.symbols)
    return wall, dict(result.timings), verdict


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", type=Path, default=REPO / "trials" / "jobs" / "cpo_spx_demo.json")
    parser.add_argument("--only", choices=("inprocess", "ray"), default=None)
    args = parser.parse_args()
    kinds = [args.only] if args.only else ["inprocess", "ray"]
    job = parse_job(args.job.read_text())
    print(f"job {args.job.name}: {job.strategy} on {','.join(job.symbols)}, {job.candidates} candidates, "
          f"{job.search.trials} model trials, lookback {job.lookback.model_dump(exclude_none=True)}, "
          f"cpus={os.cpu_count()}")
    walls: dict[str, float] = {}
    timings: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="ludus-bench-") as tmp:
        for kind in kinds:
            url = fresh_database(Path(tmp), kind)
            walls[kind], timings[kind], verdict = run_once(args.job, url, kind)
            print(f"[{kind}] wall {walls[kind]:.1f}s; {verdict}", flush=True)
    print(f"{'phase':<14}" + "".join(f"{k:>12}" for k in kinds))
    for phase in (*PHASE_TIMINGS, "total"):
        print(f"{phase:<14}" + "".join(f"{timings[k].get(phase, 0.0):>12.2f}" for k in kinds))
    for kind in kinds:
        rate = timings[kind].get("label_bar_evals_per_s", 0.0)
        print(f"label_throughput_{kind}={rate:,.0f} bar-evals/s")
    for kind in kinds:
        print(f"{kind}_wall_s={walls[kind]:.2f}")
    print(f"job_wall_s={walls['ray' if 'ray' in walls else kinds[0]]:.2f}")


if __name__ == "__main__":
    main()

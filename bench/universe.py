"""A nightly universe: N symbols x S strategies, each key one at a time versus each strategy's symbols as one
universe job (every symbol's chain on its own actor, at once), in the same run, on one local Ray pool.

The symbols are copies of the sample S&P 500 series under new names (SYM00, SYM01, ...), written to a fresh
SQLite database beside the sample data. Both ways run the same keys with the same job settings and seeds:

- one at a time: one single-symbol job per key, one after the other (what a batch of single-symbol jobs, or the
  old per-symbol loop of `run_job`, amounts to: model-search trials on the pool's actors, labels, gate and
  final fit in the driver);
- universe: one job per strategy naming every symbol; one actor pool serves the whole batch.

Then the universe on a multi-node local Ray cluster (``ray.cluster_utils.Cluster``: nodes of one CPU each),
with 1 and with 2 actors, to show how it scales in actors. Optionally (``--nightly``) the demo job's settings
(trials/jobs/cpo_spx_demo.json) or the job defaults on a few symbols, extrapolated to the 300-key nightly batch
(100 symbols x 3 strategies) from the measured seconds per key - an extrapolation, and it says so.

The last lines are ``speedup=<universe over one at a time>`` and ``seconds_per_key=<universe wall / keys>``.

    .venv/bin/python bench/universe.py [--symbols 4] [--strategies 2] [--no-cluster]
    .venv/bin/python bench/universe.py --nightly demo --symbols 2 --strategies 1 --no-sequential --no-cluster
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ludus.config import Settings
from ludus.contracts.job import parse_job
from ludus.data.prices import PriceStore
from ludus.data.sample import load_sample
from ludus.db.engine import make_engine
from ludus.db.migrate import upgrade
from ludus.pipeline import run_job

STRATEGIES = ["sma_cross", "rsi_reversion", "ema_cross", "macd", "bollinger_reversion", "donchian_breakout"]
# small enough that a key takes seconds on a shared 2-core machine, every phase of the chain still there
SMALL = {
    "lookback": {"bars": 900},
    "candidates": 16,
    "search": {"trials": 2, "seed": 5, "baseline_trials": 8, "seeds": 1},
    "validation": {"folds": 2, "embargo_bars": 2, "holdout_bars": 150, "windows": 2},
    "conditions_from": ["VIX"],
}
SMALL_MODEL_SPACE = {
    "hidden": {"type": "fixed", "value": 16},
    "layers": {"type": "fixed", "value": 1},
    "epochs": {"type": "fixed", "value": 4},
    "batch_size": {"type": "fixed", "value": 1024},
}
NIGHTLY_KEYS = 300

if TYPE_CHECKING:
    from typing_extensions import Self


def database(directory: Path, name: str, symbols: list[str]) -> str:
    url = f"sqlite:///{directory / name}.db"
    upgrade(url)
    engine = make_engine(url)
    store = PriceStore(engine)
    load_sample(store)
    spx = store.read("SPX", "1d")
    for symbol in symbols:
        store.write(dataclasses.replace(spx, symbol=symbol), replace=True)
    engine.dispose()
    return url


def job_body(settings: str, strategy: str, symbols: list[str]) -> dict[str, Any]:
    if settings == "small":
        body = json.loads(json.dumps(SMALL))
    elif settings == "demo":
        body = json.loads((REPO / "trials" / "jobs" / "cpo_spx_demo.json").read_text())
        body.pop("JobId", None)
    else:  # the job contract's defaults, with the demo's lookback and conditions
        body = {"lookback": {"bars": 1500}, "conditions_from": ["VIX", "IXIC"]}
    body.update({"job_id": str(uuid.uuid4()), "strategy": strategy, "symbols": symbols, "mode": "cpo"})
    for key in ("StrategyName", "Symbols", "Mode"):
        body.pop(key, None)
    return body


class Load:
    """The 1-minute load average and the process' thread count, sampled every second while a phase runs."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(1.0):
            self.samples.append((os.getloadavg()[0], threading.active_count()))

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def text(self) -> str:
        if not self.samples:
            return f"loadavg {os.getloadavg()[0]:.2f}"
        loads = [s for s, _ in self.samples]
        return f"loadavg {min(loads):.2f}-{max(loads):.2f} (mean {sum(loads) / len(loads):.2f})"


def run_keys(
    url: str, settings: Settings, executor: Any, bodies: list[dict[str, Any]], model_space: dict | None
) -> tuple[float, list[Any]]:
    engine = make_engine(url)
    start = time.perf_counter()
    results = [
        run_job(
            parse_job(b),
            engine=engine,
            settings=settings,
            progress=lambda e: None,
            executor=executor,
            resume=False,
            model_space=model_space,
        )
        for b in bodies
    ]
    wall = time.perf_counter() - start
    engine.dispose()
    return wall, results


def summary(results: list[Any]) -> str:
    syms = [s for r in results for s in r.symbols]
    failed = [s.symbol for s in syms if s.error]
    return f"{len(syms)} keys, {sum(s.published for s in syms)} published" + (
        f", failed: {', '.join(failed)}" if failed else ""
    )


def local_comparison(
    tmp: Path, args: argparse.Namespace, symbols: list[str], strategies: list[str], model_space: dict | None
) -> tuple[float | None, float, int]:
    """(one-at-a-time wall, universe wall, keys) on a local Ray of this machine's cores."""
    from ludus.cli.optimize import share_cores_with_local_ray
    from ludus.cluster.dispatch import RayExecutor, connect

    url = database(tmp, "local", symbols)
    settings = Settings(database_url=url, device="cpu", gpus_per_trial=0, max_actors=args.actors)
    connect(settings)
    share_cores_with_local_ray(None)  # as `ludus optimize` does with a local Ray
    keys = len(symbols) * len(strategies)
    seq_wall = None
    first = parse_job(job_body(args.settings, strategies[0], symbols))
    with RayExecutor.for_job(first, settings) as executor:
        executor.start(wait_all=True)
        actors = len(executor.actors())
        print(
            f"local Ray: {os.cpu_count()} cpus, {actors} actors, driver torch threads "
            f"{__import__('torch').get_num_threads()}"
        )
        if not args.no_sequential:
            bodies = [job_body(args.settings, st, [sy]) for st in strategies for sy in symbols]
            with Load() as load:
                seq_wall, results = run_keys(url, settings, executor, bodies, model_space)
            print(
                f"[one at a time] {keys} keys in {seq_wall:.1f}s ({seq_wall / keys:.1f} s/key), {load.text()}, "
                f"threads {threading.active_count()}; {summary(results)}",
                flush=True,
            )
        bodies = [job_body(args.settings, st, symbols) for st in strategies]
        with Load() as load:
            uni_wall, results = run_keys(url, settings, executor, bodies, model_space)
        print(
            f"[universe]      {keys} keys in {uni_wall:.1f}s ({uni_wall / keys:.1f} s/key), {load.text()}, "
            f"threads {threading.active_count()}; {summary(results)}",
            flush=True,
        )
        for r in results:
            t = r.timings
            print(
                f"    {r.strategy}: wall {t['total']:.1f}s; summed over symbols: labels {t['labels']:.1f}s, "
                f"model search {t['model_search']:.1f}s, baseline {t['baseline']:.1f}s, evaluation "
                f"{t['evaluation']:.1f}s, training {t['training']:.1f}s, publish {t['publish']:.2f}s"
            )
    return seq_wall, uni_wall, keys


def cluster_scaling(tmp: Path, args: argparse.Namespace, model_space: dict | None) -> None:
    """The universe on a local multi-node cluster (nodes of one CPU), with 1 and 2 actors."""
    import ray
    from ray.cluster_utils import Cluster

    from ludus.cluster.dispatch import RayExecutor

    ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0})
    cluster.add_node(num_cpus=1, num_gpus=0)
    try:
        ray.init(address=cluster.address, namespace="ludus-bench", log_to_driver=False)
        cluster.wait_for_nodes()
        symbols = [f"SYM{i:02d}" for i in range(args.cluster_symbols)]
        url = database(tmp, "cluster", symbols)
        walls = {}
        for actors in (1, 2):
            settings = Settings(
                database_url=url, device="cpu", gpus_per_trial=0, max_actors=actors, ray_address=cluster.address
            )
            body = job_body(args.settings, args.strategies_list[0], symbols)
            with RayExecutor.for_job(parse_job(body), settings) as executor:
                executor.start(wait_all=True)
                nodes = {a["node_id"] for a in executor.actors()}
                # warm-up: every actor imports torch and loads the engine's kernels once, outside the clock
                run_keys(
                    url,
                    settings,
                    executor,
                    [job_body(args.settings, args.strategies_list[0], symbols[:actors])],
                    model_space,
                )
                with Load() as load:
                    walls[actors], results = run_keys(url, settings, executor, [body], model_space)
            print(
                f"[cluster {len(ray.nodes())} nodes x 1 cpu, {actors} actor(s) on {len(nodes)} node(s)] "
                f"{len(symbols)} keys in {walls[actors]:.1f}s ({walls[actors] / len(symbols):.1f} s/key), "
                f"{load.text()}; {summary(results)}",
                flush=True,
            )
        print(f"cluster_scaling_2_over_1_actors={walls[1] / walls[2]:.2f}")
    finally:
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=4)
    parser.add_argument("--strategies", type=int, default=2)
    parser.add_argument("--actors", type=int, default=8, help="max actors of the local pool (the cores cap it)")
    parser.add_argument(
        "--nightly",
        choices=("demo", "defaults"),
        default=None,
        help="run at the demo job's settings or the job defaults and extrapolate to 300 keys",
    )
    parser.add_argument("--no-sequential", action="store_true", help="skip the one-at-a-time run")
    parser.add_argument("--no-cluster", action="store_true", help="skip the multi-node cluster run")
    parser.add_argument("--cluster-symbols", type=int, default=6, help="symbols of the cluster runs")
    parser.add_argument("--no-local", action="store_true", help="only the cluster runs")
    args = parser.parse_args()
    args.settings = args.nightly or "small"
    args.strategies_list = STRATEGIES[: args.strategies]
    model_space = SMALL_MODEL_SPACE if args.settings == "small" else None
    symbols = [f"SYM{i:02d}" for i in range(args.symbols)]
    print(
        f"{args.symbols} symbols x {args.strategies} strategies ({', '.join(args.strategies_list)}), settings "
        f"{args.settings}, cpus {os.cpu_count()}, loadavg {os.getloadavg()}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="ludus-universe-") as tmp:
        seq, uni, keys = (
            (None, None, 0)
            if args.no_local
            else local_comparison(Path(tmp), args, symbols, args.strategies_list, model_space)
        )
        if not args.no_cluster:
            cluster_scaling(Path(tmp), args, model_space)
    if uni is None:
        return
    per_key = uni / keys
    if args.nightly:
        print(
            f"EXTRAPOLATION (not measured): {NIGHTLY_KEYS} keys at the {args.nightly} settings x {per_key:.1f} "
            f"s/key measured on {keys} keys = {NIGHTLY_KEYS * per_key / 3600:.2f} h on this machine"
        )
        print(f"nightly_{args.nightly}_hours_extrapolated={NIGHTLY_KEYS * per_key / 3600:.2f}")
    print(f"loadavg={os.getloadavg()[0]:.2f} threads={threading.active_count()}")
    if seq is not None:
        print(f"speedup={seq / uni:.2f}")
    print(f"seconds_per_key={per_key:.2f}")


if __name__ == "__main__":
    main()

"""Orchestration cost per trial for a trivial objective, side by side in one run.

Rows: plain Optuna ``study.optimize`` (in process), Ludus' RayExecutor with 1 and N actors (N trials asked
per batch), and Ray Tune with OptunaSearch when ``ray[tune]`` is installed (``pip install 'ludus[bench]'``).
Every row uses the same sampler (TPE, multivariate, constant liar, seed 0) and the same objective.

Definition: overhead per trial = wall time of the search / trials  -  objective time per trial, where the
objective time is measured where it runs and divided by the parallelism. The sampler's own cost (ask + tell,
which TPE pays whoever dispatches) is INCLUDED in that figure; the ``sampler`` column measures it alone (an
ask/tell loop without objective) and ``dispatch`` = overhead - sampler is what Ludus/Ray adds on top.
Actor start-up (once per job) is excluded from the timed search and printed separately.

Last line: ``ludus_overhead_ms_per_trial=<overhead of Ludus with N actors, sampler included>``.
Usage: python bench/dispatch_overhead.py [--trials 200] [--actors 32] [--tune-trials 48]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

import optuna

from ludus.search.samplers import make_sampler

optuna.logging.set_verbosity(optuna.logging.ERROR)


class Trivial:
    """Two floats in, a quadratic out: microseconds of work."""

    def suggest(self, trial):
        return {"x": trial.suggest_float("x", -5, 5), "y": trial.suggest_float("y", -5, 5)}

    def __call__(self, ctx) -> float:
        return (ctx.params["x"] - 1) ** 2 + (ctx.params["y"] + 2) ** 2


def new_study() -> optuna.Study:
    return optuna.create_study(direction="minimize", sampler=make_sampler("tpe", 0), pruner=optuna.pruners.NopPruner())


def bench_sampler(n: int) -> float:
    """ask + suggest + tell alone (no objective): the sampler's own cost per trial, seconds."""
    study, obj = new_study(), Trivial()
    t0 = time.perf_counter()
    for _ in range(n):
        trial = study.ask()
        p = obj.suggest(trial)
        study.tell(trial, (p["x"] - 1) ** 2 + (p["y"] + 2) ** 2)
    return (time.perf_counter() - t0) / n


def bench_optuna(n: int) -> tuple[float, float]:
    study, obj = new_study(), Trivial()
    spent = [0.0]

    def objective(trial):
        p = obj.suggest(trial)
        t = time.perf_counter()
        v = (p["x"] - 1) ** 2 + (p["y"] + 2) ** 2
        spent[0] += time.perf_counter() - t
        return v

    t0 = time.perf_counter()
    study.optimize(objective, n_trials=n)
    wall = time.perf_counter() - t0
    return wall / n, spent[0] / n


def bench_ludus(n: int, actors: int) -> tuple[float, float, float]:
    from ludus.cluster.dispatch import RayExecutor
    from ludus.config import Settings

    settings = Settings(max_actors=actors, cpus_per_actor=1.0, gpus_per_trial=0.0, device="cpu")
    t0 = time.perf_counter()
    ex = RayExecutor(settings, None)
    ex.start(wait_all=True)
    ex.run(new_study(), Trivial(), actors * 2, None, None)  # warm: imports + objective cached on every actor
    startup = time.perf_counter() - t0
    try:
        study = new_study()
        t0 = time.perf_counter()
        ex.run(study, Trivial(), n, None, None)
        wall = time.perf_counter() - t0
    finally:
        ex.close()
    objective = sum(t.user_attrs.get("duration_s", 0.0) for t in study.trials) / n / actors
    return wall / n, objective, startup


def bench_tune(n: int, actors: int) -> tuple[float, float] | str:
    try:
        from ray import tune
        from ray.tune.search.optuna import OptunaSearch
    except ImportError as exc:
        return f"skipped: ray[tune] not installed ({exc.__class__.__name__})"

    def trainable(config):
        return {"loss": (config["x"] - 1) ** 2 + (config["y"] + 2) ** 2}

    search = OptunaSearch(
        space={"x": optuna.distributions.FloatDistribution(-5, 5), "y": optuna.distributions.FloatDistribution(-5, 5)},
        metric="loss",
        mode="min",
        sampler=make_sampler("tpe", 0),
    )
    with tempfile.TemporaryDirectory() as tmp:
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(search_alg=search, num_samples=n, max_concurrent_trials=actors),
            run_config=tune.RunConfig(storage_path=tmp, verbose=0),
        )
        t0 = time.perf_counter()
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), contextlib.redirect_stderr(null):
            tuner.fit()  # Tune prints its own tables; keep this benchmark's output to the figures
        wall = time.perf_counter() - t0
    return wall / n, 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--actors", type=int, default=32, help="N: actors (= trials asked per batch)")
    ap.add_argument("--tune-trials", type=int, default=48, help="Tune is slow per trial; fewer trials")
    args = ap.parse_args()

    import ray

    ray.init(
        address="local",
        num_cpus=max(args.actors, 2) + 1,
        num_gpus=0,
        include_dashboard=False,
        log_to_driver=False,
        namespace="ludus-bench",
    )
    print(
        f"dispatch overhead, trivial objective, TPE (multivariate, constant liar); {args.trials} trials; "
        f"host CPUs={os.cpu_count()} (shared with other work: figures are contended)"
    )
    sampler = bench_sampler(args.trials)
    rows: list[tuple[str, str]] = []

    def row(name, per_trial, objective, note=""):
        over = per_trial - objective
        rows.append(
            (
                name,
                (
                    f"{per_trial * 1e3:9.2f} {over * 1e3:10.2f} {sampler * 1e3:8.2f} "
                    f"{(over - sampler) * 1e3:9.2f}  {note}"
                ),
            )
        )
        return over

    row("optuna study.optimize", *bench_optuna(args.trials), "in process, 1 at a time")
    results = {}
    for k in sorted({1, args.actors}):
        per, obj, startup = bench_ludus(args.trials, k)
        results[k] = row(f"ludus RayExecutor {k} actor(s)", per, obj, f"pool start {startup:.1f}s (once per job)")
    tune_res = bench_tune(args.tune_trials, args.actors)
    if isinstance(tune_res, str):
        rows.append(("ray tune + OptunaSearch", tune_res))
    else:
        row(
            "ray tune + OptunaSearch",
            *tune_res,
            f"{args.tune_trials} trials, {args.actors} concurrent, Tuner.fit() wall",
        )

    print(f"{'':34s} {'ms/trial':>9s} {'overhead':>10s} {'sampler':>8s} {'dispatch':>9s}")
    for name, text in rows:
        print(f"{name:34s} {text}")
    print("overhead = wall/trial - objective/parallelism (sampler included); dispatch = overhead - sampler")
    print(f"ludus_overhead_ms_per_trial={results[args.actors] * 1e3:.2f}")
    ray.shutdown()


if __name__ == "__main__":
    main()

"""`ludus optimize JOB.json`, `ludus recommend` and `ludus show-job`: run a job here and read what it published."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ludus.cli.common import console, fail, print_table

if TYPE_CHECKING:
    from typing_extensions import Self

TOP_DEFAULT = 5


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("optimize", help="Run a job file (or - for stdin) here: CPO or static search, then publish.")(
        optimize_command
    )
    app.command("recommend", help="Parameters published for the next session; re-scores the active CPO model "
                                  "on the latest conditions.")(recommend_command)


# --- ludus optimize ---------------------------------------------------------------------------------------


def optimize_command(
    job_file: Annotated[str, typer.Argument(help="job JSON file, or - to read it from stdin")],
    no_ray: Annotated[bool, typer.Option("--no-ray", help="run trials in this process (no Ray)")] = False,
    ray_address: Annotated[
        str | None, typer.Option("--ray-address", help="join this Ray cluster instead of starting a local Ray")
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="start the job's searches over (no resume)")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the JobResult as JSON instead of tables")] = False,
) -> None:
    from ludus.config import get_settings
    from ludus.contracts.job import parse_job
    from ludus.db.engine import make_engine
    from ludus.db.schema import utcnow
    from ludus.pipeline.preflight import preflight

    if no_ray and ray_address:
        fail("--no-ray and --ray-address exclude each other")
    job = parse_job(_read_job_text(job_file))  # InputError (field, value, rule) before anything is touched
    settings = get_settings()
    if ray_address:
        settings = settings.model_copy(update={"ray_address": ray_address})
    engine = make_engine(settings.database_url)
    preflight(job, settings=settings, engine=engine)  # schema, strategy, overrides, symbols, deadline, device
    _refuse_another_payload(engine, job)  # a job id names one job
    started = utcnow()
    executor = None
    if no_ray:
        from ludus.search.trial import InProcessExecutor

        executor = InProcessExecutor()
    else:
        share_cores_with_local_ray(settings.ray_address)
    # executor None: run_job starts the Ray executor itself, only once the job has passed validation
    display = ProgressDisplay(quiet=as_json)
    try:
        with display:
            result = _run(job, engine, settings, display, executor, resume=not fresh)
    finally:
        if executor is not None:
            executor.close()
    _record_job(engine, job, result, started)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
        return
    print_result(result)


def share_cores_with_local_ray(ray_address: str | None) -> None:
    """Leave a core to a local Ray's own processes: the driver's torch (gate and final fits) on every core
    beside Ray's raylet, GCS and idle actors oversubscribes a small machine; on 2 cores the gate ran ~10x
    slower with 2 threads than with 1."""
    import os

    if ray_address:
        return  # the trials run elsewhere; this machine's cores are the driver's
    import torch

    torch.set_num_threads(max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) - 1)))


def _run(job: Any, engine: Any, settings: Any, display: ProgressDisplay, executor: Any, resume: bool) -> Any:
    from ludus.pipeline import run_job

    return run_job(job, engine=engine, settings=settings, progress=display.on_event, executor=executor,
                   resume=resume)


def _read_job_text(job_file: str) -> str:
    if job_file == "-":
        return sys.stdin.read()
    path = Path(job_file)
    try:
        return path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        fail(f"{job_file}: cannot be read ({exc.strerror if isinstance(exc, OSError) else exc})")


def _refuse_another_payload(engine: Any, job: Any) -> None:
    """A job id names one job: a known id with a different payload is refused (exit 2) before anything runs,
    instead of resuming the other job's searches and printing their result."""
    from ludus.contracts.job import canonical_payload
    from ludus.stores import jobs
    from ludus.stores.unit import transaction

    with transaction(engine) as conn:
        jobs.check_payload(conn, job.job_id, job.payload(), canonical=canonical_payload)


def _record_job(engine: Any, job: Any, result: Any, started: datetime) -> None:
    """Keep a finished record of a job run here (for `ludus jobs show`), in one transaction after the run:
    created and started when the run began, one attempt, finished now.

    Not before the run: an unfinished record would look like an orphan to a worker's reaper, and a rejected
    job must leave nothing behind. A record that exists already (a worker's) is left alone.
    """
    import os
    import socket

    from ludus.contracts.job import canonical_payload
    from ludus.stores import jobs
    from ludus.stores.unit import transaction

    owner = f"ludus-optimize-{socket.gethostname()}-{os.getpid()}"
    with transaction(engine) as conn:
        _record, created = jobs.accept(conn, job.job_id, job.payload(), now=started,
                                       canonical=canonical_payload)
        if created and jobs.claim(conn, job.job_id, owner, lease_s=60.0, now=started):
            # run here, not submitted: nobody waits for a result message
            jobs.finish(conn, job.job_id, owner, jobs.SUCCEEDED, result.to_dict(), announce=False)


class ProgressDisplay:
    """A rich progress bar fed by ProgressEvents; phase changes and verdicts are also printed as lines."""

    LINE_PHASES = ("loading_data", "conditions", "labels", "gate", "training", "exporting", "persisted", "failed")

    def __init__(self, quiet: bool = False) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.quiet = quiet
        self.progress = Progress(TextColumn("[bold]{task.fields[phase]:<12}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.description}"), TimeElapsedColumn(), console=console,
                                 transient=True, disable=quiet)
        self.task = self.progress.add_task("starting", total=None, phase="accepted")
        self.phase: str | None = None
        self.events: list[Any] = []

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def on_event(self, event: Any) -> None:
        """The run_job progress callback."""
        self.events.append(event)
        if self.quiet:
            return
        message = event.message[:160]
        if event.best_value is not None and event.phase == "search":
            message += f" (best {event.best_value:.4f})"
        self.progress.update(self.task, description=message, phase=event.phase,
                             total=event.total if event.total else None, completed=event.step or 0)
        new_phase = event.phase != self.phase
        self.phase = event.phase
        if event.phase in self.LINE_PHASES or (new_phase and event.phase != "succeeded"):
            self.progress.console.print(f"[dim]{datetime.now():%H:%M:%S}[/] [bold]{event.phase}[/] "
                                        f"{event.message}", highlight=False, soft_wrap=True)


def print_result(result: Any) -> None:
    """One table per symbol (decision, parameters, holdout comparison) and the phase timings."""
    for s in result.symbols:
        table = Table(show_header=False, title=f"{result.strategy} {s.symbol} {result.interval} ({result.mode})",
                      title_justify="left")
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        table.add_row("published", "[green]yes[/]" if s.published else "[red]no[/]")
        table.add_row("parameters", _params(s.parameters))
        if s.baseline_parameters is not None and s.baseline_parameters != s.parameters:
            table.add_row("baseline θ", _params(s.baseline_parameters))
        if s.expected_return is not None:
            table.add_row("expected return", f"{s.expected_return:+.5f} per bar")
        h = s.holdout
        if h.cpo is not None or h.baseline is not None:
            table.add_row("holdout Sharpe", f"CPO {_num(h.cpo)}  baseline {_num(h.baseline)}  "
                                            f"defaults {_num(h.defaults)}")
            table.add_row("improvement", _fmt(s.improvement, "+.3f"))
            table.add_row("DSR", _fmt(s.dsr, ".3f"))
        table.add_row("valid for", str(s.valid_for) if s.valid_for else "-")
        table.add_row("model version", s.model_version or "-")
        table.add_row("reason", s.reason)
        print_table(table)
    timings = Table("phase", "seconds", title="timings", title_justify="left")
    for key, value in result.timings.items():
        if key == "label_bar_evals_per_s":
            continue
        timings.add_row(key, f"{value:.2f}")
    console.print(timings)
    if "label_bar_evals_per_s" in result.timings:
        console.print(f"label throughput: {result.timings['label_bar_evals_per_s']:,.0f} bar-evals/s")
    console.print(f"job {result.job_id}: {result.status}")


def _params(params: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (params or {}).items()) or "-"


def _num(metrics: Any) -> str:
    return _fmt(None if metrics is None else metrics.sharpe, ".2f")


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


# --- ludus recommend --------------------------------------------------------------------------------------


def recommend_command(
    strategy: Annotated[str, typer.Option("--strategy", "-s", help="strategy name, e.g. sma_cross")],
    symbol: Annotated[str, typer.Option("--symbol", help="symbol, e.g. SPX")],
    interval: Annotated[str, typer.Option("--interval", "-i", help="bar interval")] = "1d",
    top: Annotated[int, typer.Option("--top", min=1, help="candidates to show from the re-scored model")] = TOP_DEFAULT,
    as_json: Annotated[bool, typer.Option("--json", help="print the recommendation as JSON (for scripts)")] = False,
) -> None:
    from ludus.cli.common import open_database
    from ludus.config import get_settings
    from ludus.data.symbols import validate_interval, validate_symbol
    from ludus.stores.parameters import read_active

    symbol, interval = validate_symbol(symbol), validate_interval(interval)
    settings = get_settings()
    engine = open_database(settings)
    with engine.connect() as conn:
        row = read_active(conn, strategy, symbol, interval)
    if row is None:
        fail(f"strategy={strategy} symbol={symbol} interval={interval}: nothing published yet "
             f"(run `ludus optimize JOB.json` first)")
    scored = rescore(engine, settings, strategy, symbol, interval)
    if as_json:
        typer.echo(json.dumps(recommendation_document(row, scored, top), indent=2, default=str))
        return
    table = Table(show_header=False, title=f"published: {strategy} {symbol} {interval}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("valid for", str(row.valid_for))
    table.add_row("parameters", _params(row.parameters))
    table.add_row("expected return", _fmt(row.expected_metric, "+.5f"))
    table.add_row("baseline θ", _params(row.baseline_parameters))
    table.add_row("model version", str(row.model_version) if row.model_version is not None else "- (baseline)")
    table.add_row("job", str(row.job_id or "-"))
    print_table(table)

    if scored is None:
        console.print("no active CPO model for this key: the parameters above are the unconditional baseline")
        return
    cand = Table("rank", "parameters", "expected return", "published",
                 title=f"model version {scored['version']} re-scored on the conditions of {scored['as_of']}",
                 title_justify="left")
    for rank, (params, value) in enumerate(scored["ranking"][:top], start=1):
        cand.add_row(str(rank), _params(params), f"{value:+.5f}", "*" if params == row.parameters else "")
    console.print(cand)


def recommendation_document(row: Any, scored: dict[str, Any] | None, top: int) -> dict[str, Any]:
    """What `ludus recommend --json` prints: the published row and the active model's re-scored candidates."""
    published = {"strategy": row.strategy, "symbol": row.symbol, "interval": row.interval,
                 "valid_for": row.valid_for.isoformat(), "parameters": row.parameters,
                 "expected_return": row.expected_metric, "baseline_parameters": row.baseline_parameters,
                 "model_version": row.model_version, "job_id": row.job_id,
                 "updated_at": row.updated_at.isoformat() if row.updated_at else None}
    model = None
    if scored is not None:
        model = {"version": scored["version"], "as_of": scored["as_of"],
                 "candidates": [{"parameters": p, "expected_return": v} for p, v in scored["ranking"][:top]]}
    return {"published": published, "model": model}


def rescore(engine: Any, settings: Any, strategy: str, symbol: str, interval: str,
            version: Any = None) -> dict[str, Any] | None:
    """Score the active model version's (or ``version``'s) candidates at the latest conditions from the price
    store.

    Returns None without an active version; otherwise ``version``, ``as_of`` (the last bar) and ``ranking``:
    (parameters, expected return) best first. The same history window as the job that trained the model is
    read (its bar count), so unchanged data reproduces the job's own recommendation.
    """
    import numpy as np

    from ludus.cpo.onnx_export import OnnxScorer
    from ludus.cpo.recommend import recommend
    from ludus.data.conditions import compute_conditions
    from ludus.data.prices import PriceStore
    from ludus.errors import InputError
    from ludus.pipeline.run import CONTEXT_MARGIN
    from ludus.stores import models

    if version is None:
        with engine.connect() as conn:
            version = models.active(conn, strategy, symbol, interval)
    if version is None or version.onnx is None:
        return None
    metrics = version.metrics or {}
    candidates, theta = metrics.get("candidate_sets"), metrics.get("theta")
    if not candidates or theta is None:
        raise InputError("model_version", version.id, "this version does not carry its candidate set; "
                                                      "run the job again to register one that does")
    store = PriceStore(engine)
    bars = store.read(symbol, interval, last_n=int(metrics.get("bars") or 0) or None)
    if len(bars) == 0:
        raise InputError("symbol", symbol, f"no bars for {symbol} at interval {interval}")
    first = bars.timestamps[0].astype("datetime64[us]").astype(datetime) - CONTEXT_MARGIN
    last = bars.timestamps[-1].astype("datetime64[us]").astype(datetime)
    context = {s: store.read(s, interval, start=first, end=last) for s in metrics.get("conditions_from") or []}
    conditions = compute_conditions(bars, context or None)
    if list(conditions.names) != list(metrics.get("conditions") or conditions.names):
        raise InputError("model_version", version.id, "the model's conditions differ from those computed now")
    scorer = OnnxScorer(version.onnx, settings.device)
    rec = recommend(scorer, conditions.values[-1], np.asarray(theta, dtype=np.float32), list(candidates))
    order = np.argsort(-rec.scores, kind="stable")
    return {"version": version.id, "as_of": str(bars.timestamps[-1].astype("datetime64[D]")),
            "ranking": [(dict(candidates[int(k)]), float(rec.scores[int(k)])) for k in order],
            "recommendation": rec}

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
from ludus.vocabulary import (
    PHASE_ACCEPTED,
    PHASE_CONDITIONS,
    PHASE_EXPORTING,
    PHASE_FAILED,
    PHASE_GATE,
    PHASE_LABELS,
    PHASE_LOADING_DATA,
    PHASE_PERSISTED,
    PHASE_SUCCEEDED,
    PHASE_TRAINING,
)

if TYPE_CHECKING:
    from typing_extensions import Self

TOP_DEFAULT = 5


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("optimize", help="Run a job file (or - for stdin) here: CPO or static search, then publish.")(
        optimize_command
    )
    app.command(
        "recommend",
        help="Parameters published for the next session; re-scores the active CPO model on the latest conditions.",
    )(recommend_command)


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
        from ludus.cpo.threads import pin_torch_threads
        from ludus.search.trial import InProcessExecutor

        pin_torch_threads()  # everything runs here: torch on the cores this process owns, no more
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

    return run_job(job, engine=engine, settings=settings, progress=display.on_event, executor=executor, resume=resume)


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
        _record, created = jobs.accept(conn, job.job_id, job.payload(), now=started, canonical=canonical_payload)
        if created and jobs.claim(conn, job.job_id, owner, lease_s=60.0, now=started):
            # run here, not submitted: nobody waits for a result message
            jobs.finish(conn, job.job_id, owner, jobs.SUCCEEDED, result.to_dict(), announce=False)


class ProgressDisplay:
    """A rich progress bar fed by ProgressEvents; phase changes and verdicts are also printed as lines."""

    LINE_PHASES = (
        PHASE_LOADING_DATA,
        PHASE_CONDITIONS,
        PHASE_LABELS,
        PHASE_GATE,
        PHASE_TRAINING,
        PHASE_EXPORTING,
        PHASE_PERSISTED,
        PHASE_FAILED,
    )

    def __init__(self, quiet: bool = False) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.quiet = quiet
        self.progress = Progress(
            TextColumn("[bold]{task.fields[phase]:<12}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=quiet,
        )
        self.task = self.progress.add_task("starting", total=None, phase=PHASE_ACCEPTED)
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
        self.progress.update(
            self.task,
            description=message,
            phase=event.phase,
            total=event.total if event.total else None,
            completed=event.step or 0,
        )
        new_phase = event.phase != self.phase
        self.phase = event.phase
        if event.phase in self.LINE_PHASES or (new_phase and event.phase != PHASE_SUCCEEDED):
            self.progress.console.print(
                f"[dim]{datetime.now():%H:%M:%S}[/] [bold]{event.phase}[/] {event.message}",
                highlight=False,
                soft_wrap=True,
            )


def print_result(result: Any) -> None:
    """One table per symbol (decision, parameters, champion), one of its arms, and the phase timings."""
    for s in result.symbols:
        table = Table(
            show_header=False,
            title=f"{result.strategy} {s.symbol} {result.interval} ({result.mode})",
            title_justify="left",
        )
        table.add_column("field", style="bold")
        table.add_column("value", overflow="fold")
        if s.decision is not None:
            table.add_row("decision", f"[bold]{s.decision}[/] ({s.arm})")
        table.add_row("published", "[green]yes[/]" if s.published else "[red]no[/]")
        table.add_row("parameters", _params(s.parameters))
        if s.champion is not None:
            table.add_row("champion", f"{s.champion.arm} ({s.champion.source}): {_params(s.champion.parameters)}")
        if s.baseline_parameters is not None and s.baseline_parameters != s.parameters:
            table.add_row("baseline θ", _params(s.baseline_parameters))
        if s.expected_return is not None:
            table.add_row("expected return", f"{s.expected_return:+.5f} per bar")
        if s.configurations is not None:
            c = s.configurations
            table.add_row(
                "configurations",
                f"{c.total:,} tried on this key over {c.jobs} job(s): {c.candidates} "
                f"candidates, {c.model_trials} model trials, {c.baseline_trials} "
                f"baseline trials, {c.challengers} challengers",
            )
            table.add_row("z needed", _fmt(s.z_threshold, ".2f"))
        if s.windows:
            table.add_row(
                "out of sample",
                f"{s.oos_bars:,} bars in {len(s.windows)} windows, {s.windows[0].start}..{s.windows[-1].end}",
            )
        table.add_row("valid for", str(s.valid_for) if s.valid_for else "-")
        table.add_row("model version", s.model_version or "-")
        table.add_row("reason", s.reason)
        print_table(table)
        if s.arms:
            print_table(arms_table(s))
    timings = Table("phase", "seconds", title="timings", title_justify="left")
    for key, value in result.timings.items():
        if key == "label_bar_evals_per_s":
            continue
        timings.add_row(key, f"{value:.2f}")
    console.print(timings)
    if "label_bar_evals_per_s" in result.timings:
        console.print(f"label throughput: {result.timings['label_bar_evals_per_s']:,.0f} bar-evals/s")
    console.print(f"job {result.job_id}: {result.status}")


def arms_table(s: Any) -> Table:
    """Every arm on the out-of-sample path: Sharpe, ΔSharpe ± SE vs the champion, z, windows, trading."""
    table = Table(
        "arm",
        "role",
        "Sharpe",
        "ΔSharpe ± SE",
        "z",
        "passed",
        "per window",
        "turnover/yr",
        "θ switches/yr",
        title=f"{s.symbol}: arms out of sample (z needed {_fmt(s.z_threshold, '.2f')})",
        title_justify="left",
    )
    for a in s.arms:
        delta = "-" if a.delta_sharpe is None else f"{a.delta_sharpe:+.2f} ± {_fmt(a.delta_se, '.2f')}"
        seeds = f" (seeds {min(a.seed_sharpes):.2f}..{max(a.seed_sharpes):.2f})" if len(a.seed_sharpes) > 1 else ""
        table.add_row(
            a.name + ("" if a.publishable else " *"),
            a.role,
            _fmt(a.sharpe, ".2f") + seeds,
            delta,
            _fmt(a.z, ".2f"),
            "yes" if a.passed else "",
            " ".join(_fmt(x, ".2f") for x in a.window_sharpes),
            _fmt(a.turnover, ".1f"),
            _fmt(a.switches_per_year, ".1f"),
        )
    return table


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
        fail(
            f"strategy={strategy} symbol={symbol} interval={interval}: nothing published yet "
            f"(run `ludus optimize JOB.json` first)"
        )
    scored = rescore(engine, settings, strategy, symbol, interval, held=row.parameters)
    if as_json:
        typer.echo(json.dumps(recommendation_document(row, scored, top), indent=2, default=str))
        return
    table = Table(show_header=False, title=f"published: {strategy} {symbol} {interval}", title_justify="left")
    table.add_column("field", style="bold")
    table.add_column("value", overflow="fold")
    table.add_row("valid for", str(row.valid_for))
    table.add_row("parameters", _params(row.parameters))
    if row.decision is not None:
        table.add_row("decision", f"{row.decision} ({row.arm}), on {row.evidence_bars or 0:,} out-of-sample bars")
    table.add_row("expected return", _fmt(row.expected_metric, "+.5f"))
    table.add_row("baseline θ", _params(row.baseline_parameters))
    table.add_row("model version", str(row.model_version) if row.model_version is not None else "- (no model)")
    table.add_row("job", str(row.job_id or "-"))
    print_table(table)

    if scored is None:
        console.print("no active CPO model for this key: the parameters above are not a model's choice")
        return
    cand = Table(
        "rank",
        "parameters",
        "expected return (net of the move)",
        "published",
        title=f"model version {scored['version']} re-scored on the conditions of {scored['as_of']} "
        f"(holding {scored['held_position']:+.0f} now)",
        title_justify="left",
    )
    for rank, (params, value) in enumerate(scored["ranking"][:top], start=1):
        cand.add_row(str(rank), _params(params), f"{value:+.5f}", "*" if params == row.parameters else "")
    console.print(cand)


def recommendation_document(row: Any, scored: dict[str, Any] | None, top: int) -> dict[str, Any]:
    """What `ludus recommend --json` prints: the published row and the active model's re-scored candidates."""
    published = {
        "strategy": row.strategy,
        "symbol": row.symbol,
        "interval": row.interval,
        "valid_for": row.valid_for.isoformat(),
        "parameters": row.parameters,
        "expected_return": row.expected_metric,
        "baseline_parameters": row.baseline_parameters,
        "model_version": row.model_version,
        "job_id": row.job_id,
        "decision": row.decision,
        "arm": row.arm,
        "evidence_bars": row.evidence_bars,
        "updated_at": row.updated_at.isoformat() if row.updated_at else None,
    }
    model = None
    if scored is not None:
        model = {
            "version": scored["version"],
            "as_of": scored["as_of"],
            "held_position": scored["held_position"],
            "candidates": [{"parameters": p, "expected_return": v} for p, v in scored["ranking"][:top]],
        }
    return {"published": published, "model": model}


def rescore(
    engine: Any,
    settings: Any,
    strategy: str,
    symbol: str,
    interval: str,
    version: Any = None,
    *,
    held: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """The active model version's (or ``version``'s) candidates re-scored on the latest bars of the price store
    with its model card (``ludus.cpo.recommend.rescore``), net of the cost of moving from the position ``held``
    (the θ live now; None: flat).

    Returns None without an active version; otherwise ``version``, ``as_of`` (the last bar), ``ranking``
    ((parameters, expected return net of the move) best first), ``held_position`` and ``recommendation``.
    """
    from ludus.contracts.model_card import ModelCard
    from ludus.cpo.recommend import rescore as rescore_card
    from ludus.data.prices import PriceStore
    from ludus.errors import InputError
    from ludus.stores import models

    if version is None:
        with engine.connect() as conn:
            version = models.active(conn, strategy, symbol, interval)
    if version is None or version.onnx is None:
        return None
    try:
        card = ModelCard.model_validate(version.metrics or {})
    except ValueError:
        raise InputError(
            "model_version",
            version.id,
            "this version carries no model card (trained before cards existed); run the job again",
        ) from None
    scored = rescore_card(
        PriceStore(engine),
        card,
        version.onnx,
        held_parameters=held,
        trials_dir=settings.trials_dir,
        device=settings.device,
    )
    return {
        "version": version.id,
        "as_of": scored.as_of,
        "ranking": scored.ranking,
        "held_position": scored.recommendation.held_position,
        "recommendation": scored.recommendation,
    }

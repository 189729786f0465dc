"""`ludus worker`, `ludus submit`, `ludus watch`, `ludus dlq list|replay`: the broker side of Ludus."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ludus.cli.common import console, err_console, fail, print_table
from ludus.vocabulary import JOB_REJECTED, JOB_RUNNING, JOB_SUCCEEDED

# what `ludus watch` knows of a job before it follows its events
FINISHED, RUNNING, UNKNOWN, UNREADABLE = "finished", JOB_RUNNING, "unknown", "unreadable"
LOOK_AGAIN_S = 2.0  # how often `watch` reads the stored record again (a result it was not bound for)
# how long an id with no record, no dead letter and an empty jobs queue gets before it is called unknown
# (a worker may hold the message for the moment between fetching and recording it)
UNKNOWN_GRACE_S = 5.0


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("worker", help="Consume the jobs queue: run jobs, publish progress and results.")(worker)
    app.command("submit", help="Validate a job file locally and publish it (with confirms); prints the job id.")(submit)
    app.command("watch", help="Follow a job's progress until its result; exit 1 when it failed.")(watch)
    dlq = typer.Typer(help="The dead-letter queue: rejected jobs and their reasons.", no_args_is_help=True)
    dlq.command("list", help="Dead letters: job id, reason, time (they stay in the queue).")(dlq_list)
    dlq.command("replay", help="Send dead letters back to the jobs queue.")(dlq_replay)
    app.add_typer(dlq, name="dlq")


def worker(
    no_ray: bool = typer.Option(False, "--no-ray", help="run trials in this process (no Ray executor)"),
    max_jobs: int | None = typer.Option(None, "--max-jobs", min=1, help="override max_concurrent_jobs"),
    http_port: int | None = typer.Option(None, "--http-port", help="override http_port (/healthz, /metrics)"),
) -> None:
    settings = service_settings(max_jobs)
    factory = None
    if no_ray:
        from ludus.search.trial import InProcessExecutor

        def factory(job):
            return InProcessExecutor()

    serve(
        settings,
        factory,
        http_port,
        lambda w, port: (
            f"worker {w.id}: queue {w.topology.jobs_queue}, {settings.max_concurrent_jobs} slot(s), http :{port}"
        ),
    )


def service_settings(max_jobs: int | None):
    """Logging for a long-running service (LUDUS_LOG_FORMAT, LUDUS_LOG_LEVEL), and the settings with the
    command line's overrides."""
    from ludus.config import get_settings
    from ludus.logs import configure

    settings = get_settings()
    configure(settings.log_format, settings.log_level)
    if max_jobs is not None:
        settings = settings.model_copy(update={"max_concurrent_jobs": max_jobs})
    return settings


def serve(settings, executor_factory, http_port: int | None, banner, background=()) -> None:
    """Run a queue Worker until SIGTERM/SIGINT (what `ludus worker` and `ludus head` share).

    ``banner(worker, port)`` is printed once the worker exists; each of ``background(worker)`` returns a
    started helper with ``stop()`` (gauges, the autoscaler), stopped when the worker returns.
    """
    import signal

    from ludus.worker.worker import Worker

    port = settings.http_port if http_port is None else http_port
    check_http_port(settings.http_host, port)
    w = Worker(settings, executor_factory=executor_factory, http_port=port)

    def on_signal(signum, frame) -> None:
        w.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    helpers = [start(w) for start in background]
    if settings.autoscale_enabled:
        from ludus.cluster.autoscale import QueueDepthAutoscaler

        # the backlog by architecture: the GPUs requested are pinned to the architectures its jobs allow
        helpers.append(QueueDepthAutoscaler(settings, w.backlog_snapshot).start())
    if settings.schedule_enabled:
        from ludus.schedule.scheduler import SchedulerThread

        helpers.append(SchedulerThread(settings).start())
    console.print(banner(w, port), highlight=False)
    try:
        w.run()
    finally:
        for helper in helpers:
            helper.stop()


def check_http_port(host: str, port: int) -> None:
    """Refuse a port out of range or already taken, before the worker starts (InputError, exit 2)."""
    import socket

    from ludus.errors import InputError

    if not 0 <= port <= 65535:
        raise InputError("http_port", port, "must be between 0 and 65535 (0: any free port)")
    if port == 0:
        return
    probe = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the health server's own bind
    try:
        probe.bind((host, port))
    except OSError as exc:
        raise InputError(
            "http_port",
            port,
            f"cannot listen on {host}:{port} ({exc.strerror}); another process "
            "holds it: pick another with --http-port or LUDUS_HTTP_PORT",
        ) from None
    finally:
        probe.close()


def submit(
    path: Annotated[Path, typer.Argument(help="job JSON file ('-' reads stdin)")],
    offline: Annotated[
        bool,
        typer.Option(
            "--offline", help="skip the checks against the database (schema, price tables): the job's own checks only"
        ),
    ] = False,
) -> None:
    import sys

    from ludus.config import get_settings
    from ludus.contracts.job import parse_job
    from ludus.pipeline.preflight import preflight
    from ludus.queue.publisher import Publisher

    if str(path) == "-":
        raw = sys.stdin.buffer.read()
    else:
        if not path.is_file():
            fail(f"job file {path} does not exist")
        raw = path.read_bytes()
    job = parse_job(raw)  # InputError -> one red line, exit 2
    # what a worker would refuse is refused here, before it reaches the queue (the device is the worker's)
    settings = get_settings()
    engine = None
    if not offline:
        from ludus.db.engine import make_engine

        engine = make_engine(settings.database_url)
    preflight(job, settings=settings, engine=engine, local_compute=False)
    with broker_session("ludus submit") as (_settings, topology, conn):
        Publisher(conn.channel()).publish(
            topology.jobs_exchange, topology.jobs_routing_key, job.to_json(), message_id=str(job.job_id)
        )
    console.print(str(job.job_id), highlight=False)


def watch(
    job_id: str = typer.Argument(..., help="the job id (UUID)"),
    timeout: float | None = typer.Option(None, "--timeout", help="give up after this many seconds"),
) -> None:
    import time
    from uuid import UUID

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ludus import constants as c
    from ludus.queue.topology import queue_depth

    try:
        job_id = str(UUID(job_id))
    except ValueError:
        fail(f"job id {job_id!r} is not a UUID")
    result: dict | None = None
    with broker_session(f"ludus watch {job_id}") as (settings, topology, conn):
        channel = conn.channel()
        queue = channel.queue_declare("", exclusive=True, auto_delete=True).method.queue
        for key in (c.progress_routing_key(job_id), c.result_routing_key(job_id)):
            channel.queue_bind(queue, topology.events_exchange, routing_key=key)
        # bound first, looked up second: a job that ends in between is caught by one or the other
        state, result = _job_state(settings, job_id)
        if state == UNKNOWN:
            result = _dead_letter_result(conn, topology, job_id)
            if result is None:
                state = _wait_for_a_trace(settings, channel, topology, job_id)
        deadline = None if timeout is None else time.monotonic() + timeout
        next_look = time.monotonic() + LOOK_AGAIN_S
        with Progress(
            TextColumn("[bold]{task.fields[phase]:<12}"),
            BarColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as bar:
            waiting = (
                f"not recorded yet: {queue_depth(channel, topology.jobs_queue)} message(s) wait in "
                f"{topology.jobs_queue}"
                if state == UNKNOWN
                else "waiting for the worker"
            )
            task = bar.add_task(waiting, total=None, phase="queued")
            while result is None:
                if deadline is not None and time.monotonic() > deadline:
                    fail(f"no result for {job_id} within {timeout:.0f}s", 1)
                if time.monotonic() >= next_look:  # a result published while we were not bound is stored
                    next_look = time.monotonic() + LOOK_AGAIN_S
                    _, result = _job_state(settings, job_id)
                    if result is not None:
                        break
                method, _props, body = channel.basic_get(queue, auto_ack=True)
                if method is None:
                    conn.process_data_events(time_limit=0.2)
                    continue
                data = json.loads(body)
                if method.routing_key.endswith(".result"):
                    result = data
                    break
                total, step = data.get("total"), data.get("step")
                desc = data.get("message") or ""
                if data.get("best_value") is not None:
                    desc += f" (best {data['best_value']:.4g})"
                bar.update(
                    task, phase=data.get("phase", ""), description=desc, total=total or None, completed=step or 0
                )
    _print_result(result)
    if result.get("status") != JOB_SUCCEEDED:
        raise SystemExit(1)


def _job_state(settings, job_id: str) -> tuple[str, dict | None]:
    """(state, stored result): FINISHED with its result, RUNNING, UNKNOWN (no record), or UNREADABLE when the
    jobs table cannot be read from here (then only the broker's events tell)."""
    try:
        from ludus.db.engine import make_engine
        from ludus.stores import jobs
        from ludus.stores.unit import transaction

        with transaction(make_engine(settings.database_url)) as conn:
            record = jobs.get(conn, job_id)
    except Exception:  # noqa: BLE001 - the database is optional for watching
        return UNREADABLE, None
    if record is None:
        return UNKNOWN, None
    if record.finished and record.result:
        return FINISHED, dict(record.result)
    return RUNNING, None


def _dead_letter_result(conn, topology, job_id: str) -> dict | None:
    """A rejected message that never became a job record: its dead letter says why."""
    from ludus.queue.deadletter import browse

    for letter in browse(conn, topology):
        if letter.job_id == job_id:
            return {
                "job_id": job_id,
                "status": JOB_REJECTED,
                "error": {"field": letter.field or None, "value": letter.value or None, "reason": letter.reason},
            }
    return None


def _wait_for_a_trace(settings, channel, topology, job_id: str) -> str:
    """Wait a little for a record of an id nobody knows yet; exit 2 ("unknown job") when nothing waits in the
    jobs queue that could be it."""
    import time

    from ludus.queue.topology import queue_depth

    end = time.monotonic() + UNKNOWN_GRACE_S
    while time.monotonic() < end:
        if queue_depth(channel, topology.jobs_queue) > 0:
            return UNKNOWN  # it may be one of them: follow it
        state, _ = _job_state(settings, job_id)
        if state != UNKNOWN:
            return state
        time.sleep(0.5)
    fail(
        f"unknown job {job_id}: no record in the jobs table, no dead letter, and nothing waiting in "
        f"{topology.jobs_queue} (submit it with `ludus submit JOB.json`)"
    )


def _print_result(result: dict) -> None:
    from rich.table import Table

    status = result.get("status")
    colour = "green" if status == JOB_SUCCEEDED else "red"
    console.print(f"[bold {colour}]{status}[/] job {result.get('job_id')}")
    error = result.get("error")
    if error:
        console.print(f"  {error.get('field') or '$'}={error.get('value')!s}: {error.get('reason')}", highlight=False)
    symbols = result.get("symbols") or []
    if symbols:
        table = Table("symbol", "published", "parameters", "expected return", "reason")
        for s in symbols:
            table.add_row(
                str(s.get("symbol")),
                "yes" if s.get("published") else "no",
                json.dumps(s.get("parameters")),
                str(s.get("expected_return")),
                str(s.get("reason") or ""),
            )
        print_table(table)


def dlq_list(limit: int = typer.Option(100, "--limit", min=1, help="show at most this many")) -> None:
    from rich.table import Table

    from ludus.queue.deadletter import browse

    with broker_session("ludus dlq list") as (_settings, topology, conn):
        letters = browse(conn, topology, limit=limit)
    table = Table("job id", "reason", "time", title=f"dead letters in {topology.dead_letter_queue}")
    for letter in letters:
        field = f"{letter.field}={letter.value}: " if letter.field else ""
        table.add_row(letter.job_id or "-", field + letter.reason, letter.at)
    print_table(table)
    console.print(f"{len(letters)} dead letter(s)")


def dlq_replay(
    job_id: str | None = typer.Option(None, "--job-id", help="replay the dead letters of this job"),
    all_: bool = typer.Option(False, "--all", help="replay every dead letter"),
) -> None:
    from ludus.queue.deadletter import replay

    if (job_id is None) == (not all_):
        fail("give exactly one of --job-id ID or --all")
    with broker_session("ludus dlq replay") as (_settings, topology, conn):
        moved, refused = replay(conn, topology, job_id=job_id)
    for letter in moved:
        console.print(
            f"replayed {letter.job_id or '-'} ({letter.reason}): it runs again as a new attempt", highlight=False
        )
    console.print(f"{len(moved)} message(s) sent back to {topology.jobs_queue}")
    for refusal in refused:
        err_console.print(
            f"[bold red]not replayed[/] {refusal.letter.job_id or '-'}: {refusal.reason}",
            highlight=False,
            soft_wrap=True,
        )
    if refused:
        fail(
            f"{len(refused)} dead letter(s) left in {topology.dead_letter_queue}: replaying them would only "
            "get them refused again"
        )


@contextmanager
def broker_session(name: str) -> Iterator[tuple[Any, Any, Any]]:
    """(settings, topology, connection) for a short-lived command: the topology is declared first and the
    connection closed afterwards, whatever happens."""
    from ludus.config import get_settings
    from ludus.queue.connection import connect
    from ludus.queue.topology import Topology, declare

    settings = get_settings()
    topology = Topology.from_settings(settings)
    conn = connect(settings.amqp_url, name=name)
    try:
        declare(conn.channel(), topology)
        yield settings, topology, conn
    finally:
        if conn.is_open:
            conn.close()

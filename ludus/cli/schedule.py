"""`ludus schedule run|list|fired`: the nightly runs of trials/schedule.yaml."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ludus.cli.common import console, open_database, print_table

FileOpt = Annotated[
    Path | None,
    typer.Option(
        "--file", "-f", help="the schedule file (default: LUDUS_SCHEDULE_FILE, else schedule.yaml of trials/)"
    ),
]

schedule_app = typer.Typer(
    help="Cron schedules of job templates in an exchange's sessions, and retention.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Add this module's command group to the root app."""
    app.add_typer(schedule_app, name="schedule")


def _load(file: Path | None):
    from ludus.config import get_settings
    from ludus.schedule.spec import load_schedule

    settings = get_settings()
    return settings, load_schedule(file or settings.schedule_file, settings.trials_dir)


@schedule_app.command(
    "run",
    help="Publish each due slot's job once (claimed in the database first, so a "
    "restart or a second scheduler never publishes a slot twice).",
)
def schedule_run(
    file: FileOpt = None,
    once: Annotated[bool, typer.Option("--once", help="one pass over the due slots, then exit (for cron)")] = False,
) -> None:
    import logging
    import signal
    import threading

    from ludus.schedule.scheduler import Scheduler

    settings, spec = _load(file)
    engine = open_database(settings)
    scheduler = Scheduler(settings, spec, engine=engine)
    if once:
        fired = scheduler.tick()
        for f in fired:
            console.print(
                f"{f.schedule} {f.slot_at.isoformat()}: {f.outcome} {f.job_id or ''} {f.detail}".rstrip(),
                highlight=False,
                soft_wrap=True,
            )
        console.print(f"{len(fired)} slot(s) handled", highlight=False)
        return
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.WARNING)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    console.print(
        f"scheduler {scheduler.owner}: {len(spec.schedules)} schedule(s) from {spec.source}, calendar "
        f"{spec.calendar}, catch-up {settings.schedule_catchup_s:g}s",
        highlight=False,
        soft_wrap=True,
    )
    scheduler.run(stop)


@schedule_app.command("list", help="The schedules and the next slots each will fire.")
def schedule_list(
    file: FileOpt = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=50, help="next slots to show")] = 3,
) -> None:
    from ludus.schedule.scheduler import Scheduler
    from ludus.schedule.spec import RETENTION_SCHEDULE

    settings, spec = _load(file)
    scheduler = Scheduler(settings, spec, publish=lambda job, headers: None)
    upcoming = scheduler.next_slots(count)
    zone = spec.zone
    table = Table(
        "schedule",
        "cron",
        "sessions",
        "job template",
        "next slots",
        title=f"{spec.source}: calendar {spec.calendar}, cron read in {zone.key}",
        title_justify="left",
    )
    rows = [(s.name, s.cron, s.sessions, s.job) for s in spec.schedules if s.enabled]
    if spec.retention is not None and spec.retention.enabled:
        rows.append((RETENTION_SCHEDULE, spec.retention.cron, spec.retention.sessions, "(prune)"))
    for name, cron, sessions, job in rows:
        slots = "\n".join(f"{t.astimezone(zone):%a %Y-%m-%d %H:%M %Z}" for t in upcoming.get(name, []))
        table.add_row(name, cron, sessions, job, slots or "-")
    print_table(table)
    for s in spec.schedules:
        if s.enabled:  # the template must build and pass the job's own checks now, not at 17:30
            scheduler.build(s, upcoming[s.name][0] if upcoming.get(s.name) else scheduler.clock())


@schedule_app.command("fired", help="Slots that fired: when, the job id, published or why not.")
def schedule_fired(
    schedule: Annotated[str | None, typer.Option("--schedule", help="only this schedule")] = None,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="show at most this many")] = 20,
) -> None:
    from ludus.stores import slots

    engine = open_database()
    with engine.connect() as conn:
        records = slots.recent(conn, schedule, limit)
    table = Table(
        "schedule",
        "slot (UTC)",
        "job id",
        "claimed by",
        "published",
        "error",
        title=f"{len(records)} slot(s)",
        title_justify="left",
    )
    for r in records:
        table.add_row(
            r.schedule,
            f"{r.slot_at:%Y-%m-%d %H:%M}",
            r.job_id or "-",
            r.claimed_by,
            f"{r.published_at:%Y-%m-%d %H:%M:%S}" if r.published_at else "-",
            r.error or "-",
        )
    print_table(table)

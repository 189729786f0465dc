"""The scheduler: fires each slot of the schedule file once, however many schedulers run and restart.

A tick looks at the slots of the last ``schedule_catchup_s`` seconds (so slots missed during a restart still
fire) and, for each one nobody claimed yet: claims it in the database (the slot's row, see
:mod:`ludus.stores.slots`), builds its job from the template under the slot's deterministic id
(uuid5 of schedule name and slot time), runs the same checks as ``ludus submit``, publishes it with
confirms, and records the publication. A claim whose publication never got recorded (a scheduler died, the
broker was down) is taken over after ``claim_timeout_s`` and published again under the same id; the
worker's idempotency by job id keeps that from running the job twice. A template the checks refuse is
recorded with its reason and not retried.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from ludus.config import Settings
from ludus.contracts.job import OptimizationJob, parse_job
from ludus.db.schema import utcnow
from ludus.errors import InputError, TransientError
from ludus.schedule.slots import next_times, slot_job_id, slot_times
from ludus.schedule.spec import RETENTION_SCHEDULE, JobSchedule, ScheduleFile
from ludus.stores import slots
from ludus.stores.unit import transaction

log = logging.getLogger("ludus.schedule")

PUBLISHED = "published"
REFUSED = "refused"  # the job's checks failed: recorded, never retried
PENDING = "pending"  # claimed, publication failed for now: a later tick publishes it
ELSEWHERE = "elsewhere"  # another scheduler claimed the slot first
PRUNED = "pruned"
OUTCOMES = (PUBLISHED, REFUSED, PENDING, ELSEWHERE, PRUNED)

Publish = Callable[[OptimizationJob, dict[str, Any]], None]


@dataclass(frozen=True)
class Fired:
    """What one slot came to in this tick."""

    schedule: str
    slot_at: datetime
    job_id: uuid.UUID | None
    outcome: str
    detail: str = ""


class Scheduler:
    """Fires the slots of ``spec``. ``tick()`` does one pass (tests drive it with a fake ``clock``);
    ``run(stop)`` ticks until ``stop`` is set. ``publish(job, headers)`` defaults to the jobs exchange."""

    def __init__(
        self,
        settings: Settings,
        spec: ScheduleFile,
        *,
        engine: Engine | None = None,
        publish: Publish | None = None,
        clock: Callable[[], datetime] = utcnow,
        owner: str | None = None,
        claim_timeout_s: float = 120.0,
        poll_s: float = 30.0,
    ) -> None:
        if engine is None:
            from ludus.db.engine import make_engine

            engine = make_engine(settings.database_url)
        self.settings = settings
        self.spec = spec
        self.engine = engine
        self.publish = publish or BrokerPublisher(settings)
        self.clock = clock
        self.owner = owner or f"scheduler-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.catchup = timedelta(seconds=settings.schedule_catchup_s)
        self.claim_timeout = timedelta(seconds=claim_timeout_s)
        self.poll_s = poll_s
        self.zone = spec.zone
        self._by_name = {s.name: s for s in spec.schedules}

    # --- one pass ------------------------------------------------------------------------------------

    def tick(self) -> list[Fired]:
        """Fire every due slot nobody claimed, and finish stale claims; returns what happened."""
        now = self.clock()
        fired = self._resume_stale(now)
        for schedule in self.spec.schedules:
            if schedule.enabled:
                for at in self._due(schedule.name, schedule.cron, schedule.sessions, now):
                    fired.append(self._fire(schedule, at, now))
        retention = self.spec.retention
        if retention is not None and retention.enabled:
            for at in self._due(RETENTION_SCHEDULE, retention.cron, retention.sessions, now):
                fired.append(self._retain(at, now))
        return fired

    def _due(self, name: str, cron: str, rule: str, now: datetime) -> list[datetime]:
        # one broken schedule (a cron too dense for the window) must not keep the others from firing
        try:
            return self._unclaimed(name, cron, rule, now)
        except InputError as exc:
            log.error("schedule %s skipped: %s", name, exc)
            return []

    def next_slots(self, count: int = 3, now: datetime | None = None) -> dict[str, list[datetime]]:
        """The next ``count`` slots of every schedule (retention included), for ``ludus schedule list``."""
        now = now or self.clock()
        entries: list[tuple[str, str, str]] = [(s.name, s.cron, s.sessions) for s in self.spec.schedules if s.enabled]
        if self.spec.retention is not None and self.spec.retention.enabled:
            entries.append((RETENTION_SCHEDULE, self.spec.retention.cron, self.spec.retention.sessions))
        return {name: next_times(cron, self.spec.calendar, rule, self.zone, now, count) for name, cron, rule in entries}

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set; a failing tick (database or broker down) is logged and retried."""
        log.info(
            "scheduler %s: %d schedule(s) from %s on %s",
            self.owner,
            len(self.spec.schedules),
            self.spec.source or "?",
            self.spec.calendar,
        )
        while not stop.is_set():
            try:
                for f in self.tick():
                    log.info(
                        "slot %s %s: %s %s %s", f.schedule, f.slot_at.isoformat(), f.outcome, f.job_id or "", f.detail
                    )
            except Exception as exc:  # noqa: BLE001 - the next tick retries; claims keep it exactly-once
                log.warning("scheduler tick failed: %s", exc)
            stop.wait(self._sleep_s())

    # --- internals -----------------------------------------------------------------------------------

    def _unclaimed(self, name: str, cron: str, rule: str, now: datetime) -> list[datetime]:
        due = slot_times(cron, self.spec.calendar, rule, self.zone, now - self.catchup, now)
        if not due:
            return []
        with transaction(self.engine) as conn:
            done = slots.claimed_between(conn, name, due[0], due[-1])
        return [at for at in due if at not in done]

    def _fire(self, schedule: JobSchedule, at: datetime, now: datetime) -> Fired:
        job_id = slot_job_id(schedule.name, at)
        with transaction(self.engine) as conn:
            if not slots.claim(conn, schedule.name, at, str(job_id), self.owner, now=now):
                return Fired(schedule.name, at, job_id, ELSEWHERE)
        return self._publish_slot(schedule, at, job_id)

    def _publish_slot(self, schedule: JobSchedule, at: datetime, job_id: uuid.UUID) -> Fired:
        from ludus.pipeline.preflight import preflight

        try:
            job = self.build(schedule, at, job_id)
            preflight(job, settings=self.settings, engine=self.engine, local_compute=False, now=self.clock())
        except TransientError as exc:
            return Fired(schedule.name, at, job_id, PENDING, str(exc))
        except InputError as exc:
            with transaction(self.engine) as conn:
                slots.mark_failed(conn, schedule.name, at, self.owner, str(exc))
            log.warning("slot %s %s refused: %s", schedule.name, at.isoformat(), exc)
            return Fired(schedule.name, at, job_id, REFUSED, str(exc))
        headers = {"x-ludus-schedule": schedule.name, "x-ludus-slot": at.isoformat()}
        try:
            self.publish(job, headers)
        except Exception as exc:  # noqa: BLE001 - stays claimed and unpublished: a later tick retries
            return Fired(schedule.name, at, job_id, PENDING, f"{type(exc).__name__}: {exc}")
        with transaction(self.engine) as conn:
            slots.mark_published(conn, schedule.name, at, self.owner, now=self.clock())
        return Fired(schedule.name, at, job_id, PUBLISHED)

    def build(self, schedule: JobSchedule, at: datetime, job_id: uuid.UUID | None = None) -> OptimizationJob:
        """The slot's job: the template with the slot's job id (and deadline, when the schedule sets one)."""
        data = self.spec.template(schedule, self.settings.trials_dir)
        spelling = OptimizationJob.spelling_index()
        drop = {"job_id"} | ({"deadline"} if schedule.deadline_after_s else set())
        data = {k: v for k, v in data.items() if spelling.get(k, k) not in drop}
        data["job_id"] = str(job_id or slot_job_id(schedule.name, at))
        if schedule.deadline_after_s:
            data["deadline"] = (at + timedelta(seconds=schedule.deadline_after_s)).isoformat()
        try:
            return parse_job(data)
        except InputError as exc:
            raise InputError(f"schedules.{schedule.name}.job.{exc.field}", exc.value, exc.rule) from None

    def _resume_stale(self, now: datetime) -> list[Fired]:
        with transaction(self.engine) as conn:
            stale = slots.stale_claims(conn, now - self.claim_timeout)
        out = []
        for record in stale:
            schedule = self._by_name.get(record.schedule)
            if schedule is None or record.schedule == RETENTION_SCHEDULE or record.job_id is None:
                continue  # a schedule removed from the file, or a retention run: nothing to publish
            with transaction(self.engine) as conn:
                if not slots.take_over(conn, record, self.owner, now=now):
                    continue
            out.append(self._publish_slot(schedule, record.slot_at, uuid.UUID(record.job_id)))
        return out

    def _retain(self, at: datetime, now: datetime) -> Fired:
        from ludus.pipeline.retention import prune

        with transaction(self.engine) as conn:
            if not slots.claim(conn, RETENTION_SCHEDULE, at, None, self.owner, now=now):
                return Fired(RETENTION_SCHEDULE, at, None, ELSEWHERE)
        s = self.settings
        try:
            report = prune(
                s.database_url,
                models_older_than=timedelta(days=s.retention_models_days),
                studies_older_than=timedelta(days=s.retention_studies_days),
                now=now,
            )
        except Exception as exc:  # noqa: BLE001 - recorded; the next retention slot tries again
            with transaction(self.engine) as conn:
                slots.mark_failed(conn, RETENTION_SCHEDULE, at, self.owner, f"{type(exc).__name__}: {exc}")
            return Fired(RETENTION_SCHEDULE, at, None, REFUSED, str(exc))
        with transaction(self.engine) as conn:
            slots.mark_published(conn, RETENTION_SCHEDULE, at, self.owner, now=self.clock())
        return Fired(
            RETENTION_SCHEDULE,
            at,
            None,
            PRUNED,
            f"{len(report.model_versions)} model version(s), {len(report.studies)} study(ies)",
        )

    def _sleep_s(self) -> float:
        now = self.clock()
        upcoming = [t for ts in self.next_slots(1, now).values() for t in ts]
        until_next = min(((t - now).total_seconds() for t in upcoming), default=self.poll_s)
        return max(1.0, min(self.poll_s, until_next + 0.5))


class BrokerPublisher:
    """Publishes a job to the jobs exchange with confirms, on a connection of its own per call (slots are
    rare; the scheduler's thread never shares a pika connection)."""

    def __init__(self, settings: Settings) -> None:
        from ludus.queue.topology import Topology

        self.settings = settings
        self.topology = Topology.from_settings(settings)

    def __call__(self, job: OptimizationJob, headers: dict[str, Any]) -> None:
        from ludus.queue.connection import connect
        from ludus.queue.publisher import Publisher
        from ludus.queue.topology import declare

        conn = connect(self.settings.amqp_url, name="ludus scheduler")
        try:
            declare(conn.channel(), self.topology)
            Publisher(conn.channel()).publish(
                self.topology.jobs_exchange,
                self.topology.jobs_routing_key,
                job.to_json(),
                message_id=str(job.job_id),
                headers=headers,
            )
        finally:
            if conn.is_open:
                conn.close()


class SchedulerThread:
    """The scheduler beside a worker (``LUDUS_SCHEDULE_ENABLED``): ``start()`` and ``stop()``."""

    def __init__(self, settings: Settings) -> None:
        from ludus.schedule.spec import load_schedule

        self.scheduler = Scheduler(settings, load_schedule(settings.schedule_file, settings.trials_dir))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self.scheduler.run, args=(self._stop,), name="ludus-scheduler", daemon=True
        )

    def start(self) -> SchedulerThread:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

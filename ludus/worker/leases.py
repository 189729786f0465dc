"""Leases: the jobs this worker runs, their heartbeats, the database probe, and the reaper that takes over the
jobs of workers that died.

A running job's lease is renewed every third of ``job_lease_s``. A heartbeat that finds the job no longer
running under this worker tells the job to stop — unless the job simply finished (the pipeline's publishing
transaction ends the lease itself), which is not a loss. The reaper claims jobs whose lease expired or was
given back, oldest first; the jobs table's conditional UPDATE makes sure only one worker gets each.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

import sqlalchemy as sa

from ludus.db.engine import database_errors
from ludus.db.schema import jobs as jobs_table
from ludus.db.schema import utcnow
from ludus.queue.policy import is_database_error, is_transient
from ludus.stores import jobs
from ludus.stores.unit import transaction
from ludus.worker.lifecycle import Lifecycle
from ludus.worker.metrics import WorkerMetrics

log = logging.getLogger("ludus.worker")

UNFINISHED = (jobs.ACCEPTED, jobs.RUNNING)


@dataclass
class RunningJob:
    job_id: str
    started: float = field(default_factory=time.monotonic)
    lost: threading.Event = field(default_factory=threading.Event)


class LeaseKeeper:
    """The running-job registry of one worker, its heartbeat thread and its reaper."""

    def __init__(
        self, engine: sa.Engine, owner: str, lease_s: float, metrics: WorkerMetrics, lifecycle: Lifecycle
    ) -> None:
        self.engine = engine
        self.owner = owner
        self.lease_s = lease_s
        self.metrics = metrics
        self.lifecycle = lifecycle
        self.beat_interval_s = max(0.2, min(2.0, lease_s / 4))
        self._lock = threading.Lock()
        self._running: dict[str, RunningJob] = {}
        self.db_ok = True
        self.unfinished = 0
        self._db_back = threading.Event()
        self._db_back.set()

    # --- the registry ---------------------------------------------------------------------------------

    def add(self, job_id: str) -> RunningJob:
        running = RunningJob(job_id)
        with self._lock:
            self._running[job_id] = running
        self.metrics.running.set(len(self._running))
        return running

    def remove(self, job_id: str) -> None:
        with self._lock:
            self._running.pop(job_id, None)
        self.metrics.running.set(len(self._running))

    def running_ids(self) -> list[str]:
        with self._lock:
            return list(self._running)

    # --- database health ------------------------------------------------------------------------------

    def note_database(self, ok: bool) -> None:
        self.db_ok = ok
        self.metrics.db_up.set(1 if ok else 0)
        if ok:
            self._db_back.set()
        else:
            self._db_back.clear()

    def note_failure(self, exc: BaseException) -> None:
        """Record what a failure says about the database (a broker failure says nothing about it)."""
        if is_transient(exc) and is_database_error(exc):
            self.note_database(False)

    def wait_for_database(self, interrupted) -> bool:
        """Block until the probe sees the database again (True), or ``interrupted()``/abort (False)."""
        while not self._db_back.wait(0.2):
            if self.lifecycle.aborting or interrupted():
                return False
        return True

    # --- leases ---------------------------------------------------------------------------------------

    def renew(self, job_id: str) -> bool:
        """Renew one lease now; False when this worker no longer holds the job (raises when the database
        cannot tell)."""
        with transaction(self.engine) as conn:
            return jobs.heartbeat(conn, job_id, self.owner, self.lease_s)

    def release(self, job_id: str) -> bool:
        """Give the lease back so the next reaper resumes the job at once; False when the database did not
        take it (the lease then simply expires after ``job_lease_s``)."""
        try:
            with transaction(self.engine) as conn:
                return jobs.release(conn, job_id, self.owner)
        except Exception as exc:  # noqa: BLE001 - best effort, the lease expires anyway
            log.debug("lease of %s not released early: %s", job_id, exc)
            return False

    def beat_loop(self) -> None:
        """The heartbeat thread: probe the database, renew the leases of running jobs."""
        next_renew = 0.0
        while not self.lifecycle.closed.wait(self.beat_interval_s):
            try:
                with database_errors(self.engine.url), self.engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                    self.unfinished = _count_unfinished(conn)
                self.note_database(True)
            except Exception as exc:  # noqa: BLE001
                self.note_database(False)
                log.debug("database probe failed: %s", exc)
            now = time.monotonic()
            if not self.db_ok or now < next_renew:
                continue
            next_renew = now + self.lease_s / 3
            for job_id in self.running_ids():
                self._beat(job_id)

    def _beat(self, job_id: str) -> None:
        with self._lock:
            running = self._running.get(job_id)
        if running is None:
            return
        try:
            with transaction(self.engine) as conn:
                if jobs.heartbeat(conn, job_id, self.owner, self.lease_s):
                    return
                record = jobs.get(conn, job_id)
        except Exception as exc:  # noqa: BLE001 - next beat retries; the lease has slack
            log.debug("heartbeat of %s failed: %s", job_id, exc)
            return
        if record is not None and record.finished:
            return  # the job's own publishing transaction ended the lease: it is done, not lost
        if job_id in self._running:
            holder = "nobody" if record is None or record.lease_owner is None else record.lease_owner
            log.warning("lease of %s lost (now held by %s)", job_id, holder)
            running.lost.set()

    # --- the reaper -------------------------------------------------------------------------------------

    def claim_orphan(self) -> jobs.JobRecord | None:
        """Claim one job whose lease expired (its worker died) or was given back (its worker stopped)."""
        try:
            with transaction(self.engine) as conn:
                orphans = jobs.expired_leases(conn, utcnow())
                orphans += [r for r in jobs.list_jobs(conn, status=jobs.ACCEPTED, limit=20) if r.lease_owner is None]
            for record in orphans:
                with transaction(self.engine) as conn:
                    if jobs.claim(conn, record.job_id, self.owner, self.lease_s):
                        return jobs.get(conn, record.job_id)
        except Exception as exc:
            if is_transient(exc):
                self.note_failure(exc)
                return None
            raise
        return None


def _count_unfinished(conn) -> int:
    query = sa.select(sa.func.count()).select_from(jobs_table).where(jobs_table.c.status.in_(UNFINISHED))
    return int(conn.execute(query).scalar_one())

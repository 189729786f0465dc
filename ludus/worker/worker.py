"""The queue consumer: admits jobs durably, runs them off the I/O thread, survives crashes and outages.

Mechanism (README.md, "Worker and queue", has the operator's view); each part lives in a module of its own:

* ``broker_io`` — one I/O thread owns the pika connection. It pulls a message with ``basic.get`` only when a
  job slot is free, so no message waits unacked in this worker and the queue depth is the true backlog.
  ``BrokerIO.settle`` is the only code that acks, and it settles a message whatever its bytes.
* ``execution`` — a job thread parses the message, records the job in the jobs table with a lease owned by
  this worker (one transaction), and only then acks: from that moment the database, not the broker, holds
  the job, so RabbitMQ's consumer timeout cannot fire however long the job runs. The job's outcome is
  recorded together with its announcements (result, final event, dead letter) in the outbox.
* ``leases`` — a heartbeat thread renews the leases of running jobs; the reaper (in every worker) claims jobs
  whose lease expired (their worker died) and resumes them: the pipeline reloads the Optuna study.
* ``relay`` — every worker delivers outbox rows until the broker confirmed them: the result of a job whose
  worker died right after its commit is published by the next one alive.
* The job id is the idempotency key: a message for a finished job republishes the stored result; one for a
  job another worker holds is acked; one with a different payload under a known id is refused with a reason.
* :func:`ludus.queue.policy.decide` decides the fate of every attempt, and its retry table paces every loop.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ludus.config import Settings
from ludus.queue.policy import Stage, decide
from ludus.queue.topology import Topology
from ludus.vocabulary import JOB_RUNNING
from ludus.worker.broker_io import BrokerIO
from ludus.worker.execution import JobExecution, Runner, error_result_of
from ludus.worker.leases import UNFINISHED, LeaseKeeper
from ludus.worker.lifecycle import Lifecycle
from ludus.worker.metrics import WorkerMetrics
from ludus.worker.relay import OutboxRelay

log = logging.getLogger("ludus.worker")

__all__ = ["Worker", "error_result_of"]


class Worker:
    """Consumes the jobs queue. ``run()`` blocks (it is the I/O thread); ``stop()`` may be called from anywhere.

    ``runner`` defaults to :func:`ludus.pipeline.run_job`; ``executor_factory(job)`` makes the per-job
    executor (None lets the pipeline pick its default).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        engine: sa.Engine | None = None,
        runner: Runner | None = None,
        executor_factory: Callable[[Any], Any] | None = None,
        topology: Topology | None = None,
        worker_id: str | None = None,
        http_port: int | None = None,
        poll_interval_s: float = 0.25,
        reap_interval_s: float | None = None,
        runner_options: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        if engine is None:
            from ludus.db.engine import make_engine

            engine = make_engine(settings.database_url)
        self.engine = engine
        self.topology = topology or Topology.from_settings(settings)
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.metrics = WorkerMetrics()
        self._backlog_cache: tuple[float, Any] | None = None  # (monotonic time read, Backlog)
        self.metrics.backlog_age.set_function(lambda: self.backlog_snapshot().oldest_age_s)
        self.poll_interval_s = poll_interval_s
        self.lease_s = settings.job_lease_s
        self.reap_interval_s = reap_interval_s if reap_interval_s is not None else max(0.5, self.lease_s / 4)
        self.lifecycle = Lifecycle(settings.shutdown_grace_s)
        self.broker = BrokerIO(settings.amqp_url, self.topology, f"ludus-worker {self.id}", self.id, self.metrics)
        self.leases = LeaseKeeper(engine, self.id, self.lease_s, self.metrics, self.lifecycle)
        # the writer's outbox claim lasts as long as a job lease: others take a dead writer's rows over then
        self.relay = OutboxRelay(engine, self.broker, self.id, self.lease_s, self.metrics, self.lifecycle)
        self.execution = JobExecution(
            settings=settings,
            engine=engine,
            broker=self.broker,
            relay=self.relay,
            leases=self.leases,
            lifecycle=self.lifecycle,
            metrics=self.metrics,
            worker_id=self.id,
            runner=runner,
            executor_factory=executor_factory,
            runner_options=dict(runner_options or {}),
            # rolling restarts count as attempts too, hence the margin over the broker's delivery limit
            max_attempts=4 * self.topology.delivery_limit,
        )
        self._lock = threading.Lock()
        self._busy = 0  # slots taken (intake, reap or run)
        self._last_tick = 0.0
        self._depth = 0
        self._next_depth = 0.0
        self._next_reap = 0.0
        self._http_port_wanted = http_port
        self._http: Any = None  # a ludus.worker.http.HealthServer once run() serves HTTP
        self.http_port: int | None = None

    # --- public ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking jobs; running ones get ``shutdown_grace_s`` to finish, then unwind (they stay leased)."""
        if self.lifecycle.stop():
            log.info(
                "worker %s stopping: %d job(s) running, grace %.0fs",
                self.id,
                len(self.running_jobs()),
                self.settings.shutdown_grace_s,
            )

    def backlog(self) -> int:
        """Jobs waiting in the queue plus jobs accepted but not finished (the autoscaler's input)."""
        return int(self._depth) + int(self.leases.unfinished)

    def health(self) -> tuple[bool, dict]:
        broker = self.broker.up and time.monotonic() - self._last_tick < 5 + 4 * self.poll_interval_s
        ok = broker and self.leases.db_ok
        return ok, {
            "status": "ok" if ok else "unavailable",
            "broker": broker,
            "database": self.leases.db_ok,
            JOB_RUNNING: len(self.running_jobs()),
            "backlog": self.backlog(),
            "worker": self.id,
        }

    def running_jobs(self) -> list[str]:
        return self.leases.running_ids()

    # --- probes and the scaling signal (Kubernetes: /livez, /readyz, /backlog) ---------------------

    def liveness(self) -> tuple[bool, dict]:
        """Alive while the serving loop has not ended. No dependency is consulted: a broker or database outage
        is the readiness probe's business and must never restart the container (on the head it runs the GCS)."""
        alive = not self.lifecycle.closed.is_set()
        return alive, {
            "status": "alive" if alive else "stopped",
            "worker": self.id,
            JOB_RUNNING: len(self.running_jobs()),
        }

    def readiness(self) -> tuple[bool, dict]:
        """Ready to take jobs: the broker connection and the database answer (what /healthz reports)."""
        return self.health()

    def backlog_snapshot(self, max_age_s: float = 2.0) -> Any:
        """The backlog by architecture (``ludus.cluster.autoscale.Backlog``): ready messages plus unfinished jobs
        with their placements, read from the jobs table at most every ``max_age_s``. When the database does not
        answer, the last numbers are returned marked stale, so KEDA and the Ray autoscaler keep their course."""
        from ludus.cluster.autoscale import Backlog

        with self._lock:
            cached = self._backlog_cache
        now = time.monotonic()
        if cached is not None and now - cached[0] < max_age_s:
            return cached[1]
        snapshot = None
        if self.leases.db_ok or cached is None:  # known down (heartbeat probe): do not block a scrape on it
            try:
                with self.engine.connect() as conn:
                    placements, oldest = _unfinished_placements(conn)
                snapshot = Backlog.of(self._depth, placements, oldest_age_s=oldest)
            except Exception as exc:  # noqa: BLE001 - the scaling signal must survive a database blip
                log.debug("backlog: jobs table unreadable (%s); serving the last numbers", exc)
        if snapshot is None:
            last = cached[1] if cached is not None else Backlog.of(self._depth)
            snapshot = Backlog(ready=self._depth, jobs=last.jobs, oldest_age_s=last.oldest_age_s, stale=True)
        with self._lock:
            self._backlog_cache = (now, snapshot)
        return snapshot

    def run(self) -> None:
        """Serve until stopped and drained (the calling thread becomes the AMQP I/O thread)."""
        if self._http_port_wanted is not None:
            from ludus.worker.http import HealthServer

            self._http = HealthServer(
                self.settings.http_host,
                self._http_port_wanted,
                self.readiness,
                self.metrics.render,
                liveness=self.liveness,
                backlog=lambda: self.backlog_snapshot().to_dict(),
            ).start()
            self.http_port = self._http.port
        for name, target in (("heartbeat", self.leases.beat_loop), ("outbox", self.relay.loop)):
            threading.Thread(target=target, name=f"ludus-{name}", daemon=True).start()
        attempt = 0
        try:
            while not self._finished():
                try:
                    self.broker.open()
                    attempt = 0
                    self.relay.request()  # rows left by a dead worker (or by us before a reconnect)
                    self._loop()
                except Exception as exc:  # noqa: BLE001 - decide() paces the reconnects
                    decision = decide(exc, Stage.CONNECT, attempt=attempt)
                    log.warning(
                        "broker connection lost (%s); reconnecting in %.1fs", decision.reason[:300], decision.delay_s
                    )
                    self.broker.drop()
                    if self._finished():
                        break
                    self.lifecycle.sleep(decision.delay_s)
                    attempt += 1
        finally:
            self.broker.drop()
            self.lifecycle.closed.set()
            self.relay.request()  # wakes the relay thread so it sees the end
            if self._http is not None:
                self._http.stop()
            log.info("worker %s stopped", self.id)

    # --- the I/O thread ------------------------------------------------------------------------------

    def _finished(self) -> bool:
        if not self.lifecycle.stopping:
            return False
        with self._lock:
            idle = self._busy == 0
        return idle or self.lifecycle.past_deadline(10.0)

    def _loop(self) -> None:
        while True:
            self.broker.poll(self.poll_interval_s)
            now = self._last_tick = time.monotonic()
            if self._finished():
                return
            if now >= self._next_depth:
                self._depth = self.broker.depth()
                self.metrics.queue_depth.set(self._depth)
                self.metrics.backlog.set(self.backlog())
                self._next_depth = now + 2.0
            if self.lifecycle.stopping:
                if self.lifecycle.past_deadline() and not self.lifecycle.aborting:
                    log.warning("shutdown grace over: asking %d running job(s) to unwind", len(self.running_jobs()))
                    self.lifecycle.abort()
                continue
            if not self.leases.db_ok:
                continue  # a job we cannot record would only be held; leave it in the queue
            if now >= self._next_reap and self._free() > 0:
                self._next_reap = now + self.reap_interval_s
                self._spawn("reap", self.execution.reap)
            while self._free() > 0 and not self.lifecycle.stopping:
                delivery = self.broker.fetch()
                if delivery is None:
                    break
                self._spawn("intake", self.execution.intake, delivery)

    def _free(self) -> int:
        with self._lock:
            return self.settings.max_concurrent_jobs - self._busy

    def _spawn(self, name: str, fn: Callable, *args: Any) -> None:
        with self._lock:
            self._busy += 1

        def body() -> None:
            try:
                fn(*args)
            except Exception:  # intake/reap never raise; this only guards the slot count
                log.exception("%s task failed", name)
            finally:
                with self._lock:
                    self._busy -= 1
                self.broker.wake()

        # daemon: a job stuck past the grace period must not keep the process alive
        threading.Thread(target=body, name=f"ludus-{name}", daemon=True).start()


def _unfinished_placements(conn) -> tuple[list[Any], float]:
    """The ``placement`` of every unfinished job and the age in seconds of the oldest one."""
    from ludus.db.schema import jobs as jobs_table
    from ludus.db.schema import utcnow

    query = sa.select(jobs_table.c.payload, jobs_table.c.created_at).where(jobs_table.c.status.in_(UNFINISHED))
    placements, oldest = [], None
    for payload, created_at in conn.execute(query):
        placements.append((payload or {}).get("placement") if isinstance(payload, dict) else None)
        if created_at is not None and (oldest is None or created_at < oldest):
            oldest = created_at
    age = max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0
    return placements, age

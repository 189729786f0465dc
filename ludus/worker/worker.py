"""The queue consumer: admits jobs durably, runs them off the I/O thread, survives crashes and outages.

Mechanism (README.md, "Worker and queue", has the operator's view):

* One I/O thread owns the pika connection. It pulls a message with ``basic.get`` only when a job slot is
  free, so no message ever waits unacked in this worker and the queue depth is the true backlog.
* A job thread parses the message, records the job in the jobs table with a lease owned by this worker
  (one transaction), and only then acks. From that moment the database, not the broker, holds the job:
  RabbitMQ's consumer timeout cannot fire (nothing is unacked) however long the job runs.
* A heartbeat thread renews the leases of running jobs; the reaper (in every worker) claims jobs whose lease
  expired (their worker died) and resumes them: the pipeline reloads the Optuna study, completed trials stay.
* The job id is the idempotency key: a message for a finished job republishes the stored result; one for a
  job another worker holds is acked and dropped.
* Acks, publishes and dead letters go back to the I/O thread through ``add_callback_threadsafe``;
  :func:`ludus.queue.policy.decide` decides the fate of every attempt and :meth:`Worker._settle` is the
  only code that acks, requeues or dead-letters a message.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from ludus import constants as c
from ludus.config import Settings
from ludus.errors import TransientError
from ludus.queue.connection import connect
from ludus.queue.deadletter import dead_letter_headers, job_id_of, publish_dead_letter
from ludus.queue.policy import Action, Decision, LeaseLost, WorkerStopping, backoff, decide, is_transient
from ludus.queue.publisher import Publisher, UnroutableError
from ludus.queue.topology import Topology, declare, queue_depth
from ludus.worker.metrics import WorkerMetrics

log = logging.getLogger("ludus.worker")

FINISHED = ("succeeded", "failed", "rejected")
UNFINISHED = ("accepted", "running")

Runner = Callable[..., Any]  # run_job(job, *, engine, settings, progress, executor, resume) -> JobResult


@dataclass
class Delivery:
    """A message fetched by basic.get; its tag is only valid on the connection ``generation`` it came from."""

    tag: int
    generation: int
    body: bytes
    headers: dict
    message_id: str | None
    redelivered: bool


@dataclass
class RunningJob:
    job_id: str
    started: float = field(default_factory=time.monotonic)
    lost: threading.Event = field(default_factory=threading.Event)


class ProgressGate:
    """The progress callback handed to the pipeline: rate-limits events and is the job's stop point.

    Phase changes always go out; within a phase at most one event per ``min_interval_s``. When the worker's
    shutdown grace is over or the lease was lost, it raises so the pipeline unwinds (trials already stored in
    the study are kept; the next worker resumes).
    """

    def __init__(self, worker: Worker, running: RunningJob) -> None:
        self.worker = worker
        self.running = running
        self.last_phase: str | None = None
        self.last_sent = 0.0
        self.sent = 0

    def __call__(self, event: Any) -> None:
        if self.worker._abort.is_set():
            raise WorkerStopping("shutdown grace period is over; the job stays leased for the next worker")
        if self.running.lost.is_set():
            raise LeaseLost(f"job {self.running.job_id} was taken over by another worker")
        now = time.monotonic()
        phase = str(getattr(event, "phase", None) or (event.get("phase") if isinstance(event, dict) else ""))
        if phase == self.last_phase and now - self.last_sent < self.worker.settings.progress_min_interval_s:
            return
        self.last_phase, self.last_sent = phase, now
        self.sent += 1
        self.worker.publish_event(self.running.job_id, event)


class Worker:
    """Consumes the jobs queue. ``run()`` blocks (it is the I/O thread); ``stop()`` may be called from anywhere.

    ``runner`` defaults to :func:`ludus.pipeline.run_job`; ``executor_factory(job)`` makes the per-job
    executor (None lets the pipeline pick its default).
    """

    def __init__(self, settings: Settings, *, engine: sa.Engine | None = None, runner: Runner | None = None,
                 executor_factory: Callable[[Any], Any] | None = None, topology: Topology | None = None,
                 worker_id: str | None = None, http_port: int | None = None, poll_interval_s: float = 0.25,
                 reap_interval_s: float | None = None, intake_hold_s: float = 60.0,
                 runner_options: dict[str, Any] | None = None) -> None:
        self.settings = settings
        if engine is None:
            from ludus.db.engine import make_engine

            engine = make_engine(settings.database_url)
        self.engine = engine
        self._runner = runner
        self._executor_factory = executor_factory
        self._runner_options = dict(runner_options or {})  # extra keyword arguments for the runner
        self.topology = topology or Topology.from_settings(settings)
        self.id = worker_id or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.metrics = WorkerMetrics()
        self._backlog_cache: tuple[float, Any] | None = None  # (monotonic time read, Backlog)
        self.metrics.backlog_age.set_function(lambda: self.backlog_snapshot().oldest_age_s)
        self.poll_interval_s = poll_interval_s
        self.lease_s = settings.job_lease_s
        self.reap_interval_s = reap_interval_s if reap_interval_s is not None else max(0.5, self.lease_s / 4)
        self.intake_hold_s = intake_hold_s
        # a job whose runs keep killing their worker is a poison job; the broker's delivery limit no longer
        # sees it once acked, so the jobs table's attempt counter takes over (rolling restarts count too,
        # hence the margin)
        self.max_attempts = 4 * self.topology.delivery_limit
        self.beat_interval_s = max(0.2, min(2.0, self.lease_s / 4))

        self._lock = threading.Lock()
        self._busy = 0  # slots taken (intake, reap or run)
        self._running: dict[str, RunningJob] = {}
        self._stop = threading.Event()  # stop taking jobs
        self._abort = threading.Event()  # grace over: running jobs unwind at their next progress event
        self._closed = threading.Event()
        self._deadline = float("inf")
        self._conn = None
        self._ch = None
        self._pub: Publisher | None = None
        self._generation = 0
        self._broken = False
        self._pending: set[Future] = set()
        self._last_tick = 0.0
        self._depth = 0
        self._unfinished = 0
        self._db_ok = True
        self._next_depth = 0.0
        self._next_reap = 0.0
        self._http_port_wanted = http_port
        self._http = None
        self.http_port: int | None = None

    # --- public ------------------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking jobs; running ones get ``shutdown_grace_s`` to finish, then unwind (they stay leased)."""
        if not self._stop.is_set():
            self._deadline = time.monotonic() + self.settings.shutdown_grace_s
            self._stop.set()
            log.info("worker %s stopping: %d job(s) running, grace %.0fs", self.id, len(self._running),
                     self.settings.shutdown_grace_s)

    def backlog(self) -> int:
        """Jobs waiting in the queue plus jobs accepted but not finished (the autoscaler's input)."""
        return int(self._depth) + int(self._unfinished)

    def health(self) -> tuple[bool, dict]:
        broker = self._conn is not None and not self._broken and \
            time.monotonic() - self._last_tick < 5 + 4 * self.poll_interval_s
        ok = broker and self._db_ok
        return ok, {"status": "ok" if ok else "unavailable", "broker": broker, "database": self._db_ok,
                    "running": len(self._running), "backlog": self.backlog(), "worker": self.id}

    def running_jobs(self) -> list[str]:
        return list(self._running)

    # --- probes and the scaling signal (Kubernetes: /livez, /readyz, /backlog) ---------------------

    def liveness(self) -> tuple[bool, dict]:
        """Alive while the serving loop has not ended. No dependency is consulted: a broker or database outage
        is the readiness probe's business and must never restart the container (on the head it runs the GCS)."""
        alive = not self._closed.is_set()
        return alive, {"status": "alive" if alive else "stopped", "worker": self.id, "running": len(self._running)}

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
        if self._db_ok or cached is None:  # known down (heartbeat probe): do not block a scrape on it
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

            self._http = HealthServer(self.settings.http_host, self._http_port_wanted, self.readiness,
                                      self.metrics.render, liveness=self.liveness,
                                      backlog=lambda: self.backlog_snapshot().to_dict()).start()
            self.http_port = self._http.port
        beat = threading.Thread(target=self._beat_loop, name="ludus-heartbeat", daemon=True)
        beat.start()
        attempt = 0
        try:
            while not self._finished():
                try:
                    self._open()
                    attempt = 0
                    self._loop()
                except Exception as exc:
                    if is_transient(exc):
                        log.warning("broker connection lost (%s); reconnecting", exc)
                    else:
                        log.exception("I/O loop error; reconnecting")
                    self._drop()
                    if self._finished():
                        break
                    self._sleep(backoff(attempt, cap=10.0))
                    attempt += 1
        finally:
            self._drop()
            self._closed.set()
            if self._http is not None:
                self._http.stop()
            log.info("worker %s stopped", self.id)

    # --- I/O thread ----------------------------------------------------------------------------------

    def _open(self) -> None:
        conn = connect(self.settings.amqp_url, name=f"ludus-worker {self.id}")
        ch = conn.channel()
        declare(ch, self.topology)
        pub = Publisher(conn.channel())
        with self._lock:
            self._conn, self._ch, self._pub, self._broken = conn, ch, pub, False
            self._generation += 1
        self.metrics.broker_up.set(1)
        log.info("worker %s connected (generation %d)", self.id, self._generation)

    def _drop(self) -> None:
        with self._lock:
            conn, self._conn, self._ch, self._pub = self._conn, None, None, None
            self._generation += 1
            pending, self._pending = self._pending, set()
        self.metrics.broker_up.set(0)
        for fut in pending:
            if not fut.done():
                fut.set_exception(TransientError("broker connection lost"))
        if conn is not None:
            try:
                if conn.is_open:
                    conn.close()
            except Exception:  # noqa: BLE001, S110 - already broken
                pass

    def _finished(self) -> bool:
        if not self._stop.is_set():
            return False
        with self._lock:
            idle = self._busy == 0
        return idle or time.monotonic() > self._deadline + 10.0

    def _loop(self) -> None:
        while True:
            self._conn.process_data_events(time_limit=self.poll_interval_s)
            now = self._last_tick = time.monotonic()
            if self._broken:
                raise TransientError("a channel broke; reopening the connection")
            if self._finished():
                return
            if now >= self._next_depth:
                self._depth = queue_depth(self._ch, self.topology.jobs_queue)
                self.metrics.queue_depth.set(self._depth)
                self.metrics.backlog.set(self.backlog())
                self._next_depth = now + 2.0
            if self._stop.is_set():
                if now >= self._deadline and not self._abort.is_set():
                    log.warning("shutdown grace over: asking %d running job(s) to unwind", len(self._running))
                    self._abort.set()
                continue
            if not self._db_ok:
                continue  # a job we cannot record would only be held; leave it in the queue
            if now >= self._next_reap and self._free() > 0:
                self._next_reap = now + self.reap_interval_s
                self._spawn("reap", self._reap)
            while self._free() > 0 and not self._stop.is_set():
                method, props, body = self._ch.basic_get(self.topology.jobs_queue, auto_ack=False)
                if method is None:
                    break
                delivery = Delivery(method.delivery_tag, self._generation, body, dict(props.headers or {}),
                                    props.message_id, bool(method.redelivered))
                self._spawn("intake", self._intake, delivery)

    def _free(self) -> int:
        with self._lock:
            return self.settings.max_concurrent_jobs - self._busy

    def _spawn(self, name: str, fn: Callable, *args: Any) -> None:
        with self._lock:
            self._busy += 1

        def body() -> None:
            try:
                fn(*args)
            except Exception:
                log.exception("%s task failed", name)
            finally:
                with self._lock:
                    self._busy -= 1
                self._wake()

        # daemon: a job stuck past the grace period must not keep the process alive
        threading.Thread(target=body, name=f"ludus-{name}", daemon=True).start()

    def _wake(self) -> None:
        """Make the I/O thread look at its slots now (not at the end of its poll interval)."""
        conn = self._conn
        if conn is not None:
            try:
                conn.add_callback_threadsafe(lambda: None)
            except Exception:  # noqa: BLE001, S110 - closing: nothing to wake
                pass

    def _io(self, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Run ``fn`` on the I/O thread (pika is not thread-safe) and return its result."""
        with self._lock:
            conn, gen = self._conn, self._generation
        if conn is None:
            raise TransientError("broker connection is down")
        fut: Future = Future()

        def callback() -> None:
            if fut.done():
                return
            if gen != self._generation:
                fut.set_exception(TransientError("broker connection was replaced"))
                return
            try:
                fut.set_result(fn())
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                if is_transient(exc) and not isinstance(exc, TransientError):
                    self._broken = True
                fut.set_exception(exc)

        with self._lock:
            self._pending.add(fut)
        try:
            conn.add_callback_threadsafe(callback)
        except Exception as exc:
            with self._lock:
                self._pending.discard(fut)
            raise TransientError(f"broker connection is closing: {exc}") from exc
        try:
            return fut.result(timeout)
        except FutureTimeout as exc:
            raise TransientError("broker did not answer in time") from exc
        finally:
            with self._lock:
                self._pending.discard(fut)

    # --- settling: the only place that acks, requeues or dead-letters ---------------------------------

    def _settle(self, delivery: Delivery | None, action: Action, *, body: bytes = b"", headers: dict | None = None,
                job_id: str | None = None, error: dict | None = None) -> None:
        """Apply an Action to a message (or, with no delivery, to a job already acked).

        DONE -> ack. REJECT/FAIL -> confirmed copy on the dead-letter exchange with the reason in its
        headers, then ack. RETRY/RELEASE -> confirmed republish to the jobs exchange, then ack: unlike a
        requeue it does not count against the delivery limit, so outages never turn jobs into dead letters.
        A delivery from a previous connection is already back in the queue: nothing to ack or copy.
        """
        t = self.topology

        def on_io() -> None:
            current = delivery is not None and delivery.generation == self._generation
            if delivery is not None and not current:
                return
            if action in (Action.REJECT, Action.FAIL):
                publish_dead_letter(self._pub, t, body,
                                    dead_letter_headers(headers, error or {}, job_id=job_id, worker=self.id))
            elif action in (Action.RETRY, Action.RELEASE) and delivery is not None:
                clean = {k: v for k, v in (headers or {}).items() if k != "x-delivery-count"}
                self._pub.publish(t.jobs_exchange, t.jobs_routing_key, body, headers=clean,
                                  message_id=delivery.message_id)
            if delivery is not None:
                self._ch.basic_ack(delivery.tag)

        attempt = 0
        while True:
            try:
                self._io(on_io)
                if action in (Action.REJECT, Action.FAIL):
                    self.metrics.dead_lettered.inc()
                return
            except TransientError:
                if delivery is not None or time.monotonic() > self._deadline + 5:
                    return  # the message is back in the queue (or we are out of time): a redelivery settles it
                self._sleep(backoff(attempt, cap=5.0))
                attempt += 1

    # --- publishing from job threads ------------------------------------------------------------------

    def publish_event(self, job_id: str, event: Any) -> None:
        """Best effort: a progress event that cannot go out now is dropped, the job goes on."""
        key = c.progress_routing_key(job_id)
        try:
            self._io(lambda: self._pub.publish(self.topology.events_exchange, key, event, mandatory=False),
                     timeout=5.0)
        except Exception as exc:  # noqa: BLE001 - progress is informational
            log.debug("progress event for %s dropped: %s", job_id, exc)

    def _publish_result(self, job_id: str, result: Any) -> None:
        """At least once: retried until the broker confirmed it (or the worker is out of time)."""
        key = c.result_routing_key(job_id)

        def on_io() -> None:
            try:
                self._pub.publish(self.topology.events_exchange, key, result, mandatory=True)
            except UnroutableError:
                log.warning("result of %s reached no queue (nobody bound to %s)", job_id, key)

        attempt = 0
        while True:
            try:
                self._io(on_io)
                return
            except Exception as exc:  # noqa: BLE001
                if time.monotonic() > self._deadline + 5:
                    log.error("result of %s not published before shutdown: %s (it is stored in the jobs table)",
                              job_id, exc)
                    return
                self.metrics.retries.inc()
                self._sleep(backoff(attempt, cap=10.0))
                attempt += 1

    # --- job threads ----------------------------------------------------------------------------------

    def _intake(self, d: Delivery) -> None:
        from ludus.contracts.job import extract_job_id, parse_job

        try:
            job = parse_job(d.body)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the payload's fault
            decision = decide(exc)
            if decision.action not in (Action.REJECT, Action.FAIL):
                decision = Decision(Action.FAIL, str(exc), {"field": "", "value": "", "reason": str(exc)})
            uid = extract_job_id(d.body)
            self._reject(d, decision, d.body, d.headers, str(uid) if uid else job_id_of(d.body))
            return
        job_id = str(job.job_id)
        payload = job.payload()
        held_since = time.monotonic()
        attempt = 0
        while True:
            try:
                outcome, record, created = self._admit(job_id, payload)
                self._db_ok = True
                break
            except Exception as exc:  # noqa: BLE001
                decision = decide(exc)
                if isinstance(exc, sa.exc.IntegrityError):  # a twin message admitted the same id meanwhile
                    decision = Decision(Action.RETRY, str(exc))
                if decision.action is Action.RETRY:
                    self._db_ok = not _is_db_error(exc)
                    self.metrics.retries.inc()
                    if self._stop.is_set() or time.monotonic() - held_since > self.intake_hold_s:
                        self._settle(d, Action.RETRY, body=d.body, headers=d.headers)
                        return
                    self._sleep(backoff(attempt, cap=5.0))
                    attempt += 1
                    continue
                self._reject(d, decision, d.body, d.headers, job_id)
                return
        if created:
            self.metrics.accepted.inc()
        if outcome == "finished":
            self.metrics.duplicates.inc()
            self._publish_result(job_id, record.result)
            self._settle(d, Action.DONE)
            return
        if outcome == "elsewhere":
            self.metrics.duplicates.inc()
            self._settle(d, Action.DONE)
            return
        self._settle(d, Action.DONE)  # durable in the jobs table with our lease: the broker can let go
        if created:
            self.publish_event(job_id, _event(job_id, "accepted", f"accepted by {self.id}"))
        self._execute(job, d.body, d.headers)

    def _admit(self, job_id: str, payload: dict) -> tuple[str, Any, bool]:
        from ludus.stores import jobs
        from ludus.stores.unit import transaction

        with transaction(self.engine) as conn:
            record, created = jobs.accept(conn, job_id, payload)
            if record.status in FINISHED:
                return "finished", record, created
            if jobs.claim(conn, job_id, self.id, self.lease_s):
                return "claimed", record, created
            return "elsewhere", record, created

    def _reap(self) -> None:
        """Claim one job whose lease expired (its worker died) and resume it."""
        from ludus.contracts.job import parse_job
        from ludus.db.schema import utcnow
        from ludus.stores import jobs
        from ludus.stores.unit import transaction

        try:
            with transaction(self.engine) as conn:
                # expired leases (a worker died) and released ones (a worker shut down mid-job)
                orphans = jobs.expired_leases(conn, utcnow())
                orphans += [r for r in jobs.list_jobs(conn, status=jobs.ACCEPTED, limit=20) if r.lease_owner is None]
            claimed = None
            for record in orphans:
                with transaction(self.engine) as conn:
                    if jobs.claim(conn, record.job_id, self.id, self.lease_s):
                        claimed = record
                        break
        except Exception as exc:
            if is_transient(exc):
                self._db_ok = not _is_db_error(exc)
                return
            raise
        if claimed is None:
            return
        self.metrics.resumed.inc()
        job_id = str(claimed.job_id)
        body = json.dumps(claimed.payload).encode()
        log.info("worker %s resumes job %s (lease expired)", self.id, job_id)
        attempts = int(claimed.attempts or 0)
        if attempts >= self.max_attempts:
            reason = f"gave up after {attempts} attempts (each ended with its worker dying or stopping)"
            self._conclude(job_id, body, {}, Decision(Action.FAIL, reason, {"field": "", "value": "",
                                                                            "reason": reason}), None, 0.0)
            return
        try:
            job = parse_job(claimed.payload)
        except Exception as exc:  # noqa: BLE001
            self._conclude(job_id, body, {}, decide(exc), None, 0.0)
            return
        self.publish_event(job_id, _event(job_id, "accepted", f"resumed by {self.id}"))
        self._execute(job, body, {})

    def _execute(self, job: Any, body: bytes, headers: dict) -> None:
        job_id = str(job.job_id)
        running = RunningJob(job_id)
        with self._lock:
            self._running[job_id] = running
        self.metrics.running.set(len(self._running))
        gate = ProgressGate(self, running)
        result = None
        decision = Decision(Action.RELEASE, "not started")
        try:
            attempt = 0
            while True:
                executor = self._executor_factory(job) if self._executor_factory else None
                try:
                    result = self._run_job(job, progress=gate, executor=executor)
                    decision = decide(None)
                except Exception as exc:  # noqa: BLE001 - decide() sorts it out
                    decision = decide(exc)
                    if decision.action is not Action.RETRY:
                        log.info("job %s: %s (%s)", job_id, decision.action.value, decision.reason)
                finally:
                    if executor is not None and hasattr(executor, "close"):
                        try:
                            executor.close()
                        except Exception:
                            log.exception("closing the executor of %s", job_id)
                if decision.action is Action.RETRY:
                    self.metrics.retries.inc()
                    log.warning("job %s: transient failure, retrying with resume: %s", job_id, decision.reason)
                    if self._abort.is_set() or running.lost.is_set():
                        decision = Decision(Action.RELEASE, decision.reason)
                        break
                    self._sleep(backoff(attempt, cap=15.0), running)
                    attempt += 1
                    continue
                break
        finally:
            duration = time.monotonic() - running.started
            self._conclude(job_id, body, headers, decision, result, duration)
            with self._lock:
                self._running.pop(job_id, None)
            self.metrics.running.set(len(self._running))

    def _run_job(self, job: Any, *, progress: Callable, executor: Any) -> Any:
        from ludus.pipeline.preflight import preflight

        # the cheap checks before anything runs (the executor starts its actors lazily, at the first trial)
        preflight(job, settings=self.settings, engine=self.engine)
        runner = self._runner
        if runner is None:
            from ludus.pipeline import run_job as runner
        # owner: the pipeline finishes the job record in its publishing transaction only while we hold the lease
        return runner(job, engine=self.engine, settings=self.settings, progress=progress, executor=executor,
                      resume=True, owner=self.id, **self._runner_options)

    def _conclude(self, job_id: str, body: bytes, headers: dict, decision: Decision, result: Any,
                  duration: float) -> None:
        """After a run: publish its result, or record and dead-letter a rejected/failed job."""
        if decision.action is Action.DONE:
            self.metrics.duration.observe(duration)
            status = str(getattr(result, "status", "") or (result or {}).get("status", ""))
            (self.metrics.succeeded if status == "succeeded" else self.metrics.failed).inc()
            self._publish_result(job_id, result)
            if status in FINISHED:  # no-op when the runner finished the record itself (run_job does)
                self._finish(job_id, status, _as_dict(result))
            return
        if decision.action is Action.RELEASE or decision.action is Action.RETRY:
            self._release_lease(job_id)
            return
        # REJECT / FAIL: the job is wrong (or broken); it gets an error result, a dead letter and a final row.
        status = "rejected" if decision.action is Action.REJECT else "failed"
        error_result = error_result_of(job_id, status, decision.error)
        self.metrics.failed.inc()
        self._settle(None, decision.action, body=body, headers=headers, job_id=job_id, error=decision.error)
        self._publish_result(job_id, error_result)
        self._finish(job_id, status, _as_dict(error_result))

    def _reject(self, d: Delivery, decision: Decision, body: bytes, headers: dict, job_id: str | None) -> None:
        """A message that never became a job (unparseable, invalid): error result + dead letter + ack."""
        self.metrics.failed.inc()
        log.info("rejecting message (job %s): %s", job_id or "?", decision.reason)
        result = error_result_of(job_id, "rejected", decision.error)
        self._settle(d, decision.action, body=body, headers=headers, job_id=job_id, error=decision.error)
        self._publish_result(str(result.job_id) if result.job_id else "unknown", result)

    def _finish(self, job_id: str, status: str, result: dict) -> None:
        from ludus.stores import jobs
        from ludus.stores.unit import transaction

        attempt = 0
        while True:
            try:
                with transaction(self.engine) as conn:
                    record = jobs.get(conn, job_id)
                    if record is not None and record.status not in FINISHED:
                        jobs.finish(conn, job_id, self.id, status, result)
                return
            except Exception as exc:
                if not is_transient(exc) or time.monotonic() > self._deadline:
                    log.exception("could not record %s as %s", job_id, status)
                    return
                self._sleep(backoff(attempt, cap=10.0))
                attempt += 1

    def _release_lease(self, job_id: str) -> None:
        """Give the lease back so the next worker's reaper resumes the job at once (best effort: else it
        simply expires after ``job_lease_s``)."""
        from ludus.stores import jobs
        from ludus.stores.unit import transaction

        try:
            with transaction(self.engine) as conn:
                jobs.release(conn, job_id, self.id)
        except Exception as exc:  # noqa: BLE001
            log.debug("lease of %s not released early: %s", job_id, exc)

    # --- heartbeat, database probe, backlog ---------------------------------------------------------

    def _beat_loop(self) -> None:
        from ludus.stores import jobs
        from ludus.stores.unit import transaction

        next_renew = 0.0
        while not self._closed.wait(self.beat_interval_s):
            try:
                with self.engine.connect() as conn:
                    conn.execute(sa.text("SELECT 1"))
                    self._unfinished = _count_unfinished(conn)
                self._db_ok = True
            except Exception as exc:  # noqa: BLE001
                self._db_ok = False
                log.debug("database probe failed: %s", exc)
            self.metrics.db_up.set(1 if self._db_ok else 0)
            self.metrics.backlog.set(self.backlog())
            now = time.monotonic()
            if not self._db_ok or now < next_renew:
                continue
            next_renew = now + self.lease_s / 3
            for job_id, running in list(self._running.items()):
                try:
                    with transaction(self.engine) as conn:
                        if not jobs.heartbeat(conn, job_id, self.id, self.lease_s) and job_id in self._running:
                            log.warning("lease of %s lost to another worker", job_id)
                            running.lost.set()
                except Exception as exc:  # noqa: BLE001 - next beat retries; the lease has slack
                    log.debug("heartbeat of %s failed: %s", job_id, exc)

    def _sleep(self, seconds: float, running: RunningJob | None = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self._abort.is_set() or (running is not None and running.lost.is_set()):
                return
            time.sleep(min(0.1, max(0.0, end - time.monotonic())))


def _as_dict(result: Any) -> dict:
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


def _count_unfinished(conn) -> int:
    from ludus.db.schema import jobs as jobs_table

    query = sa.select(sa.func.count()).select_from(jobs_table).where(jobs_table.c.status.in_(UNFINISHED))
    return int(conn.execute(query).scalar_one())


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


def _is_db_error(exc: BaseException) -> bool:
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return False
        if isinstance(current, sa.exc.SQLAlchemyError) or type(current).__module__.startswith("psycopg"):
            return True
        current = current.__cause__ or current.__context__
    return False


def _event(job_id: str, phase: str, message: str) -> Any:
    from ludus.contracts.events import ProgressEvent

    return ProgressEvent(job_id=job_id, phase=phase, message=message)


def error_result_of(job_id: str | None, status: str, error: dict | None) -> Any:
    """A JobResult for a rejected/failed job (job_id None when the message had no readable UUID)."""
    from uuid import UUID

    from ludus.contracts.results import ErrorDetail, JobResult

    error = error or {}
    detail = ErrorDetail(field=str(error.get("field", "")) or None, value=str(error.get("value", "")) or None,
                         reason=str(error.get("reason", "")) or "unknown")
    try:
        uid = UUID(str(job_id)) if job_id else None
    except ValueError:
        uid = None
    if uid is None:
        status = "rejected"  # only a rejected result may lack a job id
    return JobResult(job_id=uid, status=status, error=detail)

"""Running a job: a fetched message becomes a job (parsed, admitted into the jobs table), the job runs (transient
failures wait for the world to come back, then resume), and its outcome is concluded (recorded together with
its announcements in one transaction) or the job is released for another worker.

Nothing here raises out of :meth:`JobExecution.intake` or :meth:`JobExecution.execute`: every exception becomes
a :class:`~ludus.queue.policy.Decision`, and every delivery is settled (through ``BrokerIO.settle``) whatever
its bytes. Each transition of a job is logged in one line (``transition=accepted|started|phase|finished|...``,
with durations), text or JSON as ``LUDUS_LOG_FORMAT`` says.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from ludus.config import Settings
from ludus.contracts.events import TERMINAL_PHASES, ProgressEvent
from ludus.contracts.job import canonical_payload, extract_job_id, parse_job
from ludus.contracts.results import ErrorDetail, JobResult
from ludus.queue.deadletter import HEADERS_BUDGET, dead_letter_headers, job_id_of, replay_count
from ludus.queue.policy import (
    Action,
    AttemptsExhausted,
    Decision,
    Stage,
    WorkerStopping,
    decide,
)
from ludus.stores import jobs
from ludus.stores.jobs import LeaseLostError
from ludus.stores.unit import transaction
from ludus.vocabulary import JOB_ACCEPTED, JOB_REJECTED, PHASE_ACCEPTED
from ludus.worker.broker_io import BrokerIO, Delivery
from ludus.worker.leases import LeaseKeeper, RunningJob
from ludus.worker.lifecycle import Lifecycle
from ludus.worker.metrics import WorkerMetrics
from ludus.worker.relay import OutboxRelay

log = logging.getLogger("ludus.worker")

Runner = Callable[..., Any]  # run_job(job, *, engine, settings, progress, executor, resume, owner) -> JobResult

# the transitions a job's log lines name (the ``transition`` field of a JSON line)
ACCEPTED = JOB_ACCEPTED
DUPLICATE = "duplicate"
STARTED = "started"
PHASE = "phase"
RETRYING = "retrying"
FINISHED = "finished"
REJECTED = JOB_REJECTED
RELEASED = "released"
TRANSITIONS = (ACCEPTED, DUPLICATE, STARTED, PHASE, RETRYING, FINISHED, REJECTED, RELEASED)

# admission outcomes
_CLAIMED, _REOPENED, _FINISHED, _ELSEWHERE = "claimed", "reopened", "finished", "elsewhere"


def transition(event: str, job_id: str | None, message: str = "", **fields: Any) -> None:
    """One log line for one transition of a job; ``fields`` become keys of their own in JSON lines."""
    shown = " ".join(f"{k}={v}" for k, v in fields.items() if v is not None and v != "")
    log.info(
        "job %s %s%s%s",
        job_id or "-",
        event,
        f" {shown}" if shown else "",
        f": {message}" if message else "",
        extra={"job_id": job_id, "transition": event, **{k: v for k, v in fields.items() if v is not None}},
    )


class ProgressGate:
    """The progress callback handed to the pipeline: rate-limits events, logs phase changes, and is the job's
    stop point.

    Phase changes always go out; within a phase at most one event per ``min_interval_s``. The pipeline's own
    final event is not forwarded: the final event is announced from the outbox with the result, so it is
    neither lost nor sent before the outcome is durable. When the worker's grace is over or the lease was
    lost, it raises, so the pipeline unwinds (trials stored in the study are kept; the next worker resumes).
    """

    def __init__(self, broker: BrokerIO, lifecycle: Lifecycle, running: RunningJob, min_interval_s: float) -> None:
        self.broker = broker
        self.lifecycle = lifecycle
        self.running = running
        self.min_interval_s = min_interval_s
        self.last_phase: str | None = None
        self.phase_started = time.monotonic()
        self.last_sent = 0.0
        self.sent = 0

    def __call__(self, event: Any) -> None:
        if self.lifecycle.aborting:
            raise WorkerStopping("shutdown grace period is over; the job stays leased for the next worker")
        if self.running.lost.is_set():
            raise LeaseLostError(f"job {self.running.job_id} was taken over by another worker")
        phase = str(getattr(event, "phase", None) or (event.get("phase") if isinstance(event, dict) else ""))
        if phase in TERMINAL_PHASES:
            return
        now = time.monotonic()
        if phase != self.last_phase:
            transition(
                PHASE,
                self.running.job_id,
                phase=phase,
                previous=self.last_phase,
                previous_s=round(now - self.phase_started, 3) if self.last_phase else None,
            )
            self.phase_started = now
        elif now - self.last_sent < self.min_interval_s:
            return
        self.last_phase, self.last_sent = phase, now
        self.sent += 1
        self.broker.publish_event(self.running.job_id, event)


class JobExecution:
    """Intake, run and conclusion of jobs for one worker (the slots and threads are the worker's)."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: sa.Engine,
        broker: BrokerIO,
        relay: OutboxRelay,
        leases: LeaseKeeper,
        lifecycle: Lifecycle,
        metrics: WorkerMetrics,
        worker_id: str,
        runner: Runner | None,
        executor_factory: Callable[[Any], Any] | None,
        runner_options: dict[str, Any],
        max_attempts: int,
    ) -> None:
        self.settings = settings
        self.engine = engine
        self.broker = broker
        self.relay = relay
        self.leases = leases
        self.lifecycle = lifecycle
        self.metrics = metrics
        self.worker_id = worker_id
        self._runner = runner
        self._executor_factory = executor_factory
        self._runner_options = runner_options
        # a job whose runs keep killing their worker is a poison job; the broker's delivery limit no longer
        # sees it once acked, so the jobs table's attempt counter takes over
        self.max_attempts = max_attempts

    # --- intake: a message becomes a job ------------------------------------------------------------------

    def intake(self, d: Delivery) -> None:
        """Parse and admit a fetched message, settle it, and run its job when it is ours. Never raises."""
        job_id: str | None = None
        try:
            job_id = _readable_job_id(d.body)
            job = parse_job(d.body)
            job_id = str(job.job_id)
            admitted = self._admit_held(d, job)
        except Exception as exc:  # noqa: BLE001 - whatever it was, the message still gets settled
            self._refuse(d, exc, job_id)
            return
        if admitted is None:
            return  # given back to the queue (database down too long, or shutting down)
        outcome, record, created = admitted
        if created:
            self.metrics.accepted.inc()
        if outcome in (_FINISHED, _ELSEWHERE):
            self.metrics.duplicates.inc()
            stored = record.result if outcome == _FINISHED and record.result else None
            transition(
                DUPLICATE,
                job_id,
                status=record.status,
                owner=record.lease_owner,
                message="stored result republished" if stored else "another worker holds it",
            )
            self.broker.settle(d, decide(None), job_id=job_id, result=stored)
            return
        # durable in the jobs table with our lease: the broker can let go (an ack lost with the connection
        # brings the message back, and its redelivery finds the job held: "elsewhere")
        self.broker.settle(d, decide(None))
        if outcome == _REOPENED:
            transition(
                ACCEPTED,
                job_id,
                message="reopened by a dead-letter replay",
                replay=record.replays,
                strategy=job.strategy,
                symbols=",".join(job.symbols),
            )
        elif created:
            transition(ACCEPTED, job_id, strategy=job.strategy, symbols=",".join(job.symbols), mode=job.mode)
        self.broker.publish_event(job_id, _event(job_id, PHASE_ACCEPTED, f"accepted by {self.worker_id}"))
        self.execute(job, d.body, d.headers)

    def _admit_held(self, d: Delivery, job: Any) -> tuple[str, jobs.JobRecord, bool] | None:
        """Admit while holding the message; retries by the INTAKE policy, gives the message back past it."""
        held_since = time.monotonic()
        attempt = 0
        replays = replay_count(d.headers)
        while True:
            try:
                admitted = self._admit(job, replays)
                self.leases.note_database(True)
                return admitted
            except Exception as exc:
                decision = decide(
                    exc,
                    Stage.INTAKE,
                    attempt=attempt,
                    held_s=time.monotonic() - held_since,
                    stopping=self.lifecycle.stopping,
                )
                if decision.action is Action.RETRY:
                    self.leases.note_failure(exc)
                    self.metrics.retries.inc()
                    self.lifecycle.sleep(decision.delay_s)
                    attempt += 1
                    continue
                if decision.action is Action.RELEASE:
                    log.info("message of job %s given back to the queue: %s", job.job_id, decision.reason)
                    self.broker.settle(d, decision)
                    return None
                raise

    def _admit(self, job: Any, replays: int) -> tuple[str, jobs.JobRecord, bool]:
        job_id = str(job.job_id)
        with transaction(self.engine) as conn:
            record, created = jobs.accept(conn, job_id, job.payload(), canonical=canonical_payload)
            if record.finished:
                if replays > record.replays and jobs.reopen(conn, job_id, self.worker_id, self.leases.lease_s, replays):
                    reopened = jobs.get(conn, job_id)
                    if reopened is None:  # reopen updated the row in this very transaction
                        raise RuntimeError(f"job_id={job_id}: reopened job is not in the jobs table")
                    return _REOPENED, reopened, created
                return _FINISHED, record, created
            if jobs.claim(conn, job_id, self.worker_id, self.leases.lease_s):
                return _CLAIMED, record, created
            return _ELSEWHERE, record, created

    def _refuse(self, d: Delivery, exc: BaseException, job_id: str | None) -> None:
        """A message that did not become a job of ours: error result, dead letter with the reason, ack."""
        decision = decide(exc, Stage.INTAKE, stopping=self.lifecycle.stopping)
        if not decision.settles_with_dead_letter:
            self.broker.settle(d, decision)
            return
        result = error_result_of(
            job_id, jobs.REJECTED if decision.action is Action.REJECT else jobs.FAILED, decision.error
        )
        (self.metrics.rejected if decision.action is Action.REJECT else self.metrics.failed).inc()
        transition(
            REJECTED if decision.action is Action.REJECT else FINISHED,
            job_id,
            status=result.status,
            cause=decision.cause,
            message=decision.reason[:300],
        )
        self.broker.settle(d, decision, job_id=job_id, result=result)

    # --- the reaper's side: jobs whose worker died ----------------------------------------------------

    def reap(self) -> None:
        """Claim one orphaned job (its lease expired or was given back) and resume it. Never raises."""
        try:
            record = self.leases.claim_orphan()
        except Exception:  # the next reap interval tries again
            log.exception("the reaper failed")
            return
        if record is None:
            return
        self.metrics.resumed.inc()
        job_id = str(record.job_id)
        body = json.dumps(record.payload).encode()
        transition(
            STARTED, job_id, message="resumed after its lease expired or was given back", attempt=record.attempts
        )
        try:
            if record.attempts >= self.max_attempts:
                raise AttemptsExhausted(record.attempts)
            job = parse_job(record.payload)
        except Exception as exc:  # noqa: BLE001 - poison or unreadable: concluded with a reason
            running = self.leases.add(job_id)
            try:
                self._conclude(job_id, body, {}, decide(exc, Stage.RUN), None, running)
            finally:
                self.leases.remove(job_id)
            return
        self.broker.publish_event(job_id, _event(job_id, PHASE_ACCEPTED, f"resumed by {self.worker_id}"))
        self.execute(job, body, {}, resumed=True)

    # --- running ----------------------------------------------------------------------------------------

    def execute(self, job: Any, body: bytes, headers: dict, *, resumed: bool = False) -> None:
        """Run a job this worker holds the lease of, then conclude it. Never raises; the job always leaves
        the running set (and its heartbeat) whatever the conclusion met."""
        job_id = str(job.job_id)
        running = self.leases.add(job_id)
        if not resumed:
            transition(STARTED, job_id)
        try:
            try:
                decision, result = self._run(job, running)
            except Exception as exc:  # noqa: BLE001 - _run decides itself; this is the last line of defence
                decision, result = decide(exc, Stage.RUN, lease_lost=running.lost.is_set()), None
            self._conclude(job_id, body, headers, decision, result, running)
        finally:
            # whatever happened (even a BaseException), the heartbeat stops: the lease expires for the next worker
            self.leases.remove(job_id)

    def _run(self, job: Any, running: RunningJob) -> tuple[Decision, Any]:
        job_id = str(job.job_id)
        gate = ProgressGate(self.broker, self.lifecycle, running, self.settings.progress_min_interval_s)
        attempt = 0
        while True:
            executor = self._executor_factory(job) if self._executor_factory else None
            failure: BaseException | None = None
            try:
                return decide(None), self._call_runner(job, gate, executor)
            except Exception as exc:  # noqa: BLE001 - decide() sorts it out
                failure = exc
            finally:
                _close_executor(executor, job_id)
            decision = decide(
                failure, Stage.RUN, attempt=attempt, stopping=self.lifecycle.aborting, lease_lost=running.lost.is_set()
            )
            if decision.action is not Action.RETRY:
                return decision, None
            if not self._wait_to_resume(job_id, running, failure, decision, attempt):
                return decide(failure, Stage.RUN, stopping=self.lifecycle.aborting, lease_lost=True), None
            attempt += 1

    def _wait_to_resume(
        self, job_id: str, running: RunningJob, failure: BaseException, decision: Decision, attempt: int
    ) -> bool:
        """After a transient failure: back off, wait until the database answers again, make sure the lease is
        still ours (it may have expired meanwhile), then resume. One outage, one resume: the pipeline is not
        restarted over and over against a database that is still down. False: let the job go."""
        self.metrics.retries.inc()
        self.leases.note_failure(failure)
        transition(
            RETRYING, job_id, attempt=attempt + 1, wait_s=round(decision.delay_s, 2), message=decision.reason[:300]
        )
        lost = running.lost.is_set
        self.lifecycle.sleep(decision.delay_s, lost)
        while True:
            if not self.leases.wait_for_database(lost) or lost():
                return False
            try:
                if not self.leases.renew(job_id):
                    log.warning("job %s: lease lost while the database was away; another worker has it", job_id)
                    running.lost.set()
                    return False
                return True
            except Exception as exc:  # noqa: BLE001 - the probe saw the database, this call did not: again
                self.leases.note_failure(exc)
                self.lifecycle.sleep(decide(exc, Stage.RUN, attempt=attempt).delay_s, lost)
                if self.lifecycle.aborting:
                    return False

    def _call_runner(self, job: Any, progress: ProgressGate, executor: Any) -> Any:
        from ludus.pipeline.preflight import preflight

        # the cheap checks before anything runs (the executor starts its actors lazily, at the first trial)
        preflight(job, settings=self.settings, engine=self.engine)
        runner = self._runner
        if runner is None:
            from ludus.pipeline import run_job

            runner = run_job
        # owner: the pipeline finishes the job record (and queues its announcements in the outbox) in its
        # publishing transaction, only while we hold the lease
        return runner(
            job,
            engine=self.engine,
            settings=self.settings,
            progress=progress,
            executor=executor,
            resume=True,
            owner=self.worker_id,
            **self._runner_options,
        )

    # --- concluding -------------------------------------------------------------------------------------

    def _conclude(
        self, job_id: str, body: bytes, headers: dict, decision: Decision, result: Any, running: RunningJob
    ) -> None:
        """Record the outcome with its announcements, or give the lease back. Never raises."""
        duration = round(time.monotonic() - running.started, 3)
        try:
            if decision.action is Action.DONE:
                status = str(getattr(result, "status", "") or (result or {}).get("status", "")) or jobs.SUCCEEDED
                recorded = self._record(job_id, status, _as_dict(result))
                if recorded is not None:
                    self.metrics.duration.observe(duration)
                    (self.metrics.succeeded if recorded == jobs.SUCCEEDED else self.metrics.failed).inc()
                    transition(FINISHED, job_id, status=recorded, duration_s=duration)
            elif decision.settles_with_dead_letter:
                status = jobs.REJECTED if decision.action is Action.REJECT else jobs.FAILED
                error_result = error_result_of(job_id, status, decision.error)
                letter_headers = dead_letter_headers(
                    headers,
                    decision.error,
                    job_id=job_id,
                    worker=self.worker_id,
                    cause=decision.cause,
                    budget=HEADERS_BUDGET,
                )
                recorded = self._record(
                    job_id, status, error_result.to_dict(), error=decision.reason, dead_letter=(body, letter_headers)
                )
                if recorded is not None:
                    (self.metrics.rejected if recorded == jobs.REJECTED else self.metrics.failed).inc()
                    transition(
                        REJECTED if recorded == jobs.REJECTED else FINISHED,
                        job_id,
                        status=recorded,
                        cause=decision.cause,
                        duration_s=duration,
                        message=decision.reason[:300],
                    )
            else:
                released = self.leases.release(job_id)
                transition(
                    RELEASED, job_id, duration_s=duration, lease_given_back=released, message=decision.reason[:300]
                )
        except Exception:  # never leave a job held by a worker that stopped caring about it
            log.exception("concluding job %s failed; giving its lease back", job_id)
            self.leases.release(job_id)
        self.relay.flush()

    def _record(
        self,
        job_id: str,
        status: str,
        result: dict,
        *,
        error: str | None = None,
        dead_letter: tuple[bytes, dict] | None = None,
    ) -> str | None:
        """Finish the job record (unless the pipeline did) with the outbox rows, retrying by the CONCLUDE
        policy. Returns the status recorded; None when the job was let go (lease lost, gave up)."""
        attempt, since = 0, time.monotonic()
        while True:
            try:
                with transaction(self.engine) as conn:
                    record = jobs.get(conn, job_id)
                    if record is not None and record.finished:
                        return record.status  # the pipeline's publishing transaction did it (outbox included)
                    jobs.finish(conn, job_id, self.worker_id, status, result, error=error, dead_letter=dead_letter)
                return status
            except Exception as exc:  # noqa: BLE001 - decide() says what next
                failure = exc
            decision = decide(
                failure,
                Stage.CONCLUDE,
                attempt=attempt,
                held_s=time.monotonic() - since,
                stopping=self.lifecycle.past_deadline(5.0),
            )  # LeaseLostError -> RELEASE
            if decision.action is Action.RETRY:
                self.leases.note_failure(failure)
                self.lifecycle.sleep(decision.delay_s)
                attempt += 1
                continue
            if decision.action is Action.RELEASE:
                log.warning(
                    "job %s: outcome %s not recorded (%s); the lease is left to expire", job_id, status, decision.reason
                )
                self.leases.release(job_id)
                return None
            if str((result.get("error") or {}).get("reason", "")).startswith("internal error while recording"):
                self.leases.release(job_id)
                return None
            # the outcome itself cannot be stored (it does not serialize, ...): record that instead
            log.error("job %s: outcome %s cannot be recorded: %s", job_id, status, decision.reason)
            status = jobs.FAILED
            why = f"internal error while recording the outcome: {decision.reason}"
            result = error_result_of(job_id, status, {"reason": why}).to_dict()
            error = why


def error_result_of(job_id: str | None, status: str, error: dict | None) -> JobResult:
    """A JobResult for a rejected/failed job (job_id None when the message had no readable UUID). Never
    raises: every text is made safe by ErrorDetail."""
    from uuid import UUID

    error = error or {}
    detail = ErrorDetail(
        field=str(error.get("field", "")) or None,
        value=str(error.get("value", "")) or None,
        reason=str(error.get("reason", "")) or "unknown",
    )
    try:
        uid = UUID(str(job_id)) if job_id else None
    except ValueError:
        uid = None
    if uid is None:
        status = jobs.REJECTED  # only a rejected result may lack a job id
    return JobResult(job_id=uid, status=status, error=detail)


def _readable_job_id(body: bytes) -> str | None:
    uid = extract_job_id(body) if isinstance(body, (bytes, bytearray, str)) else None
    return str(uid) if uid else job_id_of(body)


def _as_dict(result: Any) -> dict:
    if result is None:
        return {}
    return result.to_dict() if hasattr(result, "to_dict") else dict(result)


def _close_executor(executor: Any, job_id: str) -> None:
    if executor is not None and hasattr(executor, "close"):
        try:
            executor.close()
        except Exception:  # a broken executor must not hide the job's outcome
            log.exception("closing the executor of %s", job_id)


def _event(job_id: str, phase: str, message: str) -> ProgressEvent:
    return ProgressEvent(job_id=job_id, phase=phase, message=message)

"""The one place that decides what happens after an attempt, and how long to wait before the next one.

Every loop of the worker (taking a message in, running a job, concluding it, delivering the outbox, keeping
the broker connection) hands what happened to :func:`decide` together with its :class:`Stage`, how many
times it already retried and how long it has held the work; it gets back a :class:`Decision`: done, reject,
fail, retry after ``delay_s`` seconds, or release. The retry rules (backoff, caps, when to give up and what
giving up means) are the table :data:`POLICIES`; no loop has its own. The worker's broker I/O acts on the
Decision and is the only code that acks a message.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field
from typing import Any

from ludus.contracts.text import safe_text
from ludus.errors import InputError, TransientError
from ludus.stores.jobs import LeaseLostError, PayloadConflictError
from ludus.vocabulary import JOB_FAILED

REASON_CHARS = 2000
RACE_RETRIES = 5  # unique-constraint violations retried before they count as a bug


class Action(enum.Enum):
    DONE = "done"  # the attempt reached an end (the job's result says succeeded or failed): ack, announce it
    REJECT = "reject"  # the job itself is wrong: error result, dead letter with the reason, ack
    FAIL = "fail"  # unexpected error inside the job: failed result, dead letter with the reason, ack
    RETRY = "retry"  # the world is wrong for now (database/broker): keep the work, back off, try again
    RELEASE = "release"  # this worker lets go (shutdown, lease lost, gave up retrying): another one takes over


class Stage(enum.Enum):
    """Where an attempt happened; each stage has its own retry rules (:data:`POLICIES`)."""

    INTAKE = "intake"  # a fetched message being parsed and admitted into the jobs table (held unacked)
    RUN = "run"  # a job the jobs table holds for this worker, running
    CONCLUDE = "conclude"  # recording a job's outcome (the jobs table and the outbox, one transaction)
    DELIVER = "deliver"  # the outbox relay handing stored messages to the broker
    CONNECT = "connect"  # the broker connection itself


# Why a message was dead-lettered, in a header of its own (``x-ludus-error-kind``) so tools can tell them
# apart without parsing the reason: ``ludus dlq replay`` refuses to replay what would only be refused again.
CAUSE_INVALID = "invalid"  # the message breaks the job contract or names something that does not exist
CAUSE_CONFLICT = "conflict"  # a known job id with a different payload
CAUSE_FAILED = JOB_FAILED  # Ludus failed on it (a bug, a search where every trial failed)
CAUSE_GAVE_UP = "gave_up"  # every attempt ended with its worker dying or stopping
CAUSES = (CAUSE_INVALID, CAUSE_CONFLICT, CAUSE_FAILED, CAUSE_GAVE_UP)


class WorkerStopping(Exception):
    """Raised inside a running job (at its next progress event) when the worker's shutdown grace is over."""


class AttemptsExhausted(Exception):
    """A job whose attempts keep ending with its worker dying or stopping (a poison job)."""

    def __init__(self, attempts: int) -> None:
        super().__init__(f"gave up after {attempts} attempts (each ended with its worker dying or stopping)")
        self.attempts = attempts


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter from ``base_s`` up to ``cap_s``; after ``give_up_after_s`` of
    holding the work (None: never) a retry becomes ``give_up``."""

    base_s: float
    cap_s: float
    give_up_after_s: float | None
    give_up: Action

    def delay(self, attempt: int) -> float:
        return backoff(attempt, base=self.base_s, cap=self.cap_s)


POLICIES: dict[Stage, RetryPolicy] = {
    # a message is held unacked while its job is admitted; past a minute it goes back to the queue (republished
    # with confirms, so it does not count against the delivery limit) for a later try or another worker
    Stage.INTAKE: RetryPolicy(0.5, 5.0, 60.0, Action.RELEASE),
    # the jobs table holds the job: retry for as long as the lease is ours (the worker waits for the database
    # to answer again before it resumes; see JobExecution)
    Stage.RUN: RetryPolicy(0.5, 15.0, None, Action.RELEASE),
    # an outcome that cannot be recorded within ten minutes is left to the next worker (the lease expires)
    Stage.CONCLUDE: RetryPolicy(0.5, 10.0, 600.0, Action.RELEASE),
    # outbox rows are durable: delivering them never gives up
    Stage.DELIVER: RetryPolicy(0.5, 30.0, None, Action.RETRY),
    Stage.CONNECT: RetryPolicy(0.5, 10.0, None, Action.RETRY),
}


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    # field/value/reason for REJECT and FAIL (header- and JSON-safe)
    error: dict[str, Any] = field(default_factory=dict)
    delay_s: float = 0.0  # RETRY: wait this long first
    cause: str = ""  # REJECT/FAIL: one of CAUSES

    @property
    def settles_with_dead_letter(self) -> bool:
        return self.action in (Action.REJECT, Action.FAIL)


def decide(
    exc: BaseException | None,
    stage: Stage = Stage.RUN,
    *,
    attempt: int = 0,
    held_s: float = 0.0,
    stopping: bool = False,
    lease_lost: bool = False,
) -> Decision:
    """Map the outcome of an attempt (``exc`` None: it returned) to what happens next.

    ``attempt``: retries so far (0 on the first failure); ``held_s``: how long the work has been held;
    ``stopping``: the worker is shutting down (a retry becomes the stage's give-up action); ``lease_lost``:
    another worker holds the job now, so whatever went wrong here is no longer this worker's to settle.
    """
    if exc is None:
        return Decision(Action.DONE)
    if lease_lost and stage in (Stage.RUN, Stage.CONCLUDE):
        return Decision(Action.RELEASE, f"lease lost to another worker ({_reason(exc)})")
    if stage in (Stage.DELIVER, Stage.CONNECT):
        # outbox rows are durable and a connection is always worth another try: whatever failed (an
        # unroutable result waiting for a queue to be bound, a refused password), back off and retry
        return _retry(stage, attempt, held_s, stopping, _reason(exc))
    if isinstance(exc, (WorkerStopping, LeaseLostError)):
        return Decision(Action.RELEASE, _reason(exc))
    if isinstance(exc, AttemptsExhausted):
        return _fail(str(exc), CAUSE_GAVE_UP)
    if isinstance(exc, PayloadConflictError):
        return Decision(Action.REJECT, _reason(exc), _error_of(exc), cause=CAUSE_CONFLICT)
    if isinstance(exc, InputError):  # before transient: a missing price table may surface as an OperationalError
        return Decision(Action.REJECT, _reason(exc), _error_of(exc), cause=CAUSE_INVALID)
    if stage is Stage.INTAKE:
        if isinstance(exc, RecursionError):
            return _reject("$", "message nests too deeply to be read")
        if isinstance(exc, UnicodeError):
            return _reject("$", f"message text cannot be encoded: {safe_text(exc, 200)}")
    if _is_integrity_error(exc) and attempt < RACE_RETRIES:
        # two writers met: a twin message admitted the same job id, two jobs published the same day's row, two
        # workers created Optuna's tables at once (pg_type_typname_nsp_index). The second look finds the
        # winner's row; a violation that persists is a bug, and fails the job after RACE_RETRIES looks.
        return _retry(stage, attempt, held_s, stopping, _reason(exc))
    if is_transient(exc):
        return _retry(stage, attempt, held_s, stopping, _reason(exc))
    return _fail(f"internal error: {_reason(exc)}", CAUSE_FAILED)


def _retry(stage: Stage, attempt: int, held_s: float, stopping: bool, reason: str) -> Decision:
    policy = POLICIES[stage]
    over = policy.give_up_after_s is not None and held_s >= policy.give_up_after_s
    if (stopping or over) and policy.give_up is not Action.RETRY:
        why = "shutting down" if stopping else f"still failing after {held_s:.0f}s"
        return Decision(policy.give_up, f"{why}: {reason}")
    return Decision(Action.RETRY, reason, delay_s=policy.delay(attempt))


def _fail(reason: str, cause: str) -> Decision:
    reason = safe_text(reason, REASON_CHARS)
    return Decision(Action.FAIL, reason, {"field": "", "value": "", "reason": reason}, cause=cause)


def _reject(field_: str, reason: str) -> Decision:
    reason = safe_text(reason, REASON_CHARS)
    return Decision(Action.REJECT, reason, {"field": field_, "value": "", "reason": reason}, cause=CAUSE_INVALID)


def _error_of(exc: InputError) -> dict[str, Any]:
    try:
        raw = exc.to_dict()
    except Exception:  # noqa: BLE001 - a value whose repr fails still leaves the field and the rule
        raw = {"field": exc.field, "value": "", "reason": exc.rule}
    return {
        "field": safe_text(raw.get("field", ""), 200),
        "value": safe_text(raw.get("value", ""), 500),
        "reason": safe_text(raw.get("reason", ""), REASON_CHARS),
    }


def _reason(exc: BaseException) -> str:
    try:
        text = str(exc)
    except Exception:  # noqa: BLE001 - an exception whose message cannot be built is named by its type
        text = ""
    return safe_text(f"{type(exc).__name__}: {text}" if not isinstance(exc, InputError) else text, REASON_CHARS)


def _is_integrity_error(exc: BaseException) -> bool:
    import sqlalchemy.exc as sa_exc

    return isinstance(exc, sa_exc.IntegrityError)


def is_transient(exc: BaseException) -> bool:
    """True for failures that go away by themselves: database or broker unreachable, connection dropped.

    Looks through the exception chain too (Optuna wraps SQLAlchemy errors in StorageInternalError).
    """
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 10:
        if isinstance(current, (TransientError, ConnectionError, TimeoutError)):
            return True
        if _is_db_transient(current) or _is_broker_error(current):
            return True
        current = current.__cause__ or current.__context__
        seen += 1
    return False


def _is_db_transient(exc: BaseException) -> bool:
    import sqlalchemy.exc as sa_exc

    if isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError)):
        return True
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    try:
        import psycopg

        if isinstance(exc, (psycopg.OperationalError, psycopg.InterfaceError)):
            return True
    except ImportError:  # pragma: no cover - psycopg is an optional extra
        pass
    return False


def _is_broker_error(exc: BaseException) -> bool:
    import pika.exceptions

    # A returned (unroutable) or nacked message is that message's fate, not a broken channel: pika files both
    # under AMQPChannelError, and taking them for one made every unroutable result reopen the connection.
    if isinstance(exc, (pika.exceptions.UnroutableError, pika.exceptions.NackError)):
        return False
    return isinstance(
        exc, (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError, pika.exceptions.StreamLostError)
    )


def is_database_error(exc: BaseException) -> bool:
    """True when the failure came from the database (anywhere in the chain), not from the broker."""
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return False
        if type(current).__module__.startswith(("sqlalchemy", "psycopg", "pyodbc", "sqlite3")):
            return True
        current = current.__cause__ or current.__context__
    return False


def backoff(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter (seconds before retry number ``attempt``, from 0)."""
    return random.uniform(0, min(cap, base * (2 ** min(attempt, 16))))

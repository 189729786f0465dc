"""The one place that decides what happens to a job after an attempt: ack, dead-letter, retry or release.

Every outcome of running (or admitting) a job goes through :func:`decide`; the worker's settle step acts on
the returned :class:`Decision` and is the only code that acks or dead-letters a message.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass, field

from ludus.errors import InputError, TransientError


class Action(enum.Enum):
    DONE = "done"  # the job ran to an end (its result says succeeded or failed): ack, publish the result
    REJECT = "reject"  # the job itself is wrong: error result, dead letter with the reason, ack
    FAIL = "fail"  # unexpected error inside the job: failed result, dead letter with the reason, ack
    RETRY = "retry"  # the world is wrong for now (database/broker): keep the job, back off, try again
    RELEASE = "release"  # this worker must let go (shutdown, lease lost): the job stays for another worker


class WorkerStopping(Exception):
    """Raised inside a running job (at its next progress event) when the worker's shutdown grace is over."""


class LeaseLost(Exception):
    """Raised inside a running job when another worker took its lease over."""


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str = ""
    error: dict = field(default_factory=dict)  # field/value/reason for REJECT and FAIL


def decide(exc: BaseException | None) -> Decision:
    """Map the outcome of an attempt (None = it returned) to what happens to the job and its message."""
    if exc is None:
        return Decision(Action.DONE)
    if isinstance(exc, (WorkerStopping, LeaseLost)):
        return Decision(Action.RELEASE, f"{type(exc).__name__}: {exc}")
    if isinstance(exc, InputError):  # first: a missing price table may surface through an OperationalError
        return Decision(Action.REJECT, str(exc), exc.to_dict())
    if is_transient(exc):
        return Decision(Action.RETRY, f"{type(exc).__name__}: {exc}")
    reason = f"internal error: {type(exc).__name__}: {exc}"
    return Decision(Action.FAIL, reason, {"field": "", "value": "", "reason": reason[:2000]})


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

    return isinstance(exc, (pika.exceptions.AMQPConnectionError, pika.exceptions.AMQPChannelError,
                            pika.exceptions.StreamLostError))


def backoff(attempt: int, *, base: float = 0.5, cap: float = 30.0) -> float:
    """Exponential backoff with full jitter (seconds before retry number ``attempt``, from 0)."""
    return random.uniform(0, min(cap, base * (2 ** min(attempt, 16))))

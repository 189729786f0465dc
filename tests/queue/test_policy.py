"""decide() as a table: what happens after every kind of failure, at every stage (no broker, no database).

The worker's loops only act on these decisions, so this table is the retry and settling policy of Ludus.
"""

from __future__ import annotations

import json

import pika.exceptions
import pytest
import sqlalchemy as sa
from optuna.exceptions import StorageInternalError

from ludus.contracts.job import parse_job
from ludus.errors import InputError, TransientError, UnknownSymbolError
from ludus.queue.policy import (
    CAUSE_CONFLICT,
    CAUSE_FAILED,
    CAUSE_GAVE_UP,
    CAUSE_INVALID,
    POLICIES,
    Action,
    AttemptsExhausted,
    Stage,
    WorkerStopping,
    decide,
)
from ludus.stores.jobs import LeaseLostError, PayloadConflictError


def _chained(outer: BaseException, cause: BaseException) -> BaseException:
    outer.__cause__ = cause
    return outer


def _db_down() -> sa.exc.OperationalError:
    return sa.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError("connection refused"))


def _parse_error(raw) -> BaseException:
    try:
        parse_job(raw)
    except Exception as exc:  # noqa: BLE001 - the table wants the real exception
        return exc
    raise AssertionError("expected the contract to refuse it")


JOB = {"job_id": "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f", "strategy": "sma_cross", "symbols": ["SPX"]}

TABLE = [
    # (what happened, stage, expected action, expected cause)
    (None, Stage.RUN, Action.DONE, ""),
    (WorkerStopping("grace over"), Stage.RUN, Action.RELEASE, ""),
    (LeaseLostError("taken over"), Stage.RUN, Action.RELEASE, ""),
    (LeaseLostError("taken over"), Stage.CONCLUDE, Action.RELEASE, ""),  # never dead-letter another's job
    (PayloadConflictError(JOB["job_id"], "a" * 64, "b" * 64), Stage.INTAKE, Action.REJECT, CAUSE_CONFLICT),
    (AttemptsExhausted(20), Stage.RUN, Action.FAIL, CAUSE_GAVE_UP),
    (InputError("symbols", "ZZZ", "unknown"), Stage.RUN, Action.REJECT, CAUSE_INVALID),
    (UnknownSymbolError("ZZZ", "1d", []), Stage.RUN, Action.REJECT, CAUSE_INVALID),
    # a missing price table surfaces through an OperationalError: still the job's fault
    (_chained(InputError("symbol", "ZZZ", "no table"), _db_down()), Stage.RUN, Action.REJECT, CAUSE_INVALID),
    (_parse_error(b"{not json"), Stage.INTAKE, Action.REJECT, CAUSE_INVALID),
    (_parse_error(b"\xff\xfe\x00"), Stage.INTAKE, Action.REJECT, CAUSE_INVALID),
    (_parse_error(json.dumps({**JOB, "strategy": "\ud800"})), Stage.INTAKE, Action.REJECT, CAUSE_INVALID),
    (_parse_error("[" * 5000 + "]" * 5000), Stage.INTAKE, Action.REJECT, CAUSE_INVALID),
    (
        _parse_error(json.dumps({**JOB, "overrides": {"fast": {"choices": [[[[[[[[[[1]]]]]]]]]]}}})),
        Stage.INTAKE,
        Action.REJECT,
        CAUSE_INVALID,
    ),
    (RecursionError("maximum recursion depth exceeded"), Stage.INTAKE, Action.REJECT, CAUSE_INVALID),
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), Stage.INTAKE, Action.REJECT, CAUSE_INVALID),
    (RecursionError("maximum recursion depth exceeded"), Stage.RUN, Action.FAIL, CAUSE_FAILED),
    (sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key")), Stage.INTAKE, Action.RETRY, ""),
    # concurrent writers (the same day's row, Optuna's tables created by two workers at once): look again
    (
        sa.exc.IntegrityError("CREATE TABLE", {}, Exception('violates "pg_type_typname_nsp_index"')),
        Stage.RUN,
        Action.RETRY,
        "",
    ),
    (_db_down(), Stage.INTAKE, Action.RETRY, ""),
    (_db_down(), Stage.RUN, Action.RETRY, ""),
    (_db_down(), Stage.CONCLUDE, Action.RETRY, ""),
    (_db_down(), Stage.DELIVER, Action.RETRY, ""),
    (_chained(StorageInternalError("commit failed"), _db_down()), Stage.RUN, Action.RETRY, ""),
    (TransientError("database unreachable"), Stage.RUN, Action.RETRY, ""),
    (pika.exceptions.StreamLostError("gone"), Stage.CONNECT, Action.RETRY, ""),
    (pika.exceptions.ProbableAuthenticationError("403"), Stage.CONNECT, Action.RETRY, ""),
    (ConnectionResetError(), Stage.DELIVER, Action.RETRY, ""),
    (ZeroDivisionError("bug"), Stage.RUN, Action.FAIL, CAUSE_FAILED),
    (ZeroDivisionError("bug"), Stage.INTAKE, Action.FAIL, CAUSE_FAILED),
    (MemoryError(), Stage.RUN, Action.FAIL, CAUSE_FAILED),
]


@pytest.mark.parametrize(
    ("exc", "stage", "action", "cause"), TABLE, ids=[f"{type(e).__name__}-{s.value}" for e, s, _, _ in TABLE]
)
def test_decide_table(exc, stage, action, cause) -> None:
    decision = decide(exc, stage)
    assert decision.action is action, decision
    assert decision.cause == cause
    if action in (Action.REJECT, Action.FAIL):
        # what goes into headers and the error result is always encodable, bounded text
        assert decision.error["reason"] and len(decision.error["reason"]) <= 2000
        for text in decision.error.values():
            text.encode("utf-8")
        json.dumps(decision.error)
    if action is Action.RETRY:
        assert 0 <= decision.delay_s <= POLICIES[stage].cap_s


def test_a_returned_or_nacked_message_is_not_a_broken_connection() -> None:
    from ludus.queue.policy import is_transient
    from ludus.queue.publisher import UnroutableError

    unroutable = _chained(UnroutableError("reached no queue"), pika.exceptions.UnroutableError([]))
    assert not is_transient(unroutable)  # the worker keeps its connection
    assert decide(unroutable, Stage.DELIVER).action is Action.RETRY  # and the outbox keeps the row
    assert not is_transient(pika.exceptions.NackError([]))
    assert is_transient(pika.exceptions.ChannelClosedByBroker(404, "NOT_FOUND"))


def test_lone_surrogates_and_huge_values_come_out_safe() -> None:
    exc = ValueError("\ud800" + "x" * 100_000)
    decision = decide(exc, Stage.RUN)
    assert decision.action is Action.FAIL and "\\ud800" in decision.reason
    assert len(decision.reason) <= 2000
    decision.reason.encode("utf-8")

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no text for you")

    assert decide(Unprintable(), Stage.RUN).reason.startswith("internal error: Unprintable")


@pytest.mark.parametrize("stage", [Stage.INTAKE, Stage.RUN, Stage.CONCLUDE])
def test_a_retry_becomes_the_stages_give_up_action_when_stopping(stage) -> None:
    decision = decide(_db_down(), stage, stopping=True)
    assert decision.action is POLICIES[stage].give_up is Action.RELEASE
    assert "shutting down" in decision.reason


@pytest.mark.parametrize("exc", [_db_down(), ZeroDivisionError("bug"), InputError("symbols", "ZZZ", "unknown")])
def test_once_the_lease_is_lost_nothing_is_this_workers_to_settle(exc) -> None:
    for stage in (Stage.RUN, Stage.CONCLUDE):
        assert decide(exc, stage, lease_lost=True).action is Action.RELEASE


def test_a_unique_violation_that_persists_is_a_bug() -> None:
    from ludus.queue.policy import RACE_RETRIES

    race = sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key"))
    assert decide(race, Stage.RUN, attempt=RACE_RETRIES - 1).action is Action.RETRY
    decision = decide(race, Stage.RUN, attempt=RACE_RETRIES)
    assert decision.action is Action.FAIL and decision.cause == CAUSE_FAILED


def test_give_up_rules_per_stage() -> None:
    # a message held unacked for more than its stage's limit goes back to the queue
    assert decide(_db_down(), Stage.INTAKE, held_s=59).action is Action.RETRY
    assert decide(_db_down(), Stage.INTAKE, held_s=61).action is Action.RELEASE
    assert decide(_db_down(), Stage.CONCLUDE, held_s=601).action is Action.RELEASE
    # a running job and the outbox never give up on an outage: their work is durable
    assert decide(_db_down(), Stage.RUN, held_s=10**6).action is Action.RETRY
    assert decide(_db_down(), Stage.DELIVER, held_s=10**6, stopping=True).action is Action.RETRY
    assert decide(_db_down(), Stage.CONNECT, attempt=50).action is Action.RETRY


@pytest.mark.parametrize("stage", list(Stage))
def test_backoff_grows_with_attempts_and_stays_under_the_cap(stage) -> None:
    policy = POLICIES[stage]
    early = max(decide(_db_down(), stage, attempt=0).delay_s for _ in range(200))
    late = [decide(_db_down(), stage, attempt=12).delay_s for _ in range(200)]
    assert early <= policy.base_s
    assert max(late) <= policy.cap_s and max(late) > policy.base_s

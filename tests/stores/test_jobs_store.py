"""The jobs table: accept once, atomic claims, leases that expire, finish only by the owner."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timedelta, timezone

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from ludus.errors import InputError
from ludus.stores import jobs as J
from ludus.stores.unit import transaction

T0 = datetime(2024, 3, 15, 21, 0, tzinfo=timezone.utc)
PAYLOAD = {"strategy": "sma_cross", "symbols": ["SPX"], "interval": "1d"}


def _accepted(engine: Engine) -> str:
    jid = str(uuid.uuid4())
    with transaction(engine) as conn:
        J.accept(conn, jid, PAYLOAD, now=T0)
    return jid


def test_accept_records_once(engine: Engine) -> None:
    jid = uuid.uuid4()
    with transaction(engine) as conn:
        rec, created = J.accept(conn, jid, PAYLOAD, now=T0)
    assert created and rec.job_id == str(jid) and rec.status == J.ACCEPTED and rec.attempts == 0
    assert rec.payload == PAYLOAD and rec.created_at == T0 and rec.created_at.tzinfo == timezone.utc
    with transaction(engine) as conn:
        again, created = J.accept(conn, str(jid).upper(), dict(reversed(PAYLOAD.items())))
        # The duplicate did not poison the transaction (it sat in a savepoint).
        assert conn.execute(sa.select(1)).scalar_one() == 1
    assert not created and again.payload == PAYLOAD and again.payload_hash == J.payload_hash(PAYLOAD)


def test_a_known_job_id_with_another_payload_is_refused_and_nothing_changes(engine: Engine) -> None:
    jid = _accepted(engine)
    other = {**PAYLOAD, "symbols": ["IXIC"]}
    with pytest.raises(J.PayloadConflictError) as err, transaction(engine) as conn:
        J.accept(conn, jid, other)
    assert err.value.field == "job_id" and err.value.value == jid and "different payload" in err.value.rule
    assert isinstance(err.value, InputError)  # the queue policy rejects it like any bad input
    with transaction(engine) as conn:
        assert J.get(conn, jid).payload == PAYLOAD
        with pytest.raises(J.PayloadConflictError):
            J.check_payload(conn, jid, other)
        assert J.check_payload(conn, jid, PAYLOAD).job_id == jid
        assert J.check_payload(conn, uuid.uuid4(), other) is None
        # a stored payload that today's contract normalizes to the offered one is the same job
        _same, created = J.accept(conn, jid, other, canonical=lambda stored: {**stored, "symbols": ["IXIC"]})
        assert not created


def test_finish_announces_result_event_and_dead_letter_in_the_same_transaction(engine: Engine) -> None:
    from ludus.stores import outbox

    jid = _accepted(engine)
    with transaction(engine) as conn:
        assert J.claim(conn, jid, "worker-a", 30, now=T0)
        J.finish(
            conn,
            jid,
            "worker-a",
            J.REJECTED,
            {"job_id": jid, "status": "rejected", "error": {"reason": "no price table"}},
            dead_letter=(b'{"job_id": 1}', {"x-ludus-error-reason": "no price table"}),
            now=T0,
        )
        rows = outbox.of_job(conn, jid)
    assert [r.kind for r in rows] == [outbox.PROGRESS, outbox.RESULT, outbox.DEAD_LETTER]
    assert rows[1].routing_key == f"job.{jid}.result" and b"no price table" in rows[1].body
    assert rows[2].body == b'{"job_id": 1}' and rows[2].headers == {"x-ludus-error-reason": "no price table"}
    assert len({r.message_id for r in rows}) == 3
    # the writer keeps them until its lease would have run out; then anyone may deliver them
    with transaction(engine) as conn:
        assert outbox.claim(conn, "worker-b", 30, now=T0 + timedelta(seconds=29)) == []
        mine = outbox.claim(conn, "worker-a", 30, now=T0 + timedelta(seconds=1))
        assert [r.id for r in mine] == [r.id for r in rows]
        assert outbox.delivered(conn, rows[0].id, "worker-a")
        late = outbox.claim(conn, "worker-b", 30, now=T0 + timedelta(seconds=60))
        assert [r.id for r in late] == [r.id for r in rows[1:]]  # delivered rows never go out again
        assert not outbox.delivered(conn, rows[1].id, "worker-a")  # taken over: the old claimer cannot mark it
        assert outbox.pending(conn) == 2
    # a failed transaction leaves no announcement behind
    jid2 = _accepted(engine)
    with pytest.raises(RuntimeError), transaction(engine) as conn:
        J.finish(conn, jid2, None, J.REJECTED, {"status": "rejected"})
        raise RuntimeError("the publishing transaction broke")
    with transaction(engine) as conn:
        assert outbox.of_job(conn, jid2) == [] and J.get(conn, jid2).status == J.ACCEPTED
        J.finish(conn, jid2, None, J.SUCCEEDED, {}, announce=False)
        assert outbox.of_job(conn, jid2) == []


def test_reopen_reruns_a_rejected_job_once_per_replay(engine: Engine) -> None:
    jid = _accepted(engine)
    with transaction(engine) as conn:
        J.claim(conn, jid, "worker-a", 30)
        J.finish(conn, jid, "worker-a", J.REJECTED, {"status": "rejected"}, error="no price table")
    with transaction(engine) as conn:
        assert J.reopen(conn, jid, "worker-b", 30, replays=1)
        rec = J.get(conn, jid)
        assert (rec.status, rec.lease_owner, rec.attempts, rec.replays, rec.result) == (
            J.RUNNING,
            "worker-b",
            2,
            1,
            None,
        )
        assert not J.reopen(conn, jid, "worker-c", 30, replays=1)  # running: nothing to reopen
        J.finish(conn, jid, "worker-b", J.SUCCEEDED, {"status": "succeeded"})
        assert not J.reopen(conn, jid, "worker-c", 30, replays=2)  # succeeded jobs stay succeeded


def test_job_id_must_be_a_uuid(engine: Engine) -> None:
    with transaction(engine) as conn, pytest.raises(InputError, match="UUID"):
        J.accept(conn, "1; DROP TABLE ludus_jobs", PAYLOAD)


def test_claim_heartbeat_finish(engine: Engine) -> None:
    jid = _accepted(engine)
    with transaction(engine) as conn:
        assert J.claim(conn, jid, "worker-a", 30, now=T0)
    with transaction(engine) as conn:
        rec = J.get(conn, jid)
        assert (rec.status, rec.lease_owner, rec.attempts) == (J.RUNNING, "worker-a", 1)
        assert rec.lease_expires_at == T0 + timedelta(seconds=30) and rec.started_at == T0
        # A live lease is not claimable, not even again by its owner (no second run beside the first).
        assert not J.claim(conn, jid, "worker-b", 30, now=T0 + timedelta(seconds=10))
        assert not J.claim(conn, jid, "worker-a", 30, now=T0 + timedelta(seconds=10))
        assert J.heartbeat(conn, jid, "worker-a", 30, now=T0 + timedelta(seconds=25))
        assert not J.heartbeat(conn, jid, "worker-b", 30, now=T0 + timedelta(seconds=25))
        # The heartbeat moved the expiry to T0+55s: at T0+40s the lease still holds.
        assert not J.claim(conn, jid, "worker-b", 30, now=T0 + timedelta(seconds=40))
        J.finish(conn, jid, "worker-a", J.SUCCEEDED, {"published": 1}, now=T0 + timedelta(seconds=50))
    with transaction(engine) as conn:
        rec = J.get(conn, jid)
    assert rec.status == J.SUCCEEDED and rec.result == {"published": 1} and rec.finished
    assert rec.lease_owner is None and rec.finished_at == T0 + timedelta(seconds=50)
    with transaction(engine) as conn:
        assert not J.claim(conn, jid, "worker-b", 30, now=T0 + timedelta(hours=1))  # finished jobs stay finished


def test_expired_lease_is_reclaimed_and_old_owner_is_locked_out(engine: Engine) -> None:
    jid = _accepted(engine)
    with transaction(engine) as conn:
        assert J.claim(conn, jid, "worker-a", 30, now=T0)
        assert J.expired_leases(conn, T0 + timedelta(seconds=29)) == []
        expired = J.expired_leases(conn, T0 + timedelta(seconds=31))
        assert [r.job_id for r in expired] == [jid]
        assert J.claim(conn, jid, "worker-b", 30, now=T0 + timedelta(seconds=31))
        assert not J.heartbeat(conn, jid, "worker-a", 30, now=T0 + timedelta(seconds=32))
        rec = J.get(conn, jid)
        assert (rec.lease_owner, rec.attempts, rec.started_at) == ("worker-b", 2, T0)
    with pytest.raises(J.LeaseLostError, match="worker-b"), transaction(engine) as conn:
        J.finish(conn, jid, "worker-a", J.SUCCEEDED, {"from": "a"})
    with transaction(engine) as conn:
        J.finish(conn, jid, "worker-b", J.FAILED, {"from": "b"}, error="boom")
        rec = J.get(conn, jid)
    assert (rec.status, rec.result, rec.error) == (J.FAILED, {"from": "b"}, "boom")


def test_lease_lost_rolls_back_the_callers_results(engine: Engine) -> None:
    jid = _accepted(engine)
    with transaction(engine) as conn:
        J.claim(conn, jid, "worker-b", 30)
    other = str(uuid.uuid4())
    with pytest.raises(J.LeaseLostError), transaction(engine) as conn:
        J.accept(conn, other, PAYLOAD)  # stands for the results written in the same unit
        J.finish(conn, jid, "worker-a", J.SUCCEEDED, {})
    with transaction(engine) as conn:
        assert J.get(conn, other) is None


def test_reject_unclaimed_and_release(engine: Engine) -> None:
    jid = _accepted(engine)
    with transaction(engine) as conn:
        J.finish(conn, jid, None, J.REJECTED, {"error": {"field": "symbols"}}, error="bad symbol")
        assert J.get(conn, jid).status == J.REJECTED
        with pytest.raises(J.LeaseLostError):
            J.finish(conn, jid, None, J.REJECTED, {})
    jid2 = _accepted(engine)
    with transaction(engine) as conn:
        assert J.claim(conn, jid2, "worker-a", 30)
        with pytest.raises(J.LeaseLostError):
            J.finish(conn, jid2, None, J.FAILED, {})  # a running job is finished by its owner only
        assert J.release(conn, jid2, "worker-a")
        assert J.get(conn, jid2).status == J.ACCEPTED
        assert J.claim(conn, jid2, "worker-b", 30)
        with pytest.raises(ValueError):
            J.finish(conn, jid2, "worker-b", J.RUNNING, {})
    with transaction(engine) as conn:
        assert [j.job_id for j in J.list_jobs(conn, status=J.RUNNING)] == [jid2]
        assert J.get(conn, uuid.uuid4()) is None


@pytest.mark.parametrize("claimers", [2, 6])
def test_concurrent_claims_exactly_one_wins(engine: Engine, claimers: int) -> None:
    jid = _accepted(engine)
    barrier = threading.Barrier(claimers)
    wins: list[str] = []
    errors: list[BaseException] = []

    def claimer(owner: str) -> None:
        try:
            barrier.wait(10)
            with transaction(engine) as conn:
                if J.claim(conn, jid, owner, 60):
                    wins.append(owner)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"worker-{i}",)) for i in range(claimers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors
    assert len(wins) == 1
    with transaction(engine) as conn:
        rec = J.get(conn, jid)
    assert rec.lease_owner == wins[0] and rec.attempts == 1


def test_claim_blocked_behind_an_uncommitted_claim_loses(engine: Engine) -> None:
    """Worker A's claim is not yet committed when B claims: B waits for A, then sees the lease and loses."""
    jid = _accepted(engine)
    a_claimed, release_a = threading.Event(), threading.Event()
    result: dict[str, bool] = {}

    def worker_a() -> None:
        with transaction(engine) as conn:
            result["a"] = J.claim(conn, jid, "worker-a", 60)
            a_claimed.set()
            release_a.wait(10)

    t = threading.Thread(target=worker_a)
    t.start()
    assert a_claimed.wait(10)
    timer = threading.Timer(0.3, release_a.set)  # A commits while B is blocked
    timer.start()
    with transaction(engine) as conn:
        result["b"] = J.claim(conn, jid, "worker-b", 60)
    t.join(10)
    assert result == {"a": True, "b": False}

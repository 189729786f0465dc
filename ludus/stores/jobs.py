"""The jobs table: the queue worker's record of every job it accepted, and who holds it.

A job id (a UUID) is the idempotency key: ``accept`` records a job once however often its message arrives.
A worker runs a job only while it holds the job's lease: ``claim`` takes it with one conditional UPDATE whose
row count decides (so two workers can never both own a job, on any backend), ``heartbeat`` renews it, and
``finish`` succeeds only for the owner. A lease that expired (its worker died) can be claimed again.
All times are timezone-aware UTC; the workers' clocks are assumed to be NTP-synchronized.

A job id names one job: the payload's hash is stored with it, and the same id arriving with another payload is
refused (:class:`PayloadConflictError`), never run and never silently dropped. ``finish`` also writes what the
outcome must announce (the result, the final progress event, a dead letter) to the outbox in the same
transaction, so the announcement survives whatever happens to the worker after its commit.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ludus import constants as c
from ludus.db.schema import jobs as T
from ludus.db.schema import utcnow
from ludus.errors import InputError, LudusError
from ludus.stores import outbox
from ludus.vocabulary import (
    JOB_ACCEPTED,
    JOB_FAILED,
    JOB_REJECTED,
    JOB_RUNNING,
    JOB_STATUSES,
    JOB_SUCCEEDED,
    JOB_TERMINAL,
    PHASE_FAILED,
    PHASE_SUCCEEDED,
)

# the statuses of the jobs table (ludus.vocabulary)
ACCEPTED = JOB_ACCEPTED
RUNNING = JOB_RUNNING
SUCCEEDED = JOB_SUCCEEDED
FAILED = JOB_FAILED
REJECTED = JOB_REJECTED
STATUSES = JOB_STATUSES
TERMINAL = JOB_TERMINAL


class LeaseLostError(LudusError):
    """The caller does not own the job (any more): another worker claimed it, or it already finished.

    The one lease-lost exception of Ludus: the queue policy releases the job (never fails it) on it."""


class PayloadConflictError(InputError):
    """A job id already recorded with a different payload: one id names one job."""

    def __init__(self, job_id: str, stored: str, offered: str) -> None:
        super().__init__(
            "job_id",
            job_id,
            f"this job id is already recorded with a different payload (stored sha256 {stored[:12]}, "
            f"this message {offered[:12]}); a job id names one job: give this job a new job_id",
        )
        self.stored_hash = stored
        self.offered_hash = offered


Canonical = Callable[[dict[str, Any]], dict[str, Any]]


def payload_hash(payload: dict[str, Any]) -> str:
    """sha256 of the canonical JSON of a payload (sorted keys, no whitespace): equal payloads, equal hashes."""
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


@dataclass(frozen=True)
class JobRecord:
    job_id: str
    status: str
    payload: dict[str, Any]
    result: dict[str, Any] | None
    attempts: int
    lease_owner: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    payload_hash: str | None = None
    replays: int = 0

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL


def normalize_job_id(job_id: object) -> str:
    """The canonical text of a UUID job id (InputError when it is not one)."""
    if isinstance(job_id, uuid.UUID):
        return str(job_id)
    try:
        return str(uuid.UUID(str(job_id)))
    except ValueError:
        raise InputError("job_id", job_id, "must be a UUID") from None


def accept(
    conn: Connection,
    job_id: object,
    payload: dict[str, Any],
    *,
    now: datetime | None = None,
    canonical: Canonical | None = None,
) -> tuple[JobRecord, bool]:
    """Record a job once; returns (record, created). A known job id with the same payload returns the stored
    record unchanged; with another payload it raises PayloadConflictError (nothing is written).

    ``canonical(stored_payload)`` re-normalizes a stored payload before the hashes are declared different, so
    a message redelivered across an upgrade that added a defaulted field still matches its own record."""
    jid = normalize_job_id(job_id)
    now = now or utcnow()
    digest = payload_hash(payload)
    try:
        # Insert first (a write takes SQLite's write lock at once); the SAVEPOINT keeps a duplicate from
        # aborting the caller's transaction on PostgreSQL.
        with conn.begin_nested():
            conn.execute(
                sa.insert(T).values(
                    job_id=jid,
                    status=ACCEPTED,
                    payload=payload,
                    attempts=0,
                    created_at=now,
                    updated_at=now,
                    payload_hash=digest,
                    replays=0,
                )
            )
        created = True
    except sa.exc.IntegrityError:
        created = False
    record = get(conn, jid)
    assert record is not None
    if not created:
        _same_payload(record, digest, canonical)
    return record, created


def check_payload(
    conn: Connection, job_id: object, payload: dict[str, Any], *, canonical: Canonical | None = None
) -> JobRecord | None:
    """The stored record of ``job_id`` (None when unknown); PayloadConflictError when it holds another payload."""
    record = get(conn, job_id)
    if record is not None:
        _same_payload(record, payload_hash(payload), canonical)
    return record


def _same_payload(record: JobRecord, digest: str, canonical: Canonical | None) -> None:
    stored = record.payload_hash or payload_hash(record.payload)  # rows from before the hash column
    if stored == digest:
        return
    if canonical is not None:
        try:
            if payload_hash(canonical(record.payload)) == digest:
                return
        except Exception:  # noqa: BLE001 - a stored payload today's contract refuses is simply different
            pass
    raise PayloadConflictError(record.job_id, stored, digest)


def claim(conn: Connection, job_id: object, owner: str, lease_s: float, *, now: datetime | None = None) -> bool:
    """Take the job's lease for ``lease_s`` seconds if it is unfinished and its lease is free or expired.

    Exactly one of several concurrent claimers gets True. A successful claim marks the job running and
    counts an attempt. Claiming a lease one already holds and that has not expired returns False too: a
    redelivered message must not start a second run beside the first.
    """
    jid = normalize_job_id(job_id)
    now = now or utcnow()
    stmt = (
        sa.update(T)
        .where(
            T.c.job_id == jid,
            T.c.status.in_((ACCEPTED, RUNNING)),
            sa.or_(T.c.lease_owner.is_(None), T.c.lease_expires_at.is_(None), T.c.lease_expires_at < now),
        )
        .values(
            status=RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            attempts=T.c.attempts + 1,
            started_at=sa.func.coalesce(T.c.started_at, now),
            updated_at=now,
        )
    )
    return conn.execute(stmt).rowcount == 1


def heartbeat(conn: Connection, job_id: object, owner: str, lease_s: float, *, now: datetime | None = None) -> bool:
    """Extend the owner's lease to ``now + lease_s``; False when ``owner`` no longer holds the job."""
    jid = normalize_job_id(job_id)
    now = now or utcnow()
    stmt = (
        sa.update(T)
        .where(T.c.job_id == jid, T.c.status == RUNNING, T.c.lease_owner == owner)
        .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now)
    )
    return conn.execute(stmt).rowcount == 1


def finish(
    conn: Connection,
    job_id: object,
    owner: str | None,
    status: str,
    result: dict[str, Any] | None,
    *,
    error: str | None = None,
    now: datetime | None = None,
    announce: bool = True,
    dead_letter: tuple[bytes, dict[str, Any]] | None = None,
) -> None:
    """Record the outcome, release the lease and (``announce``) queue its messages in the outbox.

    Allowed for the lease owner of a running job, or (``owner`` None) for a job nobody claimed yet (a
    rejected message). Anything else raises LeaseLostError, which rolls back the caller's transaction, so
    results are never persisted by a worker that lost the job.

    Announced in the same transaction: the result (``job.<id>.result``), the final progress event and, for a
    rejected or failed job, ``dead_letter`` = (message body, headers). The owner's outbox rows stay claimed
    by it until its lease would have expired: it delivers them right after its commit, and another worker
    only when it died. ``announce=False``: a job run outside the queue (``ludus optimize``) tells nobody.
    """
    if status not in TERMINAL:
        raise ValueError(f"finish status must be one of {TERMINAL}, got {status!r}")
    jid = normalize_job_id(job_id)
    now = now or utcnow()
    current = get(conn, jid)
    if owner is None:
        who = sa.and_(T.c.status == ACCEPTED, T.c.lease_owner.is_(None))
    else:
        who = sa.and_(T.c.status == RUNNING, T.c.lease_owner == owner)
    stmt = (
        sa.update(T)
        .where(T.c.job_id == jid, who)
        .values(
            status=status,
            result=result,
            error=error,
            finished_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    if conn.execute(stmt).rowcount != 1:
        current = get(conn, jid)
        state = "unknown job" if current is None else f"status {current.status}, lease owner {current.lease_owner}"
        raise LeaseLostError(f"job {jid} cannot be finished by {owner or 'a non-owner'}: {state}")
    if announce:
        claim_until = current.lease_expires_at if current is not None and owner is not None else None
        _announce(
            conn,
            jid,
            status,
            result,
            replays=current.replays if current is not None else 0,
            owner=owner if claim_until is not None else None,
            claim_until=claim_until,
            dead_letter=dead_letter,
            now=now,
        )


def _announce(
    conn: Connection,
    jid: str,
    status: str,
    result: dict[str, Any] | None,
    *,
    replays: int,
    owner: str | None,
    claim_until: datetime | None,
    dead_letter: tuple[bytes, dict[str, Any]] | None,
    now: datetime,
) -> None:
    from ludus.contracts.events import ProgressEvent

    # stable ids: a consumer seeing the same message_id twice (an at-least-once redelivery) drops the copy;
    # a replayed re-run announces under new ids
    def add(kind: str, key: str, body: bytes, headers: dict[str, Any] | None = None) -> None:
        outbox.add(
            conn,
            kind,
            key,
            body,
            message_id=f"{jid}:{kind}:{replays}",
            job_id=jid,
            headers=headers,
            claimed_by=owner,
            claim_until=claim_until,
            now=now,
        )

    error = (result or {}).get("error") or {}
    reason = str(error.get("reason") or "") if isinstance(error, dict) else ""
    phase = PHASE_SUCCEEDED if status == SUCCEEDED else PHASE_FAILED
    event = ProgressEvent(job_id=jid, phase=phase, message=status + (f": {reason}" if reason else ""))
    add(outbox.PROGRESS, c.progress_routing_key(jid), event.to_json().encode())
    add(outbox.RESULT, c.result_routing_key(jid), json.dumps(result or {}, default=str).encode())
    if dead_letter is not None:
        body, headers = dead_letter
        add(outbox.DEAD_LETTER, c.JOBS_ROUTING_KEY, body, headers)


def reopen(
    conn: Connection, job_id: object, owner: str, lease_s: float, replays: int, *, now: datetime | None = None
) -> bool:
    """Take a rejected or failed job back to running under ``owner`` for dead-letter replay number ``replays``.

    True only once per replay number (a duplicate of the replayed message finds ``replays`` already there and
    gets the stored result instead). The result and error of the earlier run are cleared; attempts go on."""
    jid = normalize_job_id(job_id)
    now = now or utcnow()
    stmt = (
        sa.update(T)
        .where(T.c.job_id == jid, T.c.status.in_((FAILED, REJECTED)), T.c.replays < replays)
        .values(
            status=RUNNING,
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_s),
            attempts=T.c.attempts + 1,
            result=None,
            error=None,
            finished_at=None,
            replays=replays,
            updated_at=now,
        )
    )
    return conn.execute(stmt).rowcount == 1


def release(conn: Connection, job_id: object, owner: str, *, now: datetime | None = None) -> bool:
    """Give the lease back without finishing (graceful shutdown): the job is claimable again at once."""
    jid = normalize_job_id(job_id)
    now = now or utcnow()
    stmt = (
        sa.update(T)
        .where(T.c.job_id == jid, T.c.status == RUNNING, T.c.lease_owner == owner)
        .values(status=ACCEPTED, lease_owner=None, lease_expires_at=None, updated_at=now)
    )
    return conn.execute(stmt).rowcount == 1


def get(conn: Connection, job_id: object) -> JobRecord | None:
    """The job's record, or None."""
    row = conn.execute(sa.select(T).where(T.c.job_id == normalize_job_id(job_id))).mappings().first()
    return _record(row) if row is not None else None


def expired_leases(conn: Connection, now: datetime | None = None) -> list[JobRecord]:
    """Running jobs whose lease ran out (their worker stopped heart-beating), oldest first."""
    now = now or utcnow()
    q = sa.select(T).where(T.c.status == RUNNING, T.c.lease_expires_at < now).order_by(T.c.lease_expires_at)
    return [_record(r) for r in conn.execute(q).mappings()]


def list_jobs(conn: Connection, status: str | None = None, limit: int = 50) -> list[JobRecord]:
    """Most recently created jobs first, optionally of one status."""
    q = sa.select(T).order_by(T.c.created_at.desc()).limit(limit)
    if status is not None:
        q = q.where(T.c.status == status)
    return [_record(r) for r in conn.execute(q).mappings()]


def _record(m: Any) -> JobRecord:
    return JobRecord(**{col.name: m[col.name] for col in T.columns})


def find_jobs(
    conn: Connection,
    *,
    status: str | None = None,
    strategy: str | None = None,
    symbol: str | None = None,
    since: datetime | None = None,
    limit: int = 50,
) -> list[JobRecord]:
    """Most recently created jobs first, filtered by status, creation time, and the strategy and symbol of
    the stored payload (matched here, not in SQL: JSON paths differ on every backend)."""
    if status is not None and status not in STATUSES:
        raise InputError("status", status, f"must be one of {', '.join(STATUSES)}")
    q = sa.select(T).order_by(T.c.created_at.desc(), T.c.job_id)
    if status is not None:
        q = q.where(T.c.status == status)
    if since is not None:
        q = q.where(T.c.created_at >= since)
    out: list[JobRecord] = []
    offset, page = 0, 500
    while len(out) < limit:
        rows = conn.execute(q.limit(page).offset(offset)).mappings().all()
        for row in rows:
            record = _record(row)
            payload = record.payload or {}
            if strategy is not None and payload.get("strategy") != strategy:
                continue
            if symbol is not None and symbol not in (payload.get("symbols") or []):
                continue
            out.append(record)
        if len(rows) < page:
            break
        offset += page
    return out[:limit]

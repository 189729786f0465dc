"""The jobs table: the queue worker's record of every job it accepted, and who holds it.

A job id (a UUID) is the idempotency key: ``accept`` records a job once however often its message arrives.
A worker runs a job only while it holds the job's lease: ``claim`` takes it with one conditional UPDATE whose
row count decides (so two workers can never both own a job, on any backend), ``heartbeat`` renews it, and
``finish`` succeeds only for the owner. A lease that expired (its worker died) can be claimed again.
All times are timezone-aware UTC; the workers' clocks are assumed to be NTP-synchronized.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ludus.db.schema import jobs as T
from ludus.db.schema import utcnow
from ludus.errors import InputError, LudusError

ACCEPTED = "accepted"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
REJECTED = "rejected"
STATUSES = (ACCEPTED, RUNNING, SUCCEEDED, FAILED, REJECTED)
TERMINAL = (SUCCEEDED, FAILED, REJECTED)


class LeaseLostError(LudusError):
    """The caller does not own the job (any more): another worker claimed it, or it already finished."""


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


def accept(conn: Connection, job_id: object, payload: dict[str, Any], *,
           now: datetime | None = None) -> tuple[JobRecord, bool]:
    """Record a job once; returns (record, created). A known job id returns the stored record unchanged."""
    jid = normalize_job_id(job_id)
    now = now or utcnow()
    try:
        # Insert first (a write takes SQLite's write lock at once); the SAVEPOINT keeps a duplicate from
        # aborting the caller's transaction on PostgreSQL.
        with conn.begin_nested():
            conn.execute(sa.insert(T).values(job_id=jid, status=ACCEPTED, payload=payload, attempts=0,
                                             created_at=now, updated_at=now))
        created = True
    except sa.exc.IntegrityError:
        created = False
    record = get(conn, jid)
    assert record is not None
    return record, created


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
        .where(T.c.job_id == jid, T.c.status.in_((ACCEPTED, RUNNING)),
               sa.or_(T.c.lease_owner.is_(None), T.c.lease_expires_at.is_(None), T.c.lease_expires_at < now))
        .values(status=RUNNING, lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_s),
                attempts=T.c.attempts + 1, started_at=sa.func.coalesce(T.c.started_at, now), updated_at=now)
    )
    return conn.execute(stmt).rowcount == 1


def heartbeat(conn: Connection, job_id: object, owner: str, lease_s: float, *, now: datetime | None = None) -> bool:
    """Extend the owner's lease to ``now + lease_s``; False when ``owner`` no longer holds the job."""
    jid = normalize_job_id(job_id)
    now = now or utcnow()
    stmt = (sa.update(T).where(T.c.job_id == jid, T.c.status == RUNNING, T.c.lease_owner == owner)
            .values(lease_expires_at=now + timedelta(seconds=lease_s), updated_at=now))
    return conn.execute(stmt).rowcount == 1


def finish(conn: Connection, job_id: object, owner: str | None, status: str, result: dict[str, Any] | None, *,
           error: str | None = None, now: datetime | None = None) -> None:
    """Record the outcome and release the lease.

    Allowed for the lease owner of a running job, or (``owner`` None) for a job nobody claimed yet (a
    rejected message). Anything else raises LeaseLostError, which rolls back the caller's transaction, so
    results are never persisted by a worker that lost the job.
    """
    if status not in TERMINAL:
        raise ValueError(f"finish status must be one of {TERMINAL}, got {status!r}")
    jid = normalize_job_id(job_id)
    now = now or utcnow()
    if owner is None:
        who = sa.and_(T.c.status == ACCEPTED, T.c.lease_owner.is_(None))
    else:
        who = sa.and_(T.c.status == RUNNING, T.c.lease_owner == owner)
    stmt = (sa.update(T).where(T.c.job_id == jid, who)
            .values(status=status, result=result, error=error, finished_at=now, updated_at=now,
                    lease_owner=None, lease_expires_at=None))
    if conn.execute(stmt).rowcount != 1:
        current = get(conn, jid)
        state = "unknown job" if current is None else f"status {current.status}, lease owner {current.lease_owner}"
        raise LeaseLostError(f"job {jid} cannot be finished by {owner or 'a non-owner'}: {state}")


def release(conn: Connection, job_id: object, owner: str, *, now: datetime | None = None) -> bool:
    """Give the lease back without finishing (graceful shutdown): the job is claimable again at once."""
    jid = normalize_job_id(job_id)
    now = now or utcnow()
    stmt = (sa.update(T).where(T.c.job_id == jid, T.c.status == RUNNING, T.c.lease_owner == owner)
            .values(status=ACCEPTED, lease_owner=None, lease_expires_at=None, updated_at=now))
    return conn.execute(stmt).rowcount == 1


def get(conn: Connection, job_id: object) -> JobRecord | None:
    """The job's record, or None."""
    row = conn.execute(sa.select(T).where(T.c.job_id == normalize_job_id(job_id))).mappings().first()
    return _record(row) if row is not None else None


def expired_leases(conn: Connection, now: datetime | None = None) -> list[JobRecord]:
    """Running jobs whose lease ran out (their worker stopped heart-beating), oldest first."""
    now = now or utcnow()
    q = (sa.select(T).where(T.c.status == RUNNING, T.c.lease_expires_at < now)
         .order_by(T.c.lease_expires_at))
    return [_record(r) for r in conn.execute(q).mappings()]


def list_jobs(conn: Connection, status: str | None = None, limit: int = 50) -> list[JobRecord]:
    """Most recently created jobs first, optionally of one status."""
    q = sa.select(T).order_by(T.c.created_at.desc()).limit(limit)
    if status is not None:
        q = q.where(T.c.status == status)
    return [_record(r) for r in conn.execute(q).mappings()]


def _record(m) -> JobRecord:
    return JobRecord(**{c.name: m[c.name] for c in T.columns})


def find_jobs(conn: Connection, *, status: str | None = None, strategy: str | None = None,
              symbol: str | None = None, since: datetime | None = None, limit: int = 50) -> list[JobRecord]:
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

"""The transactional outbox: messages that must reach the broker because a transaction said so.

A job's outcome (its result, the final progress event, a dead letter) is written here in the same transaction
that finishes the job, so a worker dying between its commit and its publish loses nothing: whichever worker is
alive delivers the row later. Delivery is at least once: a row is claimed like a job lease (``claim``), handed
to the broker, and marked ``delivered`` only after the broker confirmed it; a deliverer that dies leaves its
claim to expire. Rows keep a stable ``message_id`` so a consumer can drop the rare duplicate.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ludus.db.schema import outbox as T
from ludus.db.schema import utcnow

RESULT = "result"
PROGRESS = "progress"
DEAD_LETTER = "dead_letter"
KINDS = (RESULT, PROGRESS, DEAD_LETTER)
ERROR_CHARS = 1000


@dataclass(frozen=True)
class OutboxMessage:
    """One row to deliver: ``kind`` says which exchange it goes to (events or dead letters)."""

    id: int
    job_id: str | None
    kind: str
    routing_key: str
    message_id: str
    body: bytes
    headers: dict[str, Any] | None
    attempts: int
    created_at: datetime
    delivered_at: datetime | None


def add(
    conn: Connection,
    kind: str,
    routing_key: str,
    body: bytes,
    *,
    message_id: str,
    job_id: str | None = None,
    headers: dict[str, Any] | None = None,
    claimed_by: str | None = None,
    claim_until: datetime | None = None,
    now: datetime | None = None,
) -> int:
    """Queue a message in the caller's transaction; returns its row id.

    ``claimed_by``/``claim_until``: the writer delivers it itself right after its commit; others wait until
    the claim expires (so a live writer and another worker do not both publish it)."""
    if kind not in KINDS:
        raise ValueError(f"outbox kind must be one of {KINDS}, got {kind!r}")
    now = now or utcnow()
    done = conn.execute(
        sa.insert(T).values(
            job_id=job_id,
            kind=kind,
            routing_key=routing_key,
            message_id=message_id,
            body=bytes(body),
            headers=headers or None,
            attempts=0,
            claimed_by=claimed_by,
            claim_expires_at=claim_until if claimed_by else None,
            created_at=now,
        )
    )
    pk = done.inserted_primary_key
    assert pk is not None
    return int(pk[0])


def claim(
    conn: Connection, owner: str, claim_s: float, *, limit: int = 50, now: datetime | None = None
) -> list[OutboxMessage]:
    """Take up to ``limit`` undelivered rows, oldest first: unclaimed ones, expired claims and our own."""
    now = now or utcnow()
    free = sa.and_(
        T.c.delivered_at.is_(None),
        sa.or_(T.c.claimed_by.is_(None), T.c.claimed_by == owner, T.c.claim_expires_at < now),
    )
    ids = [int(i) for i in conn.execute(sa.select(T.c.id).where(free).order_by(T.c.id).limit(limit)).scalars()]
    taken: list[int] = []
    for row_id in ids:
        # one conditional UPDATE per row: of two workers claiming the same row, exactly one gets rowcount 1
        stmt = (
            sa.update(T)
            .where(T.c.id == row_id, free)
            .values(claimed_by=owner, claim_expires_at=now + timedelta(seconds=claim_s), attempts=T.c.attempts + 1)
        )
        if conn.execute(stmt).rowcount == 1:
            taken.append(row_id)
    if not taken:
        return []
    rows = conn.execute(sa.select(T).where(T.c.id.in_(taken)).order_by(T.c.id)).mappings()
    return [_message(r) for r in rows]


def delivered(conn: Connection, row_id: int, owner: str, *, now: datetime | None = None) -> bool:
    """Mark a row delivered (the broker confirmed it); False when another deliverer took it over meanwhile."""
    now = now or utcnow()
    stmt = (
        sa.update(T)
        .where(T.c.id == row_id, T.c.delivered_at.is_(None), T.c.claimed_by == owner)
        .values(delivered_at=now, claim_expires_at=None, last_error=None)
    )
    return conn.execute(stmt).rowcount == 1


def undeliverable(
    conn: Connection, row_id: int, owner: str, error: str, *, retry_in_s: float, now: datetime | None = None
) -> None:
    """Record why a delivery failed and keep the claim for ``retry_in_s`` (the backoff before the next try)."""
    now = now or utcnow()
    conn.execute(
        sa.update(T)
        .where(T.c.id == row_id, T.c.claimed_by == owner, T.c.delivered_at.is_(None))
        .values(last_error=error[:ERROR_CHARS], claim_expires_at=now + timedelta(seconds=retry_in_s))
    )


def pending(conn: Connection) -> int:
    """Rows not delivered yet."""
    return int(conn.execute(sa.select(sa.func.count()).select_from(T).where(T.c.delivered_at.is_(None))).scalar_one())


def of_job(conn: Connection, job_id: str) -> list[OutboxMessage]:
    """Every row written for a job, oldest first."""
    return [_message(r) for r in conn.execute(sa.select(T).where(T.c.job_id == job_id).order_by(T.c.id)).mappings()]


def prune(conn: Connection, delivered_before: datetime) -> int:
    """Delete rows delivered before ``delivered_before``; returns how many."""
    return int(conn.execute(sa.delete(T).where(T.c.delivered_at < delivered_before)).rowcount or 0)


def _message(m: Any) -> OutboxMessage:
    return OutboxMessage(
        id=int(m["id"]),
        job_id=m["job_id"],
        kind=m["kind"],
        routing_key=m["routing_key"],
        message_id=m["message_id"],
        body=bytes(m["body"]),
        headers=m["headers"],
        attempts=int(m["attempts"]),
        created_at=m["created_at"],
        delivered_at=m["delivered_at"],
    )

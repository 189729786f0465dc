"""The scheduler's record of fired slots: a slot is claimed here before its job is published.

The primary key (schedule, slot time) decides: of several schedulers (or one restarted) exactly one inserts
a slot's row, and only that one publishes its job. A claim that never got published (its scheduler died,
or the broker was down) is taken over by a conditional UPDATE whose row count decides, and published again
under the same deterministic job id - the job id keeps a second publication from running twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ludus.db.schema import schedule_slots as T
from ludus.db.schema import utcnow


@dataclass(frozen=True)
class SlotRecord:
    schedule: str
    slot_at: datetime
    job_id: str | None
    claimed_by: str
    claimed_at: datetime
    published_at: datetime | None
    error: str | None


def claim(
    conn: Connection, schedule: str, slot_at: datetime, job_id: str | None, owner: str, *, now: datetime | None = None
) -> bool:
    """Insert the slot's row; True for exactly one claimer, False when it was claimed already."""
    try:
        # a SAVEPOINT keeps a duplicate key from aborting the caller's transaction on PostgreSQL
        with conn.begin_nested():
            conn.execute(
                sa.insert(T).values(
                    schedule=schedule, slot_at=slot_at, job_id=job_id, claimed_by=owner, claimed_at=now or utcnow()
                )
            )
        return True
    except sa.exc.IntegrityError:
        return False


def take_over(conn: Connection, record: SlotRecord, owner: str, *, now: datetime | None = None) -> bool:
    """Claim a stale, unpublished slot from whoever held it; True for exactly one of several callers."""
    stmt = (
        sa.update(T)
        .where(
            T.c.schedule == record.schedule,
            T.c.slot_at == record.slot_at,
            T.c.published_at.is_(None),
            T.c.error.is_(None),
            T.c.claimed_by == record.claimed_by,
            T.c.claimed_at == record.claimed_at,
        )
        .values(claimed_by=owner, claimed_at=now or utcnow())
    )
    return conn.execute(stmt).rowcount == 1


def mark_published(
    conn: Connection, schedule: str, slot_at: datetime, owner: str, *, now: datetime | None = None
) -> bool:
    """Record that the claimer published (or, for retention, ran) the slot."""
    stmt = (
        sa.update(T)
        .where(T.c.schedule == schedule, T.c.slot_at == slot_at, T.c.claimed_by == owner)
        .values(published_at=now or utcnow())
    )
    return conn.execute(stmt).rowcount == 1


def mark_failed(conn: Connection, schedule: str, slot_at: datetime, owner: str, error: str) -> bool:
    """Record why the slot's job was not published (a template the checks refused): it is not retried."""
    stmt = (
        sa.update(T)
        .where(T.c.schedule == schedule, T.c.slot_at == slot_at, T.c.claimed_by == owner)
        .values(error=error[:4000])
    )
    return conn.execute(stmt).rowcount == 1


def claimed_between(conn: Connection, schedule: str, start: datetime, end: datetime) -> set[datetime]:
    """Slot times of ``schedule`` in ``[start, end]`` that have a row (whatever became of them)."""
    q = sa.select(T.c.slot_at).where(T.c.schedule == schedule, T.c.slot_at >= start, T.c.slot_at <= end)
    return {r for (r,) in conn.execute(q)}


def stale_claims(conn: Connection, claimed_before: datetime) -> list[SlotRecord]:
    """Claims without a publication or an error, made before ``claimed_before`` (oldest first)."""
    q = (
        sa.select(T)
        .where(T.c.published_at.is_(None), T.c.error.is_(None), T.c.claimed_at < claimed_before)
        .order_by(T.c.slot_at)
    )
    return [SlotRecord(**dict(r)) for r in conn.execute(q).mappings()]


def recent(conn: Connection, schedule: str | None = None, limit: int = 20) -> list[SlotRecord]:
    """The latest slots (of one schedule, or all), newest first."""
    q = sa.select(T).order_by(T.c.slot_at.desc(), T.c.schedule).limit(limit)
    if schedule is not None:
        q = q.where(T.c.schedule == schedule)
    return [SlotRecord(**dict(r)) for r in conn.execute(q).mappings()]

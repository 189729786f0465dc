"""The model registry: every trained CPO model with its ONNX bytes; one active version per key.

Versions stay after retirement so an operator can roll back by activating an older one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ludus.db.schema import model_versions as T
from ludus.db.schema import utcnow
from ludus.errors import InputError
from ludus.vocabulary import MODEL_ACTIVE, MODEL_CANDIDATE, MODEL_RETIRED, MODEL_STATUSES

CANDIDATE = MODEL_CANDIDATE
ACTIVE = MODEL_ACTIVE
RETIRED = MODEL_RETIRED
STATUSES = MODEL_STATUSES


@dataclass(frozen=True)
class ModelVersion:
    strategy: str
    symbol: str
    interval: str
    job_id: str | None
    metrics: dict[str, Any] | None
    onnx: bytes | None
    status: str = CANDIDATE
    id: int | None = None
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)


def register(conn: Connection, version: ModelVersion) -> int:
    """Store a new version (as a candidate unless it says otherwise) and return its id."""
    _check_status(version.status)
    now = utcnow()
    values = {
        "strategy": version.strategy,
        "symbol": version.symbol,
        "interval": version.interval,
        "job_id": version.job_id,
        "metrics": version.metrics,
        "onnx": bytes(version.onnx) if version.onnx is not None else None,
        "status": CANDIDATE,
        "created_at": now,
        "updated_at": now,
    }
    pk = conn.execute(sa.insert(T).values(**values)).inserted_primary_key
    assert pk is not None
    new_id = pk[0]
    if version.status != CANDIDATE:
        set_status(conn, new_id, version.status)
    return int(new_id)


def set_status(conn: Connection, version_id: int, status: str) -> None:
    """Change a version's status; activating one retires the active version of the same strategy/symbol/interval.

    A unique filtered index also guarantees at most one active version per key against concurrent writers.
    """
    _check_status(status)
    current = get(conn, version_id, with_onnx=False)
    if current is None:
        raise InputError("model_version", version_id, "no such model version")
    now = utcnow()
    if status == ACTIVE:
        conn.execute(
            sa.update(T)
            .where(
                T.c.strategy == current.strategy,
                T.c.symbol == current.symbol,
                T.c.interval == current.interval,
                T.c.status == ACTIVE,
                T.c.id != version_id,
            )
            .values(status=RETIRED, updated_at=now)
        )
    conn.execute(sa.update(T).where(T.c.id == version_id).values(status=status, updated_at=now))


def active(conn: Connection, strategy: str, symbol: str, interval: str) -> ModelVersion | None:
    """The active version for a key (with its ONNX bytes), or None."""
    row = (
        conn.execute(
            sa.select(T).where(
                T.c.strategy == strategy, T.c.symbol == symbol, T.c.interval == interval, T.c.status == ACTIVE
            )
        )
        .mappings()
        .first()
    )
    return _version(row) if row is not None else None


def get(conn: Connection, version_id: int, *, with_onnx: bool = True) -> ModelVersion | None:
    """One version by id, or None."""
    cols = [c for c in T.columns if with_onnx or c.name != "onnx"]
    row = conn.execute(sa.select(*cols).where(T.c.id == version_id)).mappings().first()
    return _version(row) if row is not None else None


def list_versions(conn: Connection, strategy: str, symbol: str, interval: str) -> list[ModelVersion]:
    """All versions of a key, newest first, without ONNX bytes."""
    cols = [c for c in T.columns if c.name != "onnx"]
    q = (
        sa.select(*cols)
        .where(T.c.strategy == strategy, T.c.symbol == symbol, T.c.interval == interval)
        .order_by(T.c.id.desc())
    )
    return [_version(r) for r in conn.execute(q).mappings()]


def find_versions(
    conn: Connection,
    *,
    strategy: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
    status: str | None = None,
    limit: int = 100,
) -> list[ModelVersion]:
    """Versions of every key (or the keys given), newest first, without ONNX bytes."""
    if status is not None:
        _check_status(status)
    cols = [c for c in T.columns if c.name != "onnx"]
    q = sa.select(*cols).order_by(T.c.id.desc()).limit(limit)
    for column, value in (("strategy", strategy), ("symbol", symbol), ("interval", interval), ("status", status)):
        if value is not None:
            q = q.where(T.c[column] == value)
    return [_version(r) for r in conn.execute(q).mappings()]


def last_retired(conn: Connection, strategy: str, symbol: str, interval: str) -> ModelVersion | None:
    """The version retired last for a key (the one that was active before the current one), or None."""
    cols = [c for c in T.columns if c.name != "onnx"]
    q = (
        sa.select(*cols)
        .where(T.c.strategy == strategy, T.c.symbol == symbol, T.c.interval == interval, T.c.status == RETIRED)
        .order_by(T.c.updated_at.desc(), T.c.id.desc())
        .limit(1)
    )
    row = conn.execute(q).mappings().first()
    return _version(row) if row is not None else None


def inactive_before(conn: Connection, cutoff: datetime) -> list[ModelVersion]:
    """Versions that are not active and were last changed before ``cutoff`` (retention candidates)."""
    cols = [c for c in T.columns if c.name != "onnx"]
    q = sa.select(*cols).where(T.c.status != ACTIVE, T.c.updated_at < cutoff).order_by(T.c.id)
    return [_version(r) for r in conn.execute(q).mappings()]


def delete_versions(conn: Connection, version_ids: list[int]) -> int:
    """Delete versions by id, never an active one; returns how many were deleted."""
    if not version_ids:
        return 0
    stmt = sa.delete(T).where(T.c.id.in_([int(v) for v in version_ids]), T.c.status != ACTIVE)
    return int(conn.execute(stmt).rowcount or 0)


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise InputError("status", status, f"must be one of {', '.join(STATUSES)}")


def _version(m: Any) -> ModelVersion:
    onnx = m.get("onnx")
    return ModelVersion(
        strategy=m["strategy"],
        symbol=m["symbol"],
        interval=m["interval"],
        job_id=m["job_id"],
        metrics=m["metrics"],
        onnx=bytes(onnx) if onnx is not None else None,
        status=m["status"],
        id=m["id"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
    )

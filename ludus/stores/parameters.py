"""OptimizedParameters: the row per (strategy, symbol, interval, trading day) that Constellations trades with."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ludus.db.schema import optimized_parameters as T
from ludus.db.schema import utcnow

KEY = ("strategy", "symbol", "interval", "valid_for")
VALUE_FIELDS = (
    "parameters",
    "expected_metric",
    "baseline_parameters",
    "model_version",
    "job_id",
    "arm",
    "decision",
    "evidence_bars",
)


@dataclass(frozen=True)
class ParameterRow:
    """One published parameter set. ``expected_metric`` is the model's expected return for ``valid_for``;
    ``arm``, ``decision`` and ``evidence_bars`` say which arm's θ it is, whether the decision changed or kept
    the champion, and on how many out-of-sample bars it rests (None: no decision, e.g. a static search)."""

    strategy: str
    symbol: str
    interval: str
    valid_for: date
    parameters: dict[str, Any]
    expected_metric: float | None = None
    baseline_parameters: dict[str, Any] | None = None
    model_version: int | None = None
    job_id: str | None = None
    arm: str | None = None
    decision: str | None = None
    evidence_bars: int | None = None
    created_at: datetime | None = field(default=None, compare=False)
    updated_at: datetime | None = field(default=None, compare=False)


def upsert_parameters(conn: Connection, rows: list[ParameterRow]) -> int:
    """Insert or update each row by its key; running it again with the same rows changes nothing.

    Runs inside the caller's transaction. PostgreSQL and SQLite use ``INSERT ... ON CONFLICT DO UPDATE``;
    other backends (SQL Server) update first, insert when nothing matched, and on a unique violation (a
    concurrent writer inserted the key meanwhile) update again - the insert sits in a SAVEPOINT so the
    violation does not abort the caller's transaction.
    """
    now = utcnow()
    for row in rows:
        _check(row)
        if conn.dialect.name in ("postgresql", "sqlite"):
            _upsert_native(conn, row, now)
        else:
            _upsert_portable(conn, row, now)
    return len(rows)


def read_active(
    conn: Connection, strategy: str, symbol: str, interval: str, day: date | None = None
) -> ParameterRow | None:
    """The row valid for ``day`` (exactly that trading day), or the latest row when ``day`` is None."""
    q = sa.select(T).where(T.c.strategy == strategy, T.c.symbol == symbol, T.c.interval == interval)
    q = q.where(T.c.valid_for == day) if day is not None else q.order_by(T.c.valid_for.desc()).limit(1)
    row = conn.execute(q).mappings().first()
    return _row(row) if row is not None else None


def live_row(
    conn: Connection, strategy: str, symbol: str, interval: str, *, on_or_before: date, excluding_job: str | None = None
) -> ParameterRow | None:
    """What is live for a key on ``on_or_before``: its latest row up to that day, leaving out the rows of
    ``excluding_job`` (a rerun of a job must not find its own earlier result as the champion)."""
    q = sa.select(T).where(
        T.c.strategy == strategy, T.c.symbol == symbol, T.c.interval == interval, T.c.valid_for <= on_or_before
    )
    if excluding_job is not None:
        q = q.where(sa.or_(T.c.job_id.is_(None), T.c.job_id != excluding_job))
    row = conn.execute(q.order_by(T.c.valid_for.desc()).limit(1)).mappings().first()
    return _row(row) if row is not None else None


def history(conn: Connection, strategy: str, symbol: str, interval: str, limit: int = 30) -> list[ParameterRow]:
    """The most recent rows for a key, newest first."""
    q = (
        sa.select(T)
        .where(T.c.strategy == strategy, T.c.symbol == symbol, T.c.interval == interval)
        .order_by(T.c.valid_for.desc())
        .limit(limit)
    )
    return [_row(r) for r in conn.execute(q).mappings()]


def _values(row: ParameterRow) -> dict[str, Any]:
    return {f: getattr(row, f) for f in (*KEY, *VALUE_FIELDS)}


def _check(row: ParameterRow) -> None:
    if isinstance(row.valid_for, datetime) or not isinstance(row.valid_for, date):
        raise TypeError(f"valid_for must be a date (a trading day), got {row.valid_for!r}")


def _upsert_native(conn: Connection, row: ParameterRow, now: datetime) -> None:
    from sqlalchemy.dialects import postgresql, sqlite

    insert: Any = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    stmt = insert(T).values(**_values(row), created_at=now, updated_at=now)
    update = {f: stmt.excluded[f] for f in VALUE_FIELDS} | {"updated_at": stmt.excluded.updated_at}
    conn.execute(stmt.on_conflict_do_update(index_elements=list(KEY), set_=update))


def _upsert_portable(conn: Connection, row: ParameterRow, now: datetime) -> None:
    values = _values(row)
    if _update(conn, values, now):
        return
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(T).values(**values, created_at=now, updated_at=now))
    except sa.exc.IntegrityError:
        # Someone inserted the same key between our UPDATE and INSERT; theirs is there now, so update it.
        if not _update(conn, values, now):
            raise


def _update(conn: Connection, values: dict[str, Any], now: datetime) -> bool:
    where = [T.c[k] == values[k] for k in KEY]
    changes = {f: values[f] for f in VALUE_FIELDS} | {"updated_at": now}
    return conn.execute(sa.update(T).where(*where).values(**changes)).rowcount > 0


def _row(m: Any) -> ParameterRow:
    return ParameterRow(**{f: m[f] for f in (*KEY, *VALUE_FIELDS, "created_at", "updated_at")})

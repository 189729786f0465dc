"""The read side of what was published: a key's history with the decision behind each row, and what the
published rows reference (so retention never removes it).

Writes stay in :mod:`ludus.stores.parameters`; this module only reads OptimizedParameters and joins the jobs
table for the numbers of the decision that published each row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ludus.db.schema import jobs as jobs_table
from ludus.db.schema import optimized_parameters as T
from ludus.stores.parameters import ParameterRow, history


@dataclass(frozen=True)
class PublishedEntry:
    """One published row and, when its job's record is here, that job's decision for the row's symbol."""

    row: ParameterRow
    job_status: str | None
    decision: dict[str, Any] | None  # the job's SymbolResult for this symbol, as stored with its result


def published_history(
    conn: Connection, strategy: str, symbol: str, interval: str, limit: int = 30
) -> list[PublishedEntry]:
    """The rows of a key, newest trading day first, each with the decision of the job that published it."""
    rows = history(conn, strategy, symbol, interval, limit=limit)
    job_ids = sorted({r.job_id for r in rows if r.job_id})
    records: dict[str, tuple[str, Any]] = {}
    if job_ids:
        q = sa.select(jobs_table.c.job_id, jobs_table.c.status, jobs_table.c.result).where(
            jobs_table.c.job_id.in_(job_ids)
        )
        records = {r.job_id: (r.status, r.result) for r in conn.execute(q)}
    out = []
    for row in rows:
        status, result = records.get(row.job_id or "", (None, None))
        out.append(PublishedEntry(row=row, job_status=status, decision=_decision(result, symbol)))
    return out


@dataclass(frozen=True)
class Decision:
    """What one finished job decided for a key (whether or not a later job overwrote its row)."""

    job_id: str
    finished_at: Any
    decision: dict[str, Any]


def job_decisions(conn: Connection, strategy: str, symbol: str, interval: str, limit: int = 30) -> list[Decision]:
    """Every succeeded job's decision for the key, newest first (from the jobs table's stored results)."""
    from ludus.stores import jobs

    out = []
    for record in jobs.find_jobs(conn, status=jobs.SUCCEEDED, strategy=strategy, symbol=symbol, limit=limit):
        if (record.payload or {}).get("interval", "1d") != interval:
            continue
        decision = _decision(record.result, symbol)
        if decision is not None:
            out.append(Decision(record.job_id, record.finished_at, decision))
    return out


def published_keys(conn: Connection, limit: int = 200) -> list[tuple[str, str, str]]:
    """Every (strategy, symbol, interval) with a published row, the key published for most recently first."""
    q = (
        sa.select(T.c.strategy, T.c.symbol, T.c.interval, sa.func.max(T.c.updated_at).label("last"))
        .group_by(T.c.strategy, T.c.symbol, T.c.interval)
        .order_by(sa.desc("last"), T.c.strategy, T.c.symbol, T.c.interval)
        .limit(limit)
    )
    return [(r.strategy, r.symbol, r.interval) for r in conn.execute(q)]


def referenced_model_versions(conn: Connection) -> set[int]:
    """Every model version a published row names (retention keeps them)."""
    q = sa.select(T.c.model_version).where(T.c.model_version.is_not(None)).distinct()
    return {int(v) for (v,) in conn.execute(q)}


def live_job_ids(conn: Connection) -> set[str]:
    """The jobs that published the latest row of each key (what Constellations trades now)."""
    latest = (
        sa.select(T.c.strategy, T.c.symbol, T.c.interval, sa.func.max(T.c.valid_for).label("day"))
        .group_by(T.c.strategy, T.c.symbol, T.c.interval)
        .subquery()
    )
    q = (
        sa.select(T.c.job_id)
        .join(
            latest,
            sa.and_(
                T.c.strategy == latest.c.strategy,
                T.c.symbol == latest.c.symbol,
                T.c.interval == latest.c.interval,
                T.c.valid_for == latest.c.day,
            ),
        )
        .where(T.c.job_id.is_not(None))
    )
    return {str(j) for (j,) in conn.execute(q)}


def _decision(result: Any, symbol: str) -> dict[str, Any] | None:
    if not isinstance(result, dict):
        return None
    for entry in result.get("symbols") or []:
        if isinstance(entry, dict) and entry.get("symbol") == symbol:
            return entry
    return None

"""The ledger of configurations tried on each (strategy, symbol, interval): what the decision rule deflates by.

One row per job and key (candidates, model-search trials, trials of the unconditional search, challengers
judged); rerunning a job replaces its own row, so a redelivery never counts twice. The totals survive
restarts and add up every job ever run on the key.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ludus.contracts.results import ConfigurationCount
from ludus.db.schema import decision_ledger as T
from ludus.stores.upsert import upsert_row

COUNTS = ("candidates", "model_trials", "baseline_trials", "challengers")


@dataclass(frozen=True)
class LedgerEntry:
    """What one job tried on one key."""

    strategy: str
    symbol: str
    interval: str
    job_id: str
    candidates: int
    model_trials: int
    baseline_trials: int
    challengers: int


def record(conn: Connection, entry: LedgerEntry) -> None:
    """Store (or replace) the job's row for its key, inside the caller's transaction."""
    for name in COUNTS:
        if getattr(entry, name) < 0:
            raise ValueError(f"{name}={getattr(entry, name)}: must be >= 0")
    key = {"strategy": entry.strategy, "symbol": entry.symbol, "interval": entry.interval, "job_id": entry.job_id}
    upsert_row(conn, T, key, {name: int(getattr(entry, name)) for name in COUNTS})


def totals(
    conn: Connection, strategy: str, symbol: str, interval: str, *, excluding_job: str | None = None
) -> ConfigurationCount:
    """Sums over every job of the key (but ``excluding_job``), and the number of those jobs."""
    q = sa.select(*(sa.func.coalesce(sa.func.sum(T.c[name]), 0) for name in COUNTS), sa.func.count()).where(
        T.c.strategy == strategy, T.c.symbol == symbol, T.c.interval == interval
    )
    if excluding_job is not None:
        q = q.where(T.c.job_id != excluding_job)
    row = conn.execute(q).one()
    return ConfigurationCount(**{name: int(row[i]) for i, name in enumerate(COUNTS)}, jobs=int(row[-1]))


def plus(count: ConfigurationCount, entry: LedgerEntry) -> ConfigurationCount:
    """``count`` with one more job's entry added."""
    return ConfigurationCount(
        **{name: getattr(count, name) + getattr(entry, name) for name in COUNTS}, jobs=count.jobs + 1
    )


__all__ = ["COUNTS", "LedgerEntry", "plus", "record", "totals"]

"""The out-of-sample evidence of each decision, by (job id, symbol): what a report plots later."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ludus.contracts.evidence import DecisionEvidence
from ludus.db.schema import decision_evidence as T
from ludus.stores.upsert import upsert_row


def save(conn: Connection, evidence: DecisionEvidence) -> None:
    """Store (or replace) the evidence of ``evidence.job_id`` for its symbol."""
    key = {"job_id": str(evidence.job_id), "symbol": evidence.symbol}
    upsert_row(
        conn, T, key, {"strategy": evidence.strategy, "interval": evidence.interval, "evidence": evidence.to_dict()}
    )


def load(conn: Connection, job_id: str, symbol: str) -> DecisionEvidence | None:
    """The evidence of a job's decision for ``symbol``, or None."""
    row = conn.execute(sa.select(T.c.evidence).where(T.c.job_id == str(job_id), T.c.symbol == symbol)).first()
    return DecisionEvidence.model_validate(row[0]) if row is not None else None


__all__ = ["load", "save"]

"""Decisions: the evidence behind each OptimizedParameters row, the ledger of configurations tried per key,
and the per-arm out-of-sample paths of each decision.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# Frozen copies of the widths in ludus.db.schema at this revision.
STRATEGY, SYMBOL, INTERVAL, JOB_ID, ARM, DECISION = 64, 16, 8, 36, 32, 16
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("OptimizedParameters") as batch:
        batch.add_column(sa.Column("arm", sa.String(ARM), nullable=True))
        batch.add_column(sa.Column("decision", sa.String(DECISION), nullable=True))
        batch.add_column(sa.Column("evidence_bars", sa.Integer, nullable=True))
    op.create_table(
        "ludus_decision_ledger",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("strategy", sa.String(STRATEGY), nullable=False),
        sa.Column("symbol", sa.String(SYMBOL), nullable=False),
        sa.Column("interval", sa.String(INTERVAL), nullable=False),
        sa.Column("job_id", sa.String(JOB_ID), nullable=False),
        sa.Column("candidates", sa.Integer, nullable=False),
        sa.Column("model_trials", sa.Integer, nullable=False),
        sa.Column("baseline_trials", sa.Integer, nullable=False),
        sa.Column("challengers", sa.Integer, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ludus_decision_ledger"),
        sa.UniqueConstraint(
            "strategy", "symbol", "interval", "job_id", name="uq_ludus_decision_ledger_strategy_symbol_interval_job_id"
        ),
    )
    op.create_table(
        "ludus_decision_evidence",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(JOB_ID), nullable=False),
        sa.Column("symbol", sa.String(SYMBOL), nullable=False),
        sa.Column("strategy", sa.String(STRATEGY), nullable=False),
        sa.Column("interval", sa.String(INTERVAL), nullable=False),
        sa.Column("evidence", sa.JSON, nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ludus_decision_evidence"),
        sa.UniqueConstraint("job_id", "symbol", name="uq_ludus_decision_evidence_job_id_symbol"),
    )


def downgrade() -> None:
    op.drop_table("ludus_decision_evidence")
    op.drop_table("ludus_decision_ledger")
    with op.batch_alter_table("OptimizedParameters") as batch:
        batch.drop_column("evidence_bars")
        batch.drop_column("decision")
        batch.drop_column("arm")

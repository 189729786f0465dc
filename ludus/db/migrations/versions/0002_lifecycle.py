"""Lifecycle: the audit of model activations and rollbacks, and the claimed slots of the scheduler.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Frozen copies of the widths in ludus.db.schema at this revision.
STRATEGY, SYMBOL, INTERVAL, JOB_ID, OWNER, ACTION, SCHEDULE = 64, 16, 8, 36, 200, 16, 100
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ludus_model_changes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("strategy", sa.String(STRATEGY), nullable=False),
        sa.Column("symbol", sa.String(SYMBOL), nullable=False),
        sa.Column("interval", sa.String(INTERVAL), nullable=False),
        sa.Column("action", sa.String(ACTION), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("valid_for", sa.Date, nullable=True),
        sa.Column("previous_parameters", sa.JSON, nullable=True),
        sa.Column("parameters", sa.JSON, nullable=True),
        sa.Column("actor", sa.String(OWNER), nullable=False),
        sa.Column("reason", sa.UnicodeText, nullable=False),
        sa.Column("at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ludus_model_changes"),
    )
    op.create_index(
        "ix_ludus_model_changes_strategy_symbol_interval_at",
        "ludus_model_changes",
        ["strategy", "symbol", "interval", "at"],
    )
    op.create_table(
        "ludus_schedule_slots",
        sa.Column("schedule", sa.String(SCHEDULE), nullable=False),
        sa.Column("slot_at", UTC, nullable=False),
        sa.Column("job_id", sa.String(JOB_ID), nullable=True),
        sa.Column("claimed_by", sa.String(OWNER), nullable=False),
        sa.Column("claimed_at", UTC, nullable=False),
        sa.Column("published_at", UTC, nullable=True),
        sa.Column("error", sa.UnicodeText, nullable=True),
        sa.PrimaryKeyConstraint("schedule", "slot_at", name="pk_ludus_schedule_slots"),
    )


def downgrade() -> None:
    op.drop_table("ludus_schedule_slots")
    op.drop_index("ix_ludus_model_changes_strategy_symbol_interval_at", table_name="ludus_model_changes")
    op.drop_table("ludus_model_changes")

"""Initial schema: the Prices schema, OptimizedParameters, jobs, model registry.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# Frozen copies of the widths in ludus.db.schema at this revision (a migration never follows later edits).
STRATEGY, SYMBOL, INTERVAL, JOB_ID, STATUS, OWNER = 64, 16, 8, 36, 16, 200
UTC = sa.DateTime(timezone=True)


def _create_prices_schema() -> None:
    # SQLite attaches a file named Prices on connect (ludus.db.engine); the servers get a real schema.
    dialect = op.get_context().dialect.name
    if dialect == "postgresql":
        op.execute('CREATE SCHEMA IF NOT EXISTS "Prices"')
    elif dialect == "mssql":
        op.execute("IF SCHEMA_ID(N'Prices') IS NULL EXEC(N'CREATE SCHEMA [Prices]')")


def upgrade() -> None:
    _create_prices_schema()
    op.create_table(
        "OptimizedParameters",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("strategy", sa.String(STRATEGY), nullable=False),
        sa.Column("symbol", sa.String(SYMBOL), nullable=False),
        sa.Column("interval", sa.String(INTERVAL), nullable=False),
        sa.Column("valid_for", sa.Date, nullable=False),
        sa.Column("parameters", sa.JSON, nullable=False),
        sa.Column("expected_metric", sa.Float, nullable=True),
        sa.Column("baseline_parameters", sa.JSON, nullable=True),
        sa.Column("model_version", sa.Integer, nullable=True),
        sa.Column("job_id", sa.String(JOB_ID), nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_OptimizedParameters"),
        sa.UniqueConstraint(
            "strategy",
            "symbol",
            "interval",
            "valid_for",
            name="uq_OptimizedParameters_strategy_symbol_interval_valid_for",
        ),
    )
    op.create_table(
        "ludus_jobs",
        sa.Column("job_id", sa.String(JOB_ID), nullable=False),
        sa.Column("status", sa.String(STATUS), nullable=False),
        sa.Column("payload", sa.JSON, nullable=False),
        sa.Column("result", sa.JSON, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("lease_owner", sa.String(OWNER), nullable=True),
        sa.Column("lease_expires_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.Column("started_at", UTC, nullable=True),
        sa.Column("finished_at", UTC, nullable=True),
        sa.Column("error", sa.UnicodeText, nullable=True),
        sa.PrimaryKeyConstraint("job_id", name="pk_ludus_jobs"),
    )
    op.create_index("ix_ludus_jobs_status_lease_expires_at", "ludus_jobs", ["status", "lease_expires_at"])
    op.create_table(
        "ludus_model_versions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("strategy", sa.String(STRATEGY), nullable=False),
        sa.Column("symbol", sa.String(SYMBOL), nullable=False),
        sa.Column("interval", sa.String(INTERVAL), nullable=False),
        sa.Column("job_id", sa.String(JOB_ID), nullable=True),
        sa.Column("status", sa.String(STATUS), nullable=False),
        sa.Column("metrics", sa.JSON, nullable=True),
        sa.Column("onnx", sa.LargeBinary, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ludus_model_versions"),
    )
    op.create_index(
        "ix_ludus_model_versions_strategy_symbol_interval_status",
        "ludus_model_versions",
        ["strategy", "symbol", "interval", "status"],
    )
    active = sa.text("status = 'active'")
    op.create_index(
        "uq_ludus_model_versions_active",
        "ludus_model_versions",
        ["strategy", "symbol", "interval"],
        unique=True,
        postgresql_where=active,
        sqlite_where=active,
        mssql_where=active,
    )


def downgrade() -> None:
    # The Prices schema stays: on a shared server it holds Delphi's data, not ours.
    op.drop_index("uq_ludus_model_versions_active", table_name="ludus_model_versions")
    op.drop_index("ix_ludus_model_versions_strategy_symbol_interval_status", table_name="ludus_model_versions")
    op.drop_table("ludus_model_versions")
    op.drop_index("ix_ludus_jobs_status_lease_expires_at", table_name="ludus_jobs")
    op.drop_table("ludus_jobs")
    op.drop_table("OptimizedParameters")

"""The result outbox and the payload hash: results survive a worker dying after its commit; a known job id
with another payload is refused; a dead-letter replay reopens a rejected job once.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# Frozen copies of the widths in ludus.db.schema at this revision.
JOB_ID, STATUS, OWNER, HASH, ROUTING_KEY, MESSAGE_ID = 36, 16, 200, 64, 255, 200
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    # batch mode: SQLite cannot ALTER TABLE ADD COLUMN with every constraint; the batch copies the table
    with op.batch_alter_table("ludus_jobs") as batch:
        batch.add_column(sa.Column("payload_hash", sa.String(HASH), nullable=True))
        batch.add_column(sa.Column("replays", sa.Integer, nullable=False, server_default=sa.text("0")))
    op.create_table(
        "ludus_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.String(JOB_ID), nullable=True),
        sa.Column("kind", sa.String(STATUS), nullable=False),
        sa.Column("routing_key", sa.String(ROUTING_KEY), nullable=False),
        sa.Column("message_id", sa.String(MESSAGE_ID), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.JSON, nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
        sa.Column("claimed_by", sa.String(OWNER), nullable=True),
        sa.Column("claim_expires_at", UTC, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("delivered_at", UTC, nullable=True),
        sa.Column("last_error", sa.UnicodeText, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_ludus_outbox"),
    )
    op.create_index("ix_ludus_outbox_delivered_at_id", "ludus_outbox", ["delivered_at", "id"])
    op.create_index("ix_ludus_outbox_job_id", "ludus_outbox", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_ludus_outbox_job_id", table_name="ludus_outbox")
    op.drop_index("ix_ludus_outbox_delivered_at_id", table_name="ludus_outbox")
    op.drop_table("ludus_outbox")
    with op.batch_alter_table("ludus_jobs") as batch:
        batch.drop_column("replays")
        batch.drop_column("payload_hash")

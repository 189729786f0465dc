"""Table definitions: the app tables (managed by Alembic) and Delphi's per-symbol price tables.

Types are portable: ``sa.JSON`` (NVARCHAR(max) on SQL Server, JSON on PostgreSQL, TEXT on SQLite),
``sa.LargeBinary`` (VARBINARY(max) / BYTEA / BLOB), bounded ``sa.String`` for keys. Every app timestamp is
timezone-aware UTC (:class:`UTCDateTime`); price timestamps are naive UTC, as Delphi stores them.
"""

from __future__ import annotations

import re
import threading
from datetime import datetime, timezone

import sqlalchemy as sa
from sqlalchemy.dialects import mssql

from ludus.constants import (
    EVIDENCE_TABLE,
    JOBS_TABLE,
    LEDGER_TABLE,
    MODEL_CHANGES_TABLE,
    MODELS_TABLE,
    OPTIMIZED_PARAMETERS_TABLE,
    OUTBOX_TABLE,
    PRICE_COLUMNS,
    PRICES_SCHEMA,
    SCHEDULE_SLOTS_TABLE,
)
from ludus.errors import InputError
from ludus.vocabulary import MODEL_ACTIVE

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Key column widths, shared with the migrations.
STRATEGY_LEN = 64
SYMBOL_LEN = 16
INTERVAL_LEN = 8
JOB_ID_LEN = 36  # canonical UUID text
STATUS_LEN = 16
OWNER_LEN = 200
ARM_LEN = 32
DECISION_LEN = 16
HASH_LEN = 64  # sha256, hex
ROUTING_KEY_LEN = 255  # AMQP shortstr
MESSAGE_ID_LEN = 200
ACTION_LEN = 16
SCHEDULE_NAME_LEN = 100


class UTCDateTime(sa.TypeDecorator):
    """Timezone-aware UTC datetimes in and out, on every backend.

    PostgreSQL stores TIMESTAMPTZ and SQL Server DATETIMEOFFSET; SQLite has no zone support, so values are
    stored as naive UTC text and given back their UTC zone when read. Naive input is rejected: a naive
    datetime's zone is a guess.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


def utcnow() -> datetime:
    """Now, timezone-aware UTC."""
    return datetime.now(timezone.utc)


metadata = sa.MetaData(naming_convention=NAMING)

optimized_parameters = sa.Table(
    OPTIMIZED_PARAMETERS_TABLE,
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("strategy", sa.String(STRATEGY_LEN), nullable=False),
    sa.Column("symbol", sa.String(SYMBOL_LEN), nullable=False),
    sa.Column("interval", sa.String(INTERVAL_LEN), nullable=False),
    sa.Column("valid_for", sa.Date, nullable=False),
    sa.Column("parameters", sa.JSON, nullable=False),
    sa.Column("expected_metric", sa.Float, nullable=True),
    sa.Column("baseline_parameters", sa.JSON, nullable=True),
    sa.Column("model_version", sa.Integer, nullable=True),
    sa.Column("job_id", sa.String(JOB_ID_LEN), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    # the decision behind the row: which arm's θ it carries, changed/kept, and its out-of-sample bars (a row is
    # only replaced by a decision resting on at least as many)
    sa.Column("arm", sa.String(ARM_LEN), nullable=True),
    sa.Column("decision", sa.String(DECISION_LEN), nullable=True),
    sa.Column("evidence_bars", sa.Integer, nullable=True),
    sa.UniqueConstraint("strategy", "symbol", "interval", "valid_for"),
)

jobs = sa.Table(
    JOBS_TABLE,
    metadata,
    sa.Column("job_id", sa.String(JOB_ID_LEN), primary_key=True),
    sa.Column("status", sa.String(STATUS_LEN), nullable=False),
    sa.Column("payload", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("lease_owner", sa.String(OWNER_LEN), nullable=True),
    sa.Column("lease_expires_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("error", sa.UnicodeText, nullable=True),
    # sha256 of the canonical payload: a known job id arriving with another payload is refused
    sa.Column("payload_hash", sa.String(HASH_LEN), nullable=True),
    # dead-letter replays this job was reopened for (a replayed message re-runs a rejected/failed job once)
    sa.Column("replays", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Index(None, "status", "lease_expires_at"),
)

# The transactional outbox: messages written in the same transaction as the job outcome they announce
# (the result, the final progress event, a dead letter) and delivered by whichever worker is alive until the
# broker confirmed them. ``claimed_by``/``claim_expires_at`` work like a job lease: one deliverer at a time.
outbox = sa.Table(
    OUTBOX_TABLE,
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(JOB_ID_LEN), nullable=True),
    sa.Column("kind", sa.String(STATUS_LEN), nullable=False),
    sa.Column("routing_key", sa.String(ROUTING_KEY_LEN), nullable=False),
    sa.Column("message_id", sa.String(MESSAGE_ID_LEN), nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("headers", sa.JSON, nullable=True),
    sa.Column("attempts", sa.Integer, nullable=False, server_default=sa.text("0")),
    sa.Column("claimed_by", sa.String(OWNER_LEN), nullable=True),
    sa.Column("claim_expires_at", UTCDateTime, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Column("last_error", sa.UnicodeText, nullable=True),
    sa.Index(None, "delivered_at", "id"),
    sa.Index(None, "job_id"),
)

model_versions = sa.Table(
    MODELS_TABLE,
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("strategy", sa.String(STRATEGY_LEN), nullable=False),
    sa.Column("symbol", sa.String(SYMBOL_LEN), nullable=False),
    sa.Column("interval", sa.String(INTERVAL_LEN), nullable=False),
    sa.Column("job_id", sa.String(JOB_ID_LEN), nullable=True),
    sa.Column("status", sa.String(STATUS_LEN), nullable=False),
    sa.Column("metrics", sa.JSON, nullable=True),
    sa.Column("onnx", sa.LargeBinary, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index(None, "strategy", "symbol", "interval", "status"),
)
# Configurations tried per key and job (candidates, model trials, baseline trials, challengers): the decision
# rule's deflation sums them over every job of the key. One row per job: rerunning a job replaces its row.
decision_ledger = sa.Table(
    LEDGER_TABLE,
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("strategy", sa.String(STRATEGY_LEN), nullable=False),
    sa.Column("symbol", sa.String(SYMBOL_LEN), nullable=False),
    sa.Column("interval", sa.String(INTERVAL_LEN), nullable=False),
    sa.Column("job_id", sa.String(JOB_ID_LEN), nullable=False),
    sa.Column("candidates", sa.Integer, nullable=False),
    sa.Column("model_trials", sa.Integer, nullable=False),
    sa.Column("baseline_trials", sa.Integer, nullable=False),
    sa.Column("challengers", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("strategy", "symbol", "interval", "job_id"),
)

# The per-arm out-of-sample paths of each decision (ludus.contracts.evidence.DecisionEvidence as JSON).
decision_evidence = sa.Table(
    EVIDENCE_TABLE,
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(JOB_ID_LEN), nullable=False),
    sa.Column("symbol", sa.String(SYMBOL_LEN), nullable=False),
    sa.Column("strategy", sa.String(STRATEGY_LEN), nullable=False),
    sa.Column("interval", sa.String(INTERVAL_LEN), nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("job_id", "symbol"),
)

# At most one active version per key, enforced by the database too (a filtered unique index on every backend).
ACTIVE_MODEL_INDEX = "uq_ludus_model_versions_active"
_active_where = model_versions.c.status == MODEL_ACTIVE
sa.Index(
    ACTIVE_MODEL_INDEX,
    model_versions.c.strategy,
    model_versions.c.symbol,
    model_versions.c.interval,
    unique=True,
    postgresql_where=_active_where,
    sqlite_where=_active_where,
    mssql_where=_active_where,
)

# The audit of what is live: every activation and rollback of a model version, with who, when and why, and
# the published parameters before and after (revision 0004).
model_changes = sa.Table(
    MODEL_CHANGES_TABLE,
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("strategy", sa.String(STRATEGY_LEN), nullable=False),
    sa.Column("symbol", sa.String(SYMBOL_LEN), nullable=False),
    sa.Column("interval", sa.String(INTERVAL_LEN), nullable=False),
    sa.Column("action", sa.String(ACTION_LEN), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("valid_for", sa.Date, nullable=True),
    sa.Column("previous_parameters", sa.JSON, nullable=True),
    sa.Column("parameters", sa.JSON, nullable=True),
    sa.Column("actor", sa.String(OWNER_LEN), nullable=False),
    sa.Column("reason", sa.UnicodeText, nullable=False),
    sa.Column("at", UTCDateTime, nullable=False),
    sa.Index(None, "strategy", "symbol", "interval", "at"),
)

# One row per schedule slot that fired, inserted (claimed) BEFORE the job is published: the primary key
# decides which of several schedulers publishes a slot, and a restarted one sees what already fired.
schedule_slots = sa.Table(
    SCHEDULE_SLOTS_TABLE,
    metadata,
    sa.Column("schedule", sa.String(SCHEDULE_NAME_LEN), primary_key=True),
    sa.Column("slot_at", UTCDateTime, primary_key=True),
    sa.Column("job_id", sa.String(JOB_ID_LEN), nullable=True),
    sa.Column("claimed_by", sa.String(OWNER_LEN), nullable=False),
    sa.Column("claimed_at", UTCDateTime, nullable=False),
    sa.Column("published_at", UTCDateTime, nullable=True),
    sa.Column("error", sa.UnicodeText, nullable=True),
)


# --- price tables (Delphi's layout; created on demand, not by Alembic) ----------------------------------

# The same rule as ludus.data.symbols (symbol pattern "_" interval pattern), restated here because db sits
# below data; a test keeps the two in agreement. It is the last check before a name reaches SQL.
PRICE_TABLE_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{0,15}_[1-9][0-9]{0,2}[mhdw]$")

prices_metadata = sa.MetaData()
_price_lock = threading.Lock()

# Delphi's SQL Server tables use DATETIME2; elsewhere a plain naive timestamp.
_PRICE_TIMESTAMP = sa.DateTime().with_variant(mssql.DATETIME2(), "mssql")


def price_table(symbol: str, interval: str) -> sa.Table:
    """The Table ``Prices.{SYMBOL}_{INTERVAL}``.

    Pass names normalized by :mod:`ludus.data.symbols` (upper-case symbol, lower-case interval); anything
    else is refused here with InputError before a table name exists.
    """
    if not isinstance(symbol, str) or not isinstance(interval, str):
        raise InputError("symbol", f"{symbol!r}/{interval!r}", "symbol and interval must be strings")
    name = f"{symbol}_{interval}"
    if not PRICE_TABLE_PATTERN.fullmatch(name) or "_" in symbol:
        raise InputError("symbol", name, f"price table name must match {PRICE_TABLE_PATTERN.pattern}")
    key = f"{PRICES_SCHEMA}.{name}"
    with _price_lock:
        table = prices_metadata.tables.get(key)
        if table is None:
            ts, op, hi, lo, cl, vol = PRICE_COLUMNS
            table = sa.Table(
                name,
                prices_metadata,
                sa.Column(ts, _PRICE_TIMESTAMP, primary_key=True, autoincrement=False),
                sa.Column(op, sa.Float, nullable=False),
                sa.Column(hi, sa.Float, nullable=False),
                sa.Column(lo, sa.Float, nullable=False),
                sa.Column(cl, sa.Float, nullable=False),
                sa.Column(vol, sa.Float, nullable=False),
                schema=PRICES_SCHEMA,
            )
        return table

"""SQL Server: DDL and queries compiled with SQLAlchemy's mssql dialect, and the pyodbc path as far as it goes here.

No SQL Server runs in this environment; what can be checked without one is checked: the exact DDL and SELECT
text, the ODBC connection string, the migration script, and engine creation through pyodbc.
"""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mssql
from sqlalchemy.schema import CreateIndex, CreateTable

from ludus.data.prices import select_window
from ludus.db import migrate
from ludus.db.engine import make_engine
from ludus.db.schema import metadata, price_table
from ludus.errors import InputError

MSSQL_URL = (
    "mssql+pyodbc://ludus:secret@delphi-sql:1433/Delphi?driver=ODBC+Driver+18+for+SQL+Server&TrustServerCertificate=yes"
)


@pytest.fixture
def dialect() -> sa.Dialect:
    return migrate.modernize_mssql_dialect(mssql.pyodbc.dialect())


def _ddl(table: sa.Table, dialect: sa.Dialect) -> str:
    return " ".join(str(CreateTable(table).compile(dialect=dialect)).split())


def test_price_table_ddl_uses_bracketed_prices_schema(dialect: sa.Dialect) -> None:
    ddl = _ddl(price_table("SPX", "1d"), dialect)
    assert ddl.startswith("CREATE TABLE [Prices].[SPX_1d] (")
    for col in (
        "[Timestamp] DATETIME2 NOT NULL",
        "[Open] FLOAT NOT NULL",
        "[High] FLOAT NOT NULL",
        "[Low] FLOAT NOT NULL",
        "[Close] FLOAT NOT NULL",
        "[Volume] FLOAT NOT NULL",
        "PRIMARY KEY ([Timestamp])",
    ):
        assert col in ddl


def test_price_select_compiles_to_bracketed_names(dialect: sa.Dialect) -> None:
    sql = str(
        select_window(price_table("SPX", "1d"), start=datetime(2020, 1, 1), last_n=5).compile(
            dialect=dialect, compile_kwargs={"literal_binds": True}
        )
    )
    sql = " ".join(sql.split())
    assert sql.startswith("SELECT TOP 5 [Prices].[SPX_1d].[Timestamp], [Prices].[SPX_1d].[Open]")
    assert "FROM [Prices].[SPX_1d] WHERE [Prices].[SPX_1d].[Timestamp] >= '2020-01-01 00:00:00'" in sql
    assert sql.endswith("ORDER BY [Prices].[SPX_1d].[Timestamp] DESC")


def test_app_tables_ddl_uses_portable_types(dialect: sa.Dialect) -> None:
    ddl = {t.name: _ddl(t, dialect) for t in metadata.sorted_tables}
    op = ddl["OptimizedParameters"]
    assert op.startswith("CREATE TABLE [OptimizedParameters]")
    for col in (
        "id INTEGER NOT NULL IDENTITY",
        "valid_for DATE NOT NULL",
        "parameters NVARCHAR(max) NOT NULL",
        "baseline_parameters NVARCHAR(max) NULL",
        "expected_metric FLOAT NULL",
        "created_at DATETIMEOFFSET NOT NULL",
        "UNIQUE (strategy, symbol, interval, valid_for)",
    ):
        assert col in op
    jobs = ddl["ludus_jobs"]
    for col in (
        "job_id VARCHAR(36) NOT NULL",
        "payload NVARCHAR(max) NOT NULL",
        "attempts INTEGER NOT NULL DEFAULT 0",
        "lease_expires_at DATETIMEOFFSET NULL",
        "error NVARCHAR(max) NULL",
        "PRIMARY KEY (job_id)",
    ):
        assert col in jobs
    models = ddl["ludus_model_versions"]
    assert "onnx VARBINARY(max) NULL" in models and "metrics NVARCHAR(max) NULL" in models
    indexes = [str(CreateIndex(ix).compile(dialect=dialect)) for t in metadata.sorted_tables for ix in t.indexes]
    assert (
        "CREATE UNIQUE INDEX uq_ludus_model_versions_active ON ludus_model_versions "
        "(strategy, symbol, interval) WHERE status = 'active'"
    ) in indexes


def test_offline_migration_script_for_sql_server() -> None:
    script = migrate.sql_script(MSSQL_URL)
    assert "IF SCHEMA_ID(N'Prices') IS NULL EXEC(N'CREATE SCHEMA [Prices]')" in script
    assert "CREATE TABLE [OptimizedParameters]" in script and "CREATE TABLE ludus_jobs" in script
    assert "CREATE TABLE ludus_alembic_version" in script
    assert "INSERT INTO ludus_alembic_version (version_num)" in script and "VALUES ('0001')" in script
    assert "IMAGE" not in script and " TEXT" not in script  # types of a current server, not pre-2008 ones


def test_pyodbc_connection_string() -> None:
    args, _ = mssql.pyodbc.dialect().create_connect_args(sa.make_url(MSSQL_URL))
    conn_str = args[0]
    for part in (
        "DRIVER={ODBC Driver 18 for SQL Server}",
        "Server=delphi-sql,1433",
        "Database=Delphi",
        "UID=ludus",
        "PWD=secret",
        "TrustServerCertificate=yes",
    ):
        assert part in conn_str


def test_make_engine_through_pyodbc() -> None:
    """With unixODBC present the engine builds (fast_executemany on); without it a one-line InputError says why."""
    try:
        import pyodbc  # noqa: F401
    except ImportError as exc:
        # This environment: pyodbc is installed but libodbc.so.2 (unixODBC) is not.
        assert "libodbc" in str(exc)
        with pytest.raises(InputError, match="unixODBC") as info:
            make_engine(MSSQL_URL)
        assert "secret" not in str(info.value)  # the password never reaches the message
        return
    engine = make_engine(MSSQL_URL)
    assert engine.dialect.name == "mssql" and engine.dialect.driver == "pyodbc"
    assert engine.dialect.fast_executemany is True

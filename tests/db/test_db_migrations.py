"""Alembic migrations from an empty database, on SQLite and the real PostgreSQL."""

from __future__ import annotations

import re
from fnmatch import fnmatch
from pathlib import Path

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import ludus
from ludus.constants import (
    EVIDENCE_TABLE,
    JOBS_TABLE,
    LEDGER_TABLE,
    MODEL_CHANGES_TABLE,
    MODELS_TABLE,
    OPTIMIZED_PARAMETERS_TABLE,
    PRICES_SCHEMA,
    SCHEDULE_SLOTS_TABLE,
)
from ludus.db import migrate
from ludus.db.engine import make_engine, prices_sidecar_path
from ludus.db.schema import metadata

APP_TABLES = {
    OPTIMIZED_PARAMETERS_TABLE,
    JOBS_TABLE,
    MODELS_TABLE,
    MODEL_CHANGES_TABLE,
    SCHEDULE_SLOTS_TABLE,
    LEDGER_TABLE,
    EVIDENCE_TABLE,
}


def test_upgrade_from_empty_creates_every_table_and_matches_metadata(db_url: str) -> None:
    assert migrate.current(db_url) is None
    migrate.upgrade(db_url)
    assert migrate.current(db_url) == migrate.head()
    engine = make_engine(db_url)
    insp = sa.inspect(engine)
    assert set(insp.get_table_names()) >= APP_TABLES
    assert PRICES_SCHEMA in insp.get_schema_names()
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": migrate.VERSION_TABLE})
        diffs = compare_metadata(ctx, metadata)
    # The migration and ludus.db.schema describe the same tables, columns, types and indexes.
    assert diffs == []
    migrate.upgrade(db_url)  # idempotent
    assert migrate.current(db_url) == migrate.head()


def test_downgrade_removes_app_tables_and_upgrade_restores_them(db_url: str) -> None:
    migrate.upgrade(db_url)
    migrate.downgrade(db_url, "base")
    assert not APP_TABLES & set(sa.inspect(make_engine(db_url)).get_table_names())
    assert migrate.current(db_url) is None
    migrate.upgrade(db_url)
    assert set(sa.inspect(make_engine(db_url)).get_table_names()) >= APP_TABLES


def test_sqlite_attaches_sibling_prices_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ludus.db'}"
    engine = make_engine(url)
    assert prices_sidecar_path(str(tmp_path / "ludus.db")) == str(tmp_path / "ludus.prices.db")
    with engine.begin() as conn:
        dbs = {row[1]: row[2] for row in conn.exec_driver_sql("PRAGMA database_list")}
        assert dbs[PRICES_SCHEMA] == str(tmp_path / "ludus.prices.db")
        conn.exec_driver_sql('CREATE TABLE "Prices"."T_1d" (x INTEGER)')
        assert conn.exec_driver_sql("PRAGMA main.journal_mode").scalar() == "wal"
    # A second, fresh connection sees the attached file too.
    engine.dispose()
    with engine.connect() as conn:
        assert "T_1d" in sa.inspect(conn).get_table_names(schema=PRICES_SCHEMA)
    assert (tmp_path / "ludus.prices.db").exists()


def test_sqlite_in_memory_gets_in_memory_prices() -> None:
    engine = make_engine("sqlite://")
    with engine.begin() as conn:
        conn.exec_driver_sql('CREATE TABLE "Prices"."M_1d" (x INTEGER)')
    assert "M_1d" in sa.inspect(engine).get_table_names(schema=PRICES_SCHEMA)


def test_sqlite_transactions_cover_ddl(tmp_path: Path) -> None:
    """pysqlite's own transaction handling is replaced: DDL rolls back with everything else."""
    engine = make_engine(f"sqlite:///{tmp_path / 'tx.db'}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql('CREATE TABLE "Prices"."R_1d" (x INTEGER)')
            raise RuntimeError("abort")
    except RuntimeError:
        pass
    assert "R_1d" not in sa.inspect(engine).get_table_names(schema=PRICES_SCHEMA)


def test_migrations_ship_as_package_data() -> None:
    """Every migration file matches a package-data glob of pyproject.toml, so wheels carry them."""
    root = Path(ludus.__file__).resolve().parent
    # tomllib is 3.11+; Jetsons run 3.10, so read the one line with a pattern.
    text = (root.parent / "pyproject.toml").read_text()
    line = re.search(r'^\[tool\.setuptools\.package-data\]\s*\n"ludus"\s*=\s*\[(.*?)\]', text, re.MULTILINE | re.DOTALL)
    assert line is not None
    globs = re.findall(r'"([^"]+)"', line.group(1))
    files = [
        p.relative_to(root).as_posix()
        for p in migrate.MIGRATIONS_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    ]
    assert "db/migrations/env.py" in files and "db/migrations/script.py.mako" in files
    assert any(f.startswith("db/migrations/versions/") for f in files)
    for f in files:
        assert any(fnmatch(f, g) and f.count("/") == g.count("/") for g in globs), f

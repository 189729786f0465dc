"""Alembic, driven from Python: the migrations ship inside the package (``ludus/db/migrations``)."""

from __future__ import annotations

import io
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Our own name: on a shared SQL Server the default ``alembic_version`` may belong to another application.
VERSION_TABLE = "ludus_alembic_version"


def alembic_config(url: str) -> Config:
    """An Alembic Config pointing at the packaged migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` in one transaction (TransientError when the database is unreachable)."""
    _run(url, lambda cfg: command.upgrade(cfg, revision))


def downgrade(url: str, revision: str = "base") -> None:
    """Revert migrations down to ``revision``."""
    _run(url, lambda cfg: command.downgrade(cfg, revision))


def current(url: str) -> str | None:
    """The revision the database is at (None when never migrated)."""
    from ludus.db.engine import database_errors, make_engine

    with database_errors(url), make_engine(url).connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


def head() -> str:
    """The newest revision shipped with this package."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    rev = script.get_current_head()
    assert rev is not None
    return rev


def sql_script(url: str, revision: str = "head") -> str:
    """The upgrade DDL as text for ``url``'s dialect, without connecting (for DBAs applying it by hand)."""
    buf = io.StringIO()
    cfg = alembic_config(url)
    cfg.output_buffer = buf
    command.upgrade(cfg, revision, sql=True)
    return buf.getvalue()


def modernize_mssql_dialect(dialect: sa.Dialect, version: tuple[int, ...] = (16, 0)) -> sa.Dialect:
    """Make an unconnected SQL Server dialect compile for a current server (DATE, VARBINARY(max), NVARCHAR(max)).

    Other dialects are returned unchanged. A connected dialect learns all this from the server itself.
    """
    if dialect.name == "mssql":
        dialect.server_version_info = version
        dialect.deprecate_large_types = True
        dialect._supports_nvarchar_max = True
        dialect._setup_version_attributes()
    return dialect


def _run(url: str, action) -> None:
    from ludus.db.engine import database_errors, make_engine

    cfg = alembic_config(url)
    with database_errors(url), make_engine(url).begin() as conn:
        cfg.attributes["connection"] = conn
        action(cfg)

"""Alembic, driven from Python: the migrations ship inside the package (``ludus/db/migrations``)."""

from __future__ import annotations

import io
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects.mssql.base import MSDialect

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Our own name: on a shared SQL Server the default ``alembic_version`` may belong to another application.
VERSION_TABLE = "ludus_alembic_version"


def alembic_config(url: str) -> Config:
    """An Alembic Config pointing at the packaged migrations and ``url``."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str | sa.Engine, revision: str = "head") -> None:
    """Apply migrations up to ``revision`` in one transaction (TransientError when the database is unreachable)."""
    _run(url, lambda cfg: command.upgrade(cfg, revision))


def downgrade(url: str, revision: str = "base") -> None:
    """Revert migrations down to ``revision``."""
    _run(url, lambda cfg: command.downgrade(cfg, revision))


def current(url: str | sa.Engine) -> str | None:
    """The revision the database (a URL or an engine) is at (None when never migrated)."""
    engine = _engine(url)
    from ludus.db.engine import database_errors

    with database_errors(engine.url), engine.connect() as conn:
        return MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE}).get_current_revision()


@lru_cache(maxsize=1)
def head() -> str:
    """The newest revision shipped with this package."""
    rev = _script().get_current_head()
    assert rev is not None
    return rev


def require_current(url: str | sa.Engine, *, migrate_sqlite: bool = True) -> str:
    """Check that the database is at :func:`head`; returns the revision.

    The embedded SQLite database migrates itself (``migrate_sqlite``): one user, nothing to coordinate.
    Any other database raises SchemaNotCurrentError telling the operator to run ``ludus db upgrade`` (or to
    upgrade Ludus when the database is newer), before any work starts.
    """
    from ludus.errors import SchemaNotCurrentError

    engine = _engine(url)
    rev = current(engine)
    if rev == head():
        return rev
    known = {s.revision for s in _script().walk_revisions()}
    newer = rev is not None and rev not in known
    if migrate_sqlite and not newer and engine.dialect.name == "sqlite":
        upgrade(engine)
        return head()
    raise SchemaNotCurrentError(engine.url.render_as_string(hide_password=True), rev, head(), newer=newer)


@lru_cache(maxsize=1)
def _script():
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://"))


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
    if isinstance(dialect, MSDialect):
        # MSDialect's class default `()` reads as tuple[()]; Dialect declares Optional[tuple[Any, ...]]
        dialect.server_version_info = version  # type: ignore[assignment]
        dialect.deprecate_large_types = True
        dialect._supports_nvarchar_max = True
        dialect._setup_version_attributes()
    return dialect


def _engine(url: str | sa.Engine) -> sa.Engine:
    from ludus.db.engine import make_engine

    return url if isinstance(url, sa.Engine) else make_engine(url)


def _run(url: str | sa.Engine, action) -> None:
    from ludus.db.engine import database_errors

    engine = _engine(url)
    cfg = alembic_config(engine.url.render_as_string(hide_password=False))
    with database_errors(engine.url), engine.begin() as conn:
        cfg.attributes["connection"] = conn
        action(cfg)

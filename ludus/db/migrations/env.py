"""Alembic environment for Ludus' own tables (run through ludus.db.migrate, or `alembic` with -x url=...)."""

from __future__ import annotations

from alembic import context

from ludus.db.migrate import VERSION_TABLE, modernize_mssql_dialect
from ludus.db.schema import metadata

config = context.config


def _configure(**kwargs) -> None:
    context.configure(target_metadata=metadata, version_table=VERSION_TABLE, compare_type=True, **kwargs)


def run_offline() -> None:
    """Emit the DDL as a script (``--sql``): what a DBA applies to SQL Server by hand."""
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True, dialect_opts={"paramstyle": "named"})
    # Without a connection the SQL Server dialect assumes a pre-2008 server (DATETIME for dates, IMAGE for
    # binaries); the script targets a current one.
    modernize_mssql_dialect(context.get_context().dialect)
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from ludus.db.engine import make_engine

        url = config.get_main_option("sqlalchemy.url")
        assert url is not None, "alembic: no sqlalchemy.url"
        with make_engine(url).begin() as conn:
            _configure(connection=conn, render_as_batch=conn.dialect.name == "sqlite")
            with context.begin_transaction():
                context.run_migrations()
        return
    _configure(connection=connection, render_as_batch=connection.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()

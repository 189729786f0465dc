"""SQLAlchemy engines for SQLite, PostgreSQL and SQL Server, with Delphi's ``Prices`` schema on each.

How the ``Prices`` schema maps per backend:

* **SQL Server** (``mssql+pyodbc://``): a real schema; tables are ``[Prices].[SPX_1d]``. Delphi owns it in
  production; ``ludus db upgrade`` creates the schema when it is missing. ``fast_executemany`` is on so bulk
  price writes go in one round trip per batch.
* **PostgreSQL** (``postgresql+psycopg://``): a real schema ``"Prices"`` (quoted, mixed case), created by the
  first migration; tables are ``"Prices"."SPX_1d"``.
* **SQLite** (``sqlite:///path/ludus.db``): SQLite has no schemas, but an ATTACHed database is addressed the
  same way. Every new connection ATTACHes the sibling file ``path/ludus.prices.db`` under the name ``Prices``,
  so ``"Prices"."SPX_1d"`` resolves to table ``SPX_1d`` in that file. An in-memory database gets an in-memory
  ``Prices``. Both files use WAL and a busy timeout; a transaction that writes to both files is atomic per file
  only (SQLite's WAL limit), which the price store never needs (it writes one file per transaction).

On SQLite the pysqlite driver's own transaction handling is replaced by an explicit ``BEGIN`` so DDL,
SAVEPOINTs and the stores' read-then-write sequences are really transactional (SQLAlchemy's documented recipe).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.engine.url import URL

from ludus.config import mask_url
from ludus.constants import PRICES_SCHEMA
from ludus.errors import InputError, TransientError
from ludus.logs import warn_once

SQLITE_BUSY_TIMEOUT_MS = 30_000
# SQLSTATE of a refused login: invalid_password (PostgreSQL), invalid_authorization_specification (ANSI);
# SQL Server's ODBC driver reports 28000 too.
_AUTH_SQLSTATES = ("28P01", "28000")

log = logging.getLogger("ludus.db")

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def make_engine(url: str) -> Engine:
    """The engine for ``url`` (one per URL and process, created on first use)."""
    with _lock:
        engine = _engines.get(url)
        if engine is None:
            engine = _create(url)
            _engines[url] = engine
        return engine


def dispose_engines() -> None:
    """Close every cached engine's pooled connections (tests, forked workers)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


@contextmanager
def database_errors(url: str | URL) -> Iterator[None]:
    """Turn ``OperationalError`` (server down, lost connection, lock timeout, deadlock) into a one-line
    TransientError naming the database without its password; the caller may retry."""
    try:
        yield
    except sa.exc.OperationalError as exc:
        where = mask_url(url.render_as_string(hide_password=False) if isinstance(url, URL) else url)
        detail = " ".join(str(exc.orig if exc.orig is not None else exc).split())
        if refused_credentials(exc):
            # said once: a worker retries forever (the secret may be rotated), the log must not flood
            warn_once(log, f"db-auth:{where}", "the database at %s refused the credentials: %s", where, detail)
            raise TransientError(f"the database at {where} refused the credentials: {detail}") from exc
        raise TransientError(f"database unreachable or busy at {where}: {detail}") from exc


def refused_credentials(exc: BaseException) -> bool:
    """True when a connection failed because the server refused the user or password."""
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state in _AUTH_SQLSTATES:
        return True
    # libpq reports a refused login during the connection only as text (no SQLSTATE)
    text = str(orig).lower()
    return (
        "authentication failed" in text
        or "login failed for user" in text
        or ('role "' in text and "does not exist" in text)
    )


def prices_sidecar_path(database: str) -> str:
    """The file ATTACHed as ``Prices`` next to a SQLite database file (``ludus.db`` -> ``ludus.prices.db``)."""
    path = Path(database)
    stem = path.name.removesuffix(".db")
    return str(path.with_name(f"{stem}.prices.db"))


def _create(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except sa.exc.ArgumentError as exc:
        raise InputError("database_url", mask_url(url), f"not a SQLAlchemy URL: {exc}") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(parsed)
    if backend == "mssql":
        return _mssql_engine(parsed, url)
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except (ImportError, sa.exc.NoSuchModuleError) as exc:
        raise InputError("database_url", mask_url(url), f"database driver not available: {exc}") from None


def _mssql_engine(parsed: URL, raw: str) -> Engine:
    try:
        return sa.create_engine(parsed, pool_pre_ping=True, fast_executemany=True)
    except ImportError as exc:
        hint = ""
        if "libodbc" in str(exc):
            hint = (
                " (install unixODBC and Microsoft's ODBC Driver 18 for SQL Server: "
                "apt-get install unixodbc msodbcsql18)"
            )
        raise InputError("database_url", mask_url(raw), f"SQL Server driver pyodbc cannot load: {exc}{hint}") from None


def _sqlite_engine(parsed: URL) -> Engine:
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or "mode=memory" in str(parsed)
    if in_memory:
        prices_db = ":memory:"
        # One shared connection, otherwise every pool connection would see a different empty database.
        engine = sa.create_engine(parsed, poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False})
    else:
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        prices_db = prices_sidecar_path(database)
        engine = sa.create_engine(parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record):
        # Take transaction control away from pysqlite; SQLAlchemy's "begin" event below emits BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA foreign_keys = ON")
            cur.execute(f'ATTACH DATABASE ? AS "{PRICES_SCHEMA}"', (prices_db,))
            if not in_memory:
                cur.execute("PRAGMA main.journal_mode = WAL")
                cur.execute(f'PRAGMA "{PRICES_SCHEMA}".journal_mode = WAL')
                cur.execute("PRAGMA main.synchronous = NORMAL")
                cur.execute(f'PRAGMA "{PRICES_SCHEMA}".synchronous = NORMAL')
        finally:
            cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn):
        conn.exec_driver_sql("BEGIN")

    return engine

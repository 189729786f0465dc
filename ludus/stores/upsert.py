"""Insert-or-update by a key on every backend: update first, insert when nothing matched; a concurrent insert
of the same key (unique violation) is retried as an update. The insert sits in a SAVEPOINT so a violation
does not abort the caller's transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ludus.db.schema import utcnow


def upsert_row(conn: Connection, table: sa.Table, key: Mapping[str, Any], values: Mapping[str, Any]) -> None:
    """Make the row of ``key`` carry ``values`` (``created_at`` kept, ``updated_at`` now)."""
    now = utcnow()
    if _update(conn, table, key, values, now):
        return
    try:
        with conn.begin_nested():
            conn.execute(sa.insert(table).values(**key, **values, created_at=now, updated_at=now))
    except sa.exc.IntegrityError:
        if not _update(conn, table, key, values, now):
            raise


def _update(conn: Connection, table: sa.Table, key: Mapping[str, Any], values: Mapping[str, Any], now: Any) -> bool:
    where = [table.c[k] == v for k, v in key.items()]
    return conn.execute(sa.update(table).where(*where).values(**values, updated_at=now)).rowcount > 0

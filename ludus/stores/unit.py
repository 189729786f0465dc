"""One transaction for several stores: results, registry and job state commit together or not at all."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Connection, Engine

from ludus.db.engine import database_errors


@contextmanager
def transaction(engine: Engine) -> Iterator[Connection]:
    """A connection inside BEGIN ... COMMIT (ROLLBACK on any exception).

    Lost connections, lock timeouts and deadlocks (``OperationalError``) surface as TransientError: the
    caller may retry the whole unit.
    """
    with database_errors(engine.url), engine.begin() as conn:
        yield conn

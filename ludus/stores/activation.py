"""What is live for a key, changed by hand: activation and rollback, each recorded with who, when and why.

One change, in the caller's transaction: the model version's status (at most one active per key, the
registry's rule), the published OptimizedParameters row Constellations reads (and ``ludus recommend``
shows), and an audit row with the parameters before and after. Either all of it commits or none of it.

Rollback goes back to what was live before the current version was activated (another version, or the
unconditional baseline); a version a job activated, with no recorded change, goes back to the one retired
last.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ludus.db.schema import model_changes as T
from ludus.db.schema import utcnow
from ludus.errors import InputError
from ludus.stores import models
from ludus.stores.parameters import ParameterRow, read_active, upsert_parameters

ACTIVATE = "activate"
ROLLBACK = "rollback"
ACTIONS = (ACTIVATE, ROLLBACK)


@dataclass(frozen=True)
class LiveChoice:
    """What the published row of the day says once the change is made."""

    valid_for: date
    parameters: dict[str, Any]
    expected_metric: float | None = None


@dataclass(frozen=True)
class ModelChange:
    """One recorded change of what is live for a key. ``to_version`` None: the baseline, no model."""

    id: int
    strategy: str
    symbol: str
    interval: str
    action: str
    from_version: int | None
    to_version: int | None
    valid_for: date | None
    previous_parameters: dict[str, Any] | None
    parameters: dict[str, Any] | None
    actor: str
    reason: str
    at: datetime


def activate(
    conn: Connection,
    version_id: int,
    choice: LiveChoice,
    *,
    actor: str,
    reason: str,
    action: str = ACTIVATE,
    now: datetime | None = None,
) -> ModelChange:
    """Make ``version_id`` the active version of its key and publish ``choice`` for it; records the change."""
    _check(action, actor, reason)
    version = models.get(conn, version_id, with_onnx=False)
    if version is None:
        raise InputError("model_version", version_id, "no such model version")
    key = (version.strategy, version.symbol, version.interval)
    before = active_version_id(conn, *key)
    row = read_active(conn, *key)
    models.set_status(conn, int(version_id), models.ACTIVE)
    upsert_parameters(
        conn,
        [
            ParameterRow(
                strategy=key[0],
                symbol=key[1],
                interval=key[2],
                valid_for=choice.valid_for,
                parameters=dict(choice.parameters),
                expected_metric=choice.expected_metric,
                baseline_parameters=row.baseline_parameters if row is not None else None,
                model_version=int(version_id),
                job_id=version.job_id,
            )
        ],
    )
    return _record(
        conn,
        key,
        action,
        before,
        int(version_id),
        choice.valid_for,
        row.parameters if row is not None else None,
        dict(choice.parameters),
        actor,
        reason,
        now,
    )


def restore_baseline(
    conn: Connection,
    strategy: str,
    symbol: str,
    interval: str,
    *,
    actor: str,
    reason: str,
    action: str = ROLLBACK,
    now: datetime | None = None,
) -> ModelChange:
    """Retire the key's active version and publish the unconditional baseline of its latest row again."""
    _check(action, actor, reason)
    row = read_active(conn, strategy, symbol, interval)
    if row is None or not row.baseline_parameters:
        raise InputError(
            "model_version", "baseline", f"{strategy} {symbol} {interval} has no published baseline to go back to"
        )
    before = active_version_id(conn, strategy, symbol, interval)
    if before is not None:
        models.set_status(conn, before, models.RETIRED)
    upsert_parameters(
        conn,
        [
            ParameterRow(
                strategy=strategy,
                symbol=symbol,
                interval=interval,
                valid_for=row.valid_for,
                parameters=dict(row.baseline_parameters),
                expected_metric=None,
                baseline_parameters=row.baseline_parameters,
                model_version=None,
                job_id=row.job_id,
            )
        ],
    )
    return _record(
        conn,
        (strategy, symbol, interval),
        action,
        before,
        None,
        row.valid_for,
        row.parameters,
        dict(row.baseline_parameters),
        actor,
        reason,
        now,
    )


def rollback_target(conn: Connection, strategy: str, symbol: str, interval: str) -> int | None:
    """What a rollback goes back to: what was live before the current version was activated (None: the
    baseline); repeated rollbacks walk further back. A version activated by a job (not recorded here) goes
    back to the version retired last."""
    current = active_version_id(conn, strategy, symbol, interval)
    target: int | None
    if current is not None:
        for change in changes(conn, strategy=strategy, symbol=symbol, interval=interval, limit=10_000):
            if change.action == ACTIVATE and change.to_version == current:
                target = change.from_version
                break
        else:
            target = _retired_other_than(conn, strategy, symbol, interval, current)
    else:
        target = _retired_other_than(conn, strategy, symbol, interval, None)
    if target == current:
        raise InputError("model_version", current, "is what a rollback would go back to: nothing to undo")
    return target


def _retired_other_than(conn: Connection, strategy: str, symbol: str, interval: str, current: int | None) -> int:
    retired = models.last_retired(conn, strategy, symbol, interval)
    if retired is None or retired.id is None or retired.id == current:
        raise InputError(
            "model_version",
            current,
            f"nothing to roll back to for {strategy} {symbol} {interval}: no earlier version was ever active",
        )
    return int(retired.id)


def changes(
    conn: Connection,
    *,
    strategy: str | None = None,
    symbol: str | None = None,
    interval: str | None = None,
    version: int | None = None,
    limit: int = 50,
) -> list[ModelChange]:
    """Recorded changes, newest first, of a key (or every key), or those touching one version."""
    q = sa.select(T).order_by(T.c.id.desc()).limit(limit)
    for column, value in (("strategy", strategy), ("symbol", symbol), ("interval", interval)):
        if value is not None:
            q = q.where(T.c[column] == value)
    if version is not None:
        q = q.where(sa.or_(T.c.from_version == version, T.c.to_version == version))
    return [ModelChange(**dict(r)) for r in conn.execute(q).mappings()]


def active_version_id(conn: Connection, strategy: str, symbol: str, interval: str) -> int | None:
    """The id of the key's active version, or None."""
    found = models.find_versions(
        conn, strategy=strategy, symbol=symbol, interval=interval, status=models.ACTIVE, limit=1
    )
    return int(found[0].id) if found and found[0].id is not None else None


def _check(action: str, actor: str, reason: str) -> None:
    if action not in ACTIONS:
        raise ValueError(f"action must be one of {ACTIONS}, got {action!r}")
    if not actor or not actor.strip():
        raise InputError("by", actor, "say who makes the change")
    if not reason or not reason.strip():
        raise InputError("reason", reason, "say why (it is kept with the change)")


def _record(
    conn: Connection,
    key: tuple[str, str, str],
    action: str,
    before: int | None,
    after: int | None,
    valid_for: date | None,
    previous: dict[str, Any] | None,
    parameters: dict[str, Any] | None,
    actor: str,
    reason: str,
    now: datetime | None,
) -> ModelChange:
    values: dict[str, Any] = {
        "strategy": key[0],
        "symbol": key[1],
        "interval": key[2],
        "action": action,
        "from_version": before,
        "to_version": after,
        "valid_for": valid_for,
        "previous_parameters": previous,
        "parameters": parameters,
        "actor": actor.strip(),
        "reason": reason.strip(),
        "at": now or utcnow(),
    }
    pk = conn.execute(sa.insert(T).values(**values)).inserted_primary_key
    assert pk is not None
    new_id = pk[0]
    return ModelChange(id=int(new_id), **values)

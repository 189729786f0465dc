"""Error types shared by every layer.

Two families matter to the worker: ``InputError`` (the job itself is wrong: publish an error result and
dead-letter the message) and ``TransientError`` (the world is wrong for now: retry, never dead-letter).
"""

from __future__ import annotations

from typing import Any


class LudusError(Exception):
    """Base class of every error Ludus raises on purpose."""


class InputError(LudusError):
    """Bad input a user can fix: names the field, the offending value and the rule it broke."""

    def __init__(self, field: str, value: Any, rule: str) -> None:
        self.field = field
        self.value = value
        self.rule = rule
        super().__init__(f"{field}={_short(value)}: {rule}")

    def to_dict(self) -> dict[str, Any]:
        return {"field": self.field, "value": _short(self.value), "reason": self.rule}


class UnknownSymbolError(InputError):
    """A symbol/interval pair with no price table; the message lists what is available."""

    def __init__(self, symbol: str, interval: str, available: list[str]) -> None:
        listing = ", ".join(available) if available else "none (run `ludus data load-sample` or `ludus data import`)"
        super().__init__("symbol", symbol, f"no price table for {symbol} at interval {interval}; available: {listing}")
        self.symbol = symbol
        self.interval = interval
        self.available = available


class InsufficientDataError(InputError):
    """Not enough bars for what the job asks (folds, holdout, warm-up)."""


class TransientError(LudusError):
    """A failure that may go away on retry (database or broker unreachable)."""


class SchemaNotCurrentError(TransientError):
    """The database's schema is not at the revision this Ludus needs. The operator's fix (`ludus db upgrade`),
    not the job's fault: the CLI says so and exits 2, a worker retries the job instead of rejecting it."""

    def __init__(self, where: str, current: str | None, head: str, newer: bool = False) -> None:
        self.current = current
        self.head = head
        if newer:
            rule = (
                f"schema at revision {current}, which this Ludus (head {head}) does not know: a newer Ludus "
                f"migrated it; upgrade Ludus"
            )
        else:
            state = f"at revision {current}" if current else "without Ludus tables"
            rule = f"schema {state}, this Ludus needs revision {head}: run `ludus db upgrade`"
        super().__init__(f"database_url={where}: {rule}")


def _short(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

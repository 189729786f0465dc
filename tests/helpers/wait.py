"""Wait on an explicit condition, never a fixed sleep: poll ``predicate`` until it returns something truthy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    interval: float = 0.2,
    describe: Callable[[], str] | None = None,
) -> T:
    """The first truthy value of ``predicate()``, polled every ``interval`` s; AssertionError naming ``what``
    (and ``describe()``, the state seen last) after ``timeout`` s. ``timeout`` bounds a broken run only: it is
    never an assertion about speed."""
    end = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= end:
            seen = f"; {describe()}" if describe is not None else ""
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{seen}")
        time.sleep(interval)

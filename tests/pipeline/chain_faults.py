"""A failure injected into one symbol's chain of a universe job (pickled by value onto the Ray workers)."""

from __future__ import annotations

from typing import Any


class FailingChain:
    """A universe job's per-symbol work wrapped so that ``symbol``'s chain raises on its worker (the failure
    a real symbol meets, e.g. every trial diverging); the other symbols' chains run unchanged."""

    def __init__(self, fn: Any, symbol: str) -> None:
        self.fn = fn
        self.symbol = symbol

    def __call__(self, item: Any) -> Any:
        if item[0].symbol == self.symbol:
            raise RuntimeError(f"injected failure of {self.symbol}'s chain")
        return self.fn(item)

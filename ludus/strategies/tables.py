"""Market tables of one symbol for the fused CPU engine: built once, reused by every chunk and job phase.

``MarketTables`` holds the float64 series, the per-bar prefix sums and drawdown aggregates the kernels fold
runs of positions with (O(T) memory: about 90 bytes per bar), and a cache of indicator rows (moving averages,
RSI, bands, channel highs and lows) per (kind, window). Rows are kept while they fit ``cache_bytes``; past it
a scan builds them block by block of bars into a bounded buffer (``RowSource``), so memory stays bounded in
the number of bars whatever the number of windows.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ludus.strategies import kernels

DEFAULT_CACHE_BYTES = 128 * 2**20  # indicator rows kept per market
# bars per block: a block of every row of a scan (rows x bars x 8 bytes) stays within this, so the sets of a
# scan reuse it from cache, and it bounds the buffer of rows built block by block
DEFAULT_BLOCK_BYTES = 4 * 2**20
MIN_BLOCK_BARS = 1024


@dataclass(frozen=True)
class Indicator:
    """How a kind of row is built: the series it reads and a kernel ``build(series, windows, b0, b1, out,
    carry)``; ``carry`` columns continue a recurrence from one block of bars to the next."""

    series: str
    build: Callable
    carry: int = 0


INDICATORS: dict[str, Indicator] = {
    "sma": Indicator("cs", kernels.sma_rows),
    "std": Indicator("close", kernels.std_rows),
    "ema": Indicator("close", kernels.ema_rows, carry=1),
    "rsi": Indicator("close", kernels.rsi_rows, carry=2),
    "high": Indicator("high", kernels.high_rows),
    "low": Indicator("low", kernels.low_rows),
}


class RowSource:
    """The rows of one indicator kind for a scan's windows: ``index`` [len(windows)] gives each window's
    row; ``block(b0, b1)`` returns ``(table, offset)`` with the value of row j at bar t in
    ``table[j, t - offset]``. Cached sources return the whole kept table; streamed ones build the block
    (blocks must come in order from bar 0)."""

    def __init__(self, tables: MarketTables, kind: str, windows: np.ndarray) -> None:
        self.kind = kind
        self.spec = INDICATORS[kind]
        self.series = getattr(tables, self.spec.series)
        keys = np.unique(np.asarray(windows, dtype=np.int64))
        self.block_bars = int(min(tables.n, max(MIN_BLOCK_BARS, tables.block_bytes // (8 * max(keys.shape[0], 1)))))
        kept = tables.keep_rows(kind, keys)
        if kept is not None:
            self.table, rows = kept
            self.index = rows[np.searchsorted(keys, windows)]
            self.streamed = False
            return
        self.keys = keys
        self.index = np.searchsorted(keys, windows).astype(np.int64)
        self.table = np.empty((keys.shape[0], self.block_bars))
        self.carry = np.zeros((keys.shape[0], max(self.spec.carry, 1)))
        self.streamed = True
        self.next_bar = 0

    def block(self, b0: int, b1: int) -> tuple[np.ndarray, int]:
        if not self.streamed:
            return self.table, 0
        if b0 != self.next_bar or b1 - b0 > self.block_bars:
            raise ValueError(
                f"blocks of a streamed {self.kind} source must follow each other "
                f"(expected bar {self.next_bar}, got {b0}..{b1})"
            )
        self.spec.build(self.series, self.keys, b0, b1, self.table, self.carry)
        self.next_bar = b1
        return self.table, b0


class MarketTables:
    """float64 tables of one market (see the module docstring): ``mt`` [7, T+1] the returns and the prefix
    sums (over bars u < i) of r, r², min(r,0)², max(r,0)², log1p(r), log1p(-r) (rows ``kernels.M_*``);
    ``agg`` [6, T/BLOCK] the mini-block aggregates of the long then the short cumulative log return."""

    def __init__(
        self,
        close: np.ndarray,
        high: np.ndarray,
        low: np.ndarray,
        *,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        block_bytes: int = DEFAULT_BLOCK_BYTES,
    ) -> None:
        self.close = np.ascontiguousarray(close, dtype=np.float64)
        self.high = np.ascontiguousarray(high, dtype=np.float64)
        self.low = np.ascontiguousarray(low, dtype=np.float64)
        self.n = int(self.close.shape[0])
        self.cache_bytes = int(cache_bytes)
        self.block_bytes = int(block_bytes)
        self.cs = _prefix(self.close)
        r = np.zeros(self.n)
        if self.n > 1:
            r[1:] = self.close[1:] / self.close[:-1] - 1.0
        self.r = r
        mt = np.zeros((7, self.n + 1))
        mt[kernels.M_RET, : self.n] = r
        for row, x in (
            (kernels.M_R, r),
            (kernels.M_R2, r * r),
            (kernels.M_NEG2, np.minimum(r, 0.0) ** 2),
            (kernels.M_POS2, np.maximum(r, 0.0) ** 2),
            (kernels.M_LOG_LONG, np.log1p(np.maximum(r, kernels.LOG_FLOOR))),
            (kernels.M_LOG_SHORT, np.log1p(np.maximum(-r, kernels.LOG_FLOOR))),
        ):
            np.cumsum(x, out=mt[row, 1:])
        self.mt = mt
        self.agg = np.concatenate(
            [kernels.drawdown_blocks(mt[kernels.M_LOG_LONG]), kernels.drawdown_blocks(mt[kernels.M_LOG_SHORT])]
        )
        self._rows: dict[str, tuple[np.ndarray, dict[int, int]]] = {}
        self._lock = threading.Lock()  # one market may serve chunks mapped over threads

    @property
    def nbytes(self) -> int:
        """Bytes held: series, prefix tables and kept indicator rows."""
        fixed = sum(a.nbytes for a in (self.close, self.high, self.low, self.cs, self.r, self.mt, self.agg))
        return fixed + sum(table.nbytes for table, _ in self._rows.values())

    def kept_bytes(self) -> int:
        return sum(table.nbytes for table, _ in self._rows.values())

    def source(self, kind: str, windows: np.ndarray) -> RowSource:
        """The ``kind`` rows of ``windows`` (any order, repeats allowed) for one scan."""
        return RowSource(self, kind, windows)

    def keep_rows(self, kind: str, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(table, row of each key) with every key's row kept, building the missing ones; None when they
        would not fit the cache budget (the caller then streams blocks)."""
        with self._lock:
            return self._keep_rows(kind, keys)

    def _keep_rows(self, kind: str, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        table, index = self._rows.get(kind, (np.empty((0, self.n)), {}))
        missing = np.array([k for k in keys.tolist() if k not in index], dtype=np.int64)
        if missing.size:
            if self.kept_bytes() + missing.size * self.n * 8 > self.cache_bytes:
                return None
            used = len(index)
            grown = np.empty((used + missing.size, self.n))  # exact size: the budget counts what is held
            grown[:used] = table[:used]
            table = grown
            spec = INDICATORS[kind]
            carry = np.zeros((missing.size, max(spec.carry, 1)))
            spec.build(getattr(self, spec.series), missing, 0, self.n, table[used : used + missing.size], carry)
            for j, k in enumerate(missing.tolist()):
                index[k] = used + j
            self._rows[kind] = (table, index)
        return table, np.array([index[k] for k in keys.tolist()], dtype=np.int64)


def _prefix(x: np.ndarray) -> np.ndarray:
    out = np.zeros(x.shape[0] + 1)
    np.cumsum(x, out=out[1:])
    return out

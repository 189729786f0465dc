"""One symbol's prices as tensors on the backtest device, with its tables cached on it.

Build a ``MarketTensors`` once per symbol and pass it to every backtest of that symbol (``run_backtest``,
``Strategy.positions``): its ``tables()`` (the fused CPU engine's prefix sums and indicator rows) and its
torch indicator tables are then built once and reused by every chunk and every job phase. ``market_for``
does it for callers that only hold ``Bars`` (a chunk of candidates shipped to a worker process): it keeps
the last few markets of the process, keyed by the bars' content.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import torch

from ludus.data.bars import Bars
from ludus.strategies.tables import MarketTables

_T = TypeVar("_T")

MARKETS_KEPT = 4  # markets ``market_for`` keeps per process


@dataclass
class MarketTensors:
    """open/high/low/close/volume as [T] tensors (``dtype``), plus simple returns ``r`` (r[0] = 0).

    Indicators are computed in float64 (cumulative sums of prices lose digits in float32) and cached per
    (kind, window) so that chunks of a large sweep reuse them.
    """

    open: torch.Tensor
    high: torch.Tensor
    low: torch.Tensor
    close: torch.Tensor
    volume: torch.Tensor
    close64: torch.Tensor
    high64: torch.Tensor
    low64: torch.Tensor
    _cache: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_bars(
        cls, bars: Bars, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
    ) -> MarketTensors:
        def t(a: np.ndarray, dt: torch.dtype) -> torch.Tensor:
            return torch.tensor(np.asarray(a, dtype=np.float64), device=device).to(dt)

        return cls(
            open=t(bars.open, dtype),
            high=t(bars.high, dtype),
            low=t(bars.low, dtype),
            close=t(bars.close, dtype),
            volume=t(bars.volume, dtype),
            close64=t(bars.close, torch.float64),
            high64=t(bars.high, torch.float64),
            low64=t(bars.low, torch.float64),
        )

    @property
    def dtype(self) -> torch.dtype:
        return self.close.dtype

    @property
    def device(self) -> torch.device:
        return self.close.device

    def __len__(self) -> int:
        return int(self.close.shape[0])

    @property
    def returns(self) -> torch.Tensor:
        """Simple per-bar returns r[t] = close[t]/close[t-1] - 1, r[0] = 0 (computed in float64)."""

        def compute() -> torch.Tensor:
            r = torch.zeros_like(self.close64)
            r[1:] = self.close64[1:] / self.close64[:-1] - 1.0
            return r.to(self.dtype)

        return self.cached("returns", compute)

    def tables(self) -> MarketTables:
        """The fused CPU engine's float64 tables of this market, built on first use and kept."""

        def compute() -> MarketTables:
            return MarketTables(self.close64.cpu().numpy(), self.high64.cpu().numpy(), self.low64.cpu().numpy())

        return self.cached("fused_tables", compute)

    def cached(self, key: Hashable, compute: Callable[[], _T]) -> _T:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def table(self, kind: str, keys: Sequence[Hashable], compute: Callable[[list], torch.Tensor]) -> torch.Tensor:
        """Rows [len(keys), T] of an indicator; ``compute(missing_keys) -> [M, T]`` fills the cache."""
        store = self._cache.setdefault(("table", kind), {})
        missing = [k for k in dict.fromkeys(keys) if k not in store]
        if missing:
            rows = compute(missing)
            for i, k in enumerate(missing):
                store[k] = rows[i]
        return torch.stack([store[k] for k in keys]) if keys else torch.empty(0, len(self), device=self.device)

    def ranks(
        self, kind: str, windows: torch.Tensor, compute: Callable[[list], torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-bar ranks of an indicator's rows, for comparing rows of different windows: ``(ranks, rows)``.

        ``ranks`` [U, T] (uint8 when U < 255, else int16/int32) ranks the distinct windows' values at each bar
        (equal values get equal ranks, so ``ranks[i] > ranks[j]`` exactly when value i > value j); NaN gets
        the largest rank, U + 1. ``rows`` maps ``windows`` (any shape) to their rows. Comparing 1-byte ranks
        instead of float64 values reads 8x less memory per set. The table is kept per kind and rebuilt only
        when ``windows`` holds a window it lacks, so calling it once with a whole sweep's windows
        (``Strategy.prepare``) serves every chunk.
        """
        held = self._cache.get(("ranks", kind))
        if held is not None:
            keys, table = held
            rows = torch.searchsorted(keys, windows).clamp_(max=keys.shape[0] - 1)
            if bool((keys.take(rows) == windows).all()):
                return table, rows
        keys = torch.unique(windows)
        values = self.table(kind, [int(w) for w in keys.tolist()], compute)  # [U, T] float64
        x = values.t().contiguous()  # [T, U]: sort each bar's values
        srt, order = x.sort(dim=1)
        step = torch.ones_like(order)
        step[:, 1:] = srt[:, 1:] != srt[:, :-1]
        dense = torch.empty_like(order).scatter_(1, order, step.cumsum_(1))
        n = keys.shape[0]
        dense.masked_fill_(torch.isnan(x), n + 1)
        dtype = torch.uint8 if n + 1 <= 255 else torch.int16 if n + 1 < 2**15 else torch.int32
        table = dense.t().to(dtype).contiguous()
        self._cache[("ranks", kind)] = (keys, table)
        return table, torch.searchsorted(keys, windows)

    def gather(self, kind: str, windows: torch.Tensor, compute: Callable[[list], torch.Tensor]) -> torch.Tensor:
        """Per-set rows [P, T] of an indicator indexed by one integer parameter tensor ``windows`` [P]."""
        unique, inverse = torch.unique(windows, return_inverse=True)
        table = self.table(kind, [int(w) for w in unique.tolist()], compute)
        return table.index_select(0, inverse)


_markets: OrderedDict[tuple, MarketTensors] = OrderedDict()
_markets_lock = threading.Lock()


def market_for(bars: Bars, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> MarketTensors:
    """The process's MarketTensors of ``bars`` on ``device``: the same object (and so the same tables) for
    every call with equal bars, the last ``MARKETS_KEPT`` markets kept."""
    key = (bars_fingerprint(bars), str(torch.device(device)), dtype)
    with _markets_lock:
        market = _markets.get(key)
        if market is not None:
            _markets.move_to_end(key)
            return market
    market = MarketTensors.from_bars(bars, device, dtype)
    with _markets_lock:
        market = _markets.setdefault(key, market)
        while len(_markets) > MARKETS_KEPT:
            _markets.popitem(last=False)
    return market


def bars_fingerprint(bars: Bars) -> tuple:
    """A key of the bars' content: symbol, interval, length and a digest of the prices and timestamps."""
    digest = hashlib.blake2b(digest_size=16)
    for column in (bars.timestamps, bars.open, bars.high, bars.low, bars.close, bars.volume):
        # an ndarray is a buffer; numpy's stubs declare __buffer__ only for Python >= 3.12 (mypy checks 3.10)
        digest.update(np.ascontiguousarray(column).view(np.uint8))  # type: ignore[arg-type]
    return bars.symbol, bars.interval, len(bars), digest.hexdigest()

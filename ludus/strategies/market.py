"""One symbol's prices as tensors on the backtest device, with a per-window indicator cache."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ludus.data.bars import Bars


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
    def from_bars(cls, bars: Bars, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
                  ) -> "MarketTensors":
        def t(a: np.ndarray, dt: torch.dtype) -> torch.Tensor:
            return torch.tensor(np.asarray(a, dtype=np.float64), device=device).to(dt)

        return cls(open=t(bars.open, dtype), high=t(bars.high, dtype), low=t(bars.low, dtype),
                   close=t(bars.close, dtype), volume=t(bars.volume, dtype), close64=t(bars.close, torch.float64),
                   high64=t(bars.high, torch.float64), low64=t(bars.low, torch.float64))

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

    def cached(self, key: Hashable, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    def table(self, kind: str, keys: Sequence[Hashable], compute: Callable[[list], torch.Tensor]
              ) -> torch.Tensor:
        """Rows [len(keys), T] of an indicator; ``compute(missing_keys) -> [M, T]`` fills the cache."""
        store = self._cache.setdefault(("table", kind), {})
        missing = [k for k in dict.fromkeys(keys) if k not in store]
        if missing:
            rows = compute(missing)
            for i, k in enumerate(missing):
                store[k] = rows[i]
        return torch.stack([store[k] for k in keys]) if keys else torch.empty(0, len(self), device=self.device)

    def gather(self, kind: str, windows: torch.Tensor, compute: Callable[[list], torch.Tensor]) -> torch.Tensor:
        """Per-set rows [P, T] of an indicator indexed by one integer parameter tensor ``windows`` [P]."""
        unique, inverse = torch.unique(windows, return_inverse=True)
        table = self.table(kind, [int(w) for w in unique.tolist()], compute)
        return table.index_select(0, inverse)

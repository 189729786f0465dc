"""OHLCV bars of one symbol at one interval, as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Bars:
    """Price history: ``timestamps`` is datetime64[ns] (UTC, naive), the rest float64, all of length T."""

    symbol: str
    interval: str
    timestamps: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.close.shape[0])

    def slice(self, start: int | None = None, stop: int | None = None) -> Bars:
        """Bars[start:stop] as a new Bars."""
        s = slice(start, stop)
        return Bars(
            self.symbol,
            self.interval,
            self.timestamps[s],
            self.open[s],
            self.high[s],
            self.low[s],
            self.close[s],
            self.volume[s],
        )

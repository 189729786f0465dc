"""Reading the context series (VIX, an index, ...) that a traded series' conditions are computed with.

One function for the pipeline and for re-scoring a stored model: the same window gives the same features.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from ludus.data.bars import Bars
from ludus.data.prices import PriceStore

# Context series are read from a little before the traded series so that the first bars have a value.
CONTEXT_MARGIN = timedelta(days=14)


def read_context(store: PriceStore, bars: Bars, symbols: Sequence[str], interval: str) -> dict[str, Bars]:
    """The bars of each context symbol from ``CONTEXT_MARGIN`` before ``bars`` start to their last bar."""
    if len(bars) == 0 or not symbols:
        return {}
    first = bars.timestamps[0].astype("datetime64[us]").astype(datetime) - CONTEXT_MARGIN
    last = bars.timestamps[-1].astype("datetime64[us]").astype(datetime)
    return {symbol: store.read(symbol, interval, start=first, end=last) for symbol in symbols}


__all__ = ["CONTEXT_MARGIN", "read_context"]

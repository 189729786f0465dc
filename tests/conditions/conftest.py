"""Real context series for the conditions tests: the VIX (arch.data.vix, close only, with missing prints)
and the NASDAQ composite (arch.data.nasdaq)."""

from __future__ import annotations

import numpy as np
import pytest

from ludus.data.bars import Bars


@pytest.fixture(scope="session")
def vix_bars() -> Bars:
    from arch.data import vix

    df = vix.load()
    close = df["vix"].to_numpy(np.float64)  # 46 missing prints (NaN) stay in: they are no observation
    return Bars("VIX", "1d", df.index.values.astype("datetime64[ns]"), close, close, close, close, np.zeros_like(close))


@pytest.fixture(scope="session")
def ixic_bars() -> Bars:
    from arch.data import nasdaq

    df = nasdaq.load()
    return Bars(
        "IXIC",
        "1d",
        df.index.values.astype("datetime64[ns]"),
        *(df[c].to_numpy(np.float64) for c in ("Open", "High", "Low", "Close", "Volume")),
    )

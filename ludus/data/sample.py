"""Real daily OHLCV that Python packages ship, loaded into the price store (the embedded default's data).

=======  ==========================  =====================  ==============================
symbol   series                      source                 span
=======  ==========================  =====================  ==============================
SPX      S&P 500 index               ``arch.data.sp500``    1999-01-04 .. 2018-12-31
IXIC     NASDAQ Composite index      ``arch.data.nasdaq``   1999-01-04 .. 2018-12-31
VIX      CBOE volatility index       ``arch.data.vix``      2014-01-03 .. 2019-01-03
GOOG     Alphabet (Google) shares    ``backtesting.test``   2004-08-19 .. 2013-03-01
=======  ==========================  =====================  ==============================

The VIX file has one close-like column: it is stored as Open = High = Low = Close, Volume 0, and its few
missing days are left out. Every series is written with ``replace=True``, so loading twice changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ludus.data.bars import Bars
from ludus.data.prices import PriceStore
from ludus.errors import InputError

SAMPLE_INTERVAL = "1d"


def _from_ohlcv(symbol: str, df) -> Bars:  # df: a pandas DataFrame with OHLCV columns
    return Bars(
        symbol=symbol,
        interval=SAMPLE_INTERVAL,
        timestamps=df.index.values.astype("datetime64[ns]"),
        open=df["Open"].to_numpy(np.float64),
        high=df["High"].to_numpy(np.float64),
        low=df["Low"].to_numpy(np.float64),
        close=df["Close"].to_numpy(np.float64),
        volume=df["Volume"].to_numpy(np.float64),
    )


def _spx() -> Bars:
    from arch.data import sp500

    return _from_ohlcv("SPX", sp500.load())


def _ixic() -> Bars:
    from arch.data import nasdaq

    return _from_ohlcv("IXIC", nasdaq.load())


def _vix() -> Bars:
    from arch.data import vix

    series = vix.load()["vix"].dropna()
    close = series.to_numpy(np.float64)
    return Bars(
        "VIX",
        SAMPLE_INTERVAL,
        series.index.values.astype("datetime64[ns]"),
        close.copy(),
        close.copy(),
        close.copy(),
        close.copy(),
        np.zeros_like(close),
    )


def _goog() -> Bars:
    from backtesting.test import GOOG

    return _from_ohlcv("GOOG", GOOG)


SAMPLES: dict[str, Callable[[], Bars]] = {"SPX": _spx, "IXIC": _ixic, "VIX": _vix, "GOOG": _goog}


def sample_bars(symbol: str) -> Bars:
    """One sample series as Bars (without touching a database)."""
    try:
        loader = SAMPLES[symbol]
    except KeyError:
        raise InputError("symbol", symbol, f"not a sample series; samples: {', '.join(SAMPLES)}") from None
    try:
        return loader()
    except ImportError as exc:
        raise InputError("sample", symbol, f"needs the 'sample' extra (pip install 'ludus[sample]'): {exc}") from None


def load_sample(store: PriceStore) -> dict[str, int]:
    """Write every sample series (interval 1d), replacing what was there; returns rows per symbol."""
    return {symbol: store.write(sample_bars(symbol), replace=True) for symbol in SAMPLES}

"""Fixtures of the data tests: a price store on each backend, small synthetic bars."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from ludus.data.bars import Bars
from ludus.data.prices import PriceStore
from ludus.db.engine import make_engine


@pytest.fixture
def store(db_url: str) -> Iterator[PriceStore]:
    """A PriceStore on an empty database (SQLite file + attached Prices, or a fresh PostgreSQL database)."""
    engine = make_engine(db_url)
    yield PriceStore(engine)
    engine.dispose()


def make_bars(
    n: int = 10, symbol: str = "TEST", interval: str = "1d", start: str = "2020-01-01", seed: int = 0
) -> Bars:
    """A valid random walk of ``n`` daily bars."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    open_ = close * np.exp(rng.normal(0, 0.005, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, n))
    volume = rng.integers(1_000, 1_000_000, n).astype(np.float64)
    ts = np.datetime64(start, "ns") + np.arange(n) * np.timedelta64(1, "D")
    return Bars(symbol, interval, ts, open_, high, low, close, volume)


@pytest.fixture(name="make_bars")
def make_bars_fixture():
    """The :func:`make_bars` factory, for tests (test modules do not import conftest)."""
    return make_bars

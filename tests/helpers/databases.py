"""Databases as the CLI leaves them, and the real S&P 500 bars."""

from __future__ import annotations

import functools
from typing import Any


def migrate_and_load_sample(url: str) -> str:
    """A database as `ludus db upgrade` + `ludus data load-sample` leave it; returns ``url``."""
    from ludus.data.prices import PriceStore
    from ludus.data.sample import load_sample
    from ludus.db.engine import make_engine
    from ludus.db.migrate import upgrade

    upgrade(url)
    engine = make_engine(url)
    try:
        load_sample(PriceStore(engine))
    finally:
        engine.dispose()
    return url


def migrate_and_write(url: str, *bars: Any) -> str:
    """A migrated database holding just ``bars`` (ludus.data.bars.Bars) in its price tables; returns ``url``."""
    from ludus.data.prices import PriceStore
    from ludus.db.engine import make_engine
    from ludus.db.migrate import upgrade

    upgrade(url)
    engine = make_engine(url)
    try:
        store = PriceStore(engine)
        for b in bars:
            store.write(b)
    finally:
        engine.dispose()
    return url


@functools.lru_cache(maxsize=4)
def spx_bars(last: int | None = None) -> Any:
    """Real S&P 500 daily bars (arch.data.sp500) as Bars - the sample data's SPX - or their ``last`` bars."""
    from ludus.data.sample import sample_bars

    bars = sample_bars("SPX")
    return bars if last is None else bars.slice(max(0, len(bars) - last))

"""The price store contract, the same tests on SQLite and the real PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import numpy as np
import pytest
import sqlalchemy as sa

from ludus.constants import PRICES_SCHEMA
from ludus.data.prices import PriceStore
from ludus.errors import InputError, UnknownSymbolError


def _assert_same(a, b) -> None:
    assert (a.symbol, a.interval) == (b.symbol, b.interval)
    np.testing.assert_array_equal(a.timestamps, b.timestamps)
    for f in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f))
        assert getattr(a, f).dtype == np.float64


def test_write_then_read_round_trips_exactly(store: PriceStore, make_bars) -> None:
    bars = make_bars(50, symbol="SPX")
    assert store.write(bars) == 50
    got = store.read("SPX", "1d")
    _assert_same(got, bars)
    assert got.timestamps.dtype == np.dtype("datetime64[ns]")
    # The table sits in Delphi's layout: schema Prices, table SPX_1d, columns in this order.
    insp = sa.inspect(store.engine)
    assert "SPX_1d" in insp.get_table_names(schema=PRICES_SCHEMA)
    cols = [c["name"] for c in insp.get_columns("SPX_1d", schema=PRICES_SCHEMA)]
    assert cols == ["Timestamp", "Open", "High", "Low", "Close", "Volume"]


def test_read_normalizes_case_and_windows(store: PriceStore, make_bars) -> None:
    bars = make_bars(30, symbol="SPX")
    store.write(bars)
    window = store.read("spx", "1D", start="2020-01-05", end=datetime(2020, 1, 9))
    _assert_same(window, bars.slice(4, 9))
    # An aware bound is converted to UTC: 2020-01-10 01:00+02:00 is 2020-01-09 23:00 UTC.
    aware = datetime.fromisoformat("2020-01-10T01:00:00+02:00")
    assert str(store.read("SPX", "1d", end=aware).timestamps[-1])[:10] == "2020-01-09"
    _assert_same(store.read("SPX", "1d", last_n=5), bars.slice(25, 30))
    _assert_same(store.read("SPX", "1d", end=np.datetime64("2020-01-10"), last_n=3), bars.slice(7, 10))
    assert len(store.read("SPX", "1d", start="2030-01-01")) == 0
    with pytest.raises(InputError, match="last_n"):
        store.read("SPX", "1d", last_n=0)
    with pytest.raises(InputError, match="start"):
        store.read("SPX", "1d", start="yesterday")


def test_unknown_symbol_names_it_and_lists_available(store: PriceStore, make_bars) -> None:
    with pytest.raises(UnknownSymbolError, match="none"):
        store.read("SPX", "1d")
    store.write(make_bars(5, symbol="SPX"))
    store.write(make_bars(5, symbol="VIX"))
    with pytest.raises(UnknownSymbolError) as info:
        store.read("QQQ", "1d")
    assert info.value.symbol == "QQQ" and info.value.available == ["SPX_1d", "VIX_1d"]
    assert "QQQ" in str(info.value) and "SPX_1d, VIX_1d" in str(info.value)
    with pytest.raises(UnknownSymbolError):
        store.read("SPX", "1h")


@pytest.mark.parametrize(
    "symbol,interval",
    [
        ("SPX; DROP TABLE x", "1d"),
        ("SPX", "1d; DROP TABLE x"),
        ('SPX"."x', "1d"),
        ("SP X", "1d"),
        ("../SPX", "1d"),
    ],
)
def test_hostile_symbols_are_rejected_before_any_sql(store: PriceStore, symbol: str, interval: str, make_bars) -> None:
    with pytest.raises(InputError) as info:
        store.read(symbol, interval)
    assert not isinstance(info.value, UnknownSymbolError)
    with pytest.raises(InputError):
        store.write(replace(make_bars(3), symbol=symbol, interval=interval))
    assert store.available() == []


def test_replace_and_merge(store: PriceStore, make_bars) -> None:
    bars = make_bars(20, symbol="SPX")
    store.write(bars)
    store.write(bars)  # writing the same bars again duplicates nothing
    assert len(store.read("SPX", "1d")) == 20
    # Merge: a later span overlapping the tail replaces the overlap and extends the series.
    later = make_bars(10, symbol="SPX", start="2020-01-16", seed=7)
    assert store.write(later) == 10
    got = store.read("SPX", "1d")
    assert len(got) == 25
    _assert_same(got.slice(0, 15), bars.slice(0, 15))
    _assert_same(got.slice(15, 25), later)
    # Replace: exactly the given bars remain.
    store.write(later, replace=True)
    _assert_same(store.read("SPX", "1d"), later)


def test_invalid_bars_write_nothing(store: PriceStore, make_bars) -> None:
    good = make_bars(10, symbol="SPX")
    store.write(good)
    bad_close = good.close.copy()
    bad_close[3] = np.nan
    with pytest.raises(InputError, match="row 3"):
        store.write(replace(good, close=bad_close), replace=True)
    _assert_same(store.read("SPX", "1d"), good)
    with pytest.raises(InputError):
        store.write(replace(make_bars(5, symbol="NEW"), volume=-np.ones(5)))
    assert store.available() == ["SPX_1d"]


def test_available_describe_drop(store: PriceStore, make_bars) -> None:
    store.write(make_bars(10, symbol="SPX"))
    store.write(make_bars(4, symbol="SPX", interval="1h"))
    store.write(make_bars(7, symbol="GOOG"))
    assert store.available() == ["GOOG_1d", "SPX_1d", "SPX_1h"]
    assert store.available("1d") == ["GOOG_1d", "SPX_1d"]
    info = {i.table: i for i in store.describe()}
    assert info["SPX_1d"].rows == 10 and info["SPX_1h"].rows == 4
    assert info["GOOG_1d"].first == datetime(2020, 1, 1) and info["GOOG_1d"].last == datetime(2020, 1, 7)
    assert (info["SPX_1h"].symbol, info["SPX_1h"].interval) == ("SPX", "1h")
    assert store.drop("SPX", "1h") is True and store.drop("SPX", "1h") is False
    assert store.available() == ["GOOG_1d", "SPX_1d"]


def test_foreign_tables_in_prices_schema_are_ignored(store: PriceStore, make_bars) -> None:
    with store.engine.begin() as conn:
        if conn.dialect.name != "sqlite":
            conn.execute(sa.schema.CreateSchema(PRICES_SCHEMA, if_not_exists=True))
        conn.exec_driver_sql('CREATE TABLE "Prices"."lookup" (x INTEGER)')
    store.write(make_bars(3, symbol="SPX"))
    assert store.available() == ["SPX_1d"]


def test_bulk_write_and_read_are_batched(store: PriceStore, make_bars) -> None:
    """5,000 rows go in and come out in a handful of statements, not one per row (what keeps them fast;
    the time itself is a benchmark's business, not a test's)."""
    statements: list[tuple[str, bool]] = []

    def count(conn, cursor, statement, parameters, context, executemany) -> None:
        statements.append((statement, executemany))

    bars = make_bars(5_000, symbol="BULK")
    sa.event.listen(store.engine, "before_cursor_execute", count)
    try:
        store.write(bars)
        written = len(statements)
        got = store.read("BULK", "1d")
    finally:
        sa.event.remove(store.engine, "before_cursor_execute", count)
    assert len(got) == 5_000
    assert written <= 20, [s for s, _ in statements[:25]]
    assert len(statements) - written <= 5, [s for s, _ in statements[written:]]


def test_timestamps_are_utc(store: PriceStore, make_bars) -> None:
    """Bars carry naive UTC; what goes in comes back identical whatever the session time zone."""
    bars = make_bars(3, symbol="UTC")
    bars = replace(bars, timestamps=bars.timestamps + np.timedelta64(23, "h"))
    store.write(bars)
    with store.engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            # Committed, so the pooled session keeps it for the read below.
            conn.exec_driver_sql("SET TIME ZONE 'America/New_York'")
            conn.commit()
    _assert_same(store.read("UTC", "1d"), bars)
    aware_end = datetime(2020, 1, 1, 23, 0, tzinfo=timezone.utc)
    assert len(store.read("UTC", "1d", end=aware_end)) == 1


def test_unreachable_database_is_one_transient_line() -> None:
    from ludus.db.engine import make_engine
    from ludus.errors import TransientError

    store = PriceStore(make_engine("postgresql+psycopg://ludus:secret@127.0.0.1:1/nowhere?connect_timeout=2"))
    with pytest.raises(TransientError) as info:
        store.available()
    assert "\n" not in str(info.value) and "secret" not in str(info.value) and "ludus:***@" in str(info.value)

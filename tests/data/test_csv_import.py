"""CSV import: whole-file validation, errors naming line/timestamp/rule, nothing written when bad."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ludus.data.csv_import import import_csv, read_csv
from ludus.data.prices import PriceStore
from ludus.errors import InputError

GOOD = """Date,Open,High,Low,Close,Adj Close,Volume
2020-01-02,10,11,9.5,10.5,10.4,1000
2020-01-03,10.5,10.9,10.1,10.2,10.1,1200
2020-01-06,10.2,10.8,10.0,10.7,10.6,900
"""


def _write(tmp_path: Path, text: str, name: str = "prices.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_import_good_file(store: PriceStore, tmp_path: Path) -> None:
    assert import_csv(_write(tmp_path, GOOD), "abc", "1d", store) == 3
    bars = store.read("ABC", "1d")
    assert [str(t)[:10] for t in bars.timestamps] == ["2020-01-02", "2020-01-03", "2020-01-06"]
    np.testing.assert_array_equal(bars.close, [10.5, 10.2, 10.7])
    np.testing.assert_array_equal(bars.volume, [1000, 1200, 900])


def test_column_names_are_case_insensitive_and_offsets_become_utc(tmp_path: Path) -> None:
    text = ("VOLUME,close,LOW,high,Open,timestamp\n"
            "5,10,9,11,10,2020-01-02T15:30:00-05:00\n"
            "6,10,9,11,10,2020-01-02T21:00:00Z\n")
    bars = read_csv(_write(tmp_path, text), "ABC", "1h")
    assert [str(t) for t in bars.timestamps] == ["2020-01-02T20:30:00.000000000", "2020-01-02T21:00:00.000000000"]
    np.testing.assert_array_equal(bars.volume, [5, 6])


@pytest.mark.parametrize("text,where,rule", [
    (GOOD.replace("10.2,10.8,10.0,10.7", "10.2,10.5,10.0,10.7"), "line 4=2020-01-06",
     "High must be >= max(Open, Close)"),
    (GOOD.replace("10.5,10.9,10.1,10.2", "10.5,10.9,10.3,10.2"), "line 3=2020-01-03",
     "Low must be <= min(Open, Close)"),
    (GOOD.replace("2020-01-06", "2020-01-03"), "line 4=2020-01-03", "strictly increasing"),
    (GOOD.replace("2020-01-03", "2020-01-01"), "line 3=2020-01-01", "strictly increasing"),
    (GOOD.replace(",1200", ",nan"), "line 3=2020-01-03", "Volume is missing (NaN)"),
    (GOOD.replace(",1200", ",-1"), "line 3=2020-01-03", "Volume must be >= 0"),
    (GOOD.replace("10,11,9.5,10.5", "-10,11,9.5,10.5"), "line 2=2020-01-02", "Open must be positive"),
    (GOOD.replace("10.5,10.9,10.1,10.2,", "10.5,10.9,10.1,,"), "line 3=2020-01-03", "Close is missing"),
    (GOOD.replace("10.5,10.9,10.1,10.2,", "10.5,10.9,10.1,abc,"), "line 3=2020-01-03", "Close is not a number"),
    (GOOD.replace("2020-01-03", "03/01/2020"), "line 3=03/01/2020", "not an ISO 8601"),
    (GOOD.replace("2020-01-03,", ","), "line 3=", "Timestamp is missing"),
    (GOOD + "2020-01-07,1,2\n", "line 5=", "has 3 fields"),
])
def test_bad_rows_are_named_and_nothing_is_written(store: PriceStore, tmp_path: Path, text: str, where: str,
                                                   rule: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(InputError) as info:
        import_csv(path, "ABC", "1d", store)
    msg = str(info.value)
    assert f"prices.csv {where}" in msg and rule in msg, msg
    assert store.available() == []  # the table was never created


def test_bad_file_leaves_existing_table_unchanged(store: PriceStore, tmp_path: Path) -> None:
    import_csv(_write(tmp_path, GOOD), "ABC", "1d", store)
    before = store.read("ABC", "1d")
    bad = GOOD.replace("2020-01-06,10.2,10.8", "2020-01-07,10.2,10.8") + "2020-01-08,1,1,1,1,1,-3\n"
    with pytest.raises(InputError, match="line 5=2020-01-08: Volume must be >= 0"):
        import_csv(_write(tmp_path, bad, "more.csv"), "ABC", "1d", store, replace=True)
    after = store.read("ABC", "1d")
    np.testing.assert_array_equal(after.timestamps, before.timestamps)
    np.testing.assert_array_equal(after.close, before.close)


@pytest.mark.parametrize("text,rule", [
    ("", "is empty"),
    ("Date,Open,High,Low,Close,Volume\n", "no data rows"),
    ("Date,Open,High,Low,Close\n2020-01-02,1,1,1,1\n", "missing required column(s) volume"),
    ("Open,High,Low,Close,Volume\n1,1,1,1,1\n", "missing required column(s) timestamp"),
    ("Date,Timestamp,Open,High,Low,Close,Volume\n", "ambiguous timestamp columns"),
    ("Date,Open,open,High,Low,Close,Volume\n", "'open' appears more than once"),
])
def test_structural_errors(store: PriceStore, tmp_path: Path, text: str, rule: str) -> None:
    with pytest.raises(InputError) as info:
        import_csv(_write(tmp_path, text), "ABC", "1d", store)
    assert rule in str(info.value)
    assert store.available() == []


def test_missing_file_and_hostile_symbol(store: PriceStore, tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot be read"):
        import_csv(tmp_path / "nope.csv", "ABC", "1d", store)
    with pytest.raises(InputError, match="symbol"):
        import_csv(_write(tmp_path, GOOD), "SPX; DROP TABLE x", "1d", store)
    assert store.available() == []

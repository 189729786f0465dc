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
    text = (
        "VOLUME,close,LOW,high,Open,timestamp\n"
        "5,10,9,11,10,2020-01-02T15:30:00-05:00\n"
        "6,10,9,11,10,2020-01-02T21:00:00Z\n"
    )
    bars = read_csv(_write(tmp_path, text), "ABC", "1h")
    assert [str(t) for t in bars.timestamps] == ["2020-01-02T20:30:00.000000000", "2020-01-02T21:00:00.000000000"]
    np.testing.assert_array_equal(bars.volume, [5, 6])


@pytest.mark.parametrize(
    "text,where,rule",
    [
        (
            GOOD.replace("10.2,10.8,10.0,10.7", "10.2,10.5,10.0,10.7"),
            "line 4=2020-01-06",
            "High must be >= max(Open, Close)",
        ),
        (
            GOOD.replace("10.5,10.9,10.1,10.2", "10.5,10.9,10.3,10.2"),
            "line 3=2020-01-03",
            "Low must be <= min(Open, Close)",
        ),
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
    ],
)
def test_bad_rows_are_named_and_nothing_is_written(
    store: PriceStore, tmp_path: Path, text: str, where: str, rule: str
) -> None:
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


@pytest.mark.parametrize(
    "text,rule",
    [
        ("", "is empty"),
        ("Date,Open,High,Low,Close,Volume\n", "no data rows"),
        ("Date,Open,High,Low,Close\n2020-01-02,1,1,1,1\n", "missing required column(s) volume"),
        ("Open,High,Low,Close,Volume\n1,1,1,1,1\n", "missing required column(s) timestamp"),
        ("Date,Timestamp,Open,High,Low,Close,Volume\n", "ambiguous timestamp columns"),
        ("Date,Open,open,High,Low,Close,Volume\n", "'open' appears more than once"),
    ],
)
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


def _minutes(n: int, start: str = "2021-03-01T14:30", bad: dict[int, str] | None = None) -> str:
    """n one-minute bars as CSV text; ``bad`` replaces whole data lines (0-based row -> line text)."""
    t0 = np.datetime64(start)
    lines = ["Timestamp,Open,High,Low,Close,Volume"]
    for i in range(n):
        p = 100 + (i % 7) * 0.25
        lines.append(f"{t0 + np.timedelta64(i, 'm')},{p},{p + 0.5},{p - 0.5},{p + 0.1},{100 + i}")
    for row, text in (bad or {}).items():
        lines[row + 1] = text
    return "\n".join(lines) + "\n"


def test_streamed_import_equals_whole_file_and_reports_progress(store: PriceStore, tmp_path: Path) -> None:
    path = _write(tmp_path, _minutes(23))
    seen: list[tuple[int, int]] = []
    assert import_csv(path, "MIN", "1m", store, chunk_rows=4, on_progress=lambda d, n: seen.append((d, n))) == 23
    stored, whole = store.read("MIN", "1m"), read_csv(path, "MIN", "1m")
    np.testing.assert_array_equal(stored.timestamps, whole.timestamps)
    for field in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(stored, field), getattr(whole, field))
    assert len(seen) == 6 and seen[-1] == (path.stat().st_size,) * 2
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


@pytest.mark.parametrize(
    "bad_row,rule",
    [
        (17, "Volume must be >= 0"),  # in the fifth chunk of four rows
        (16, "strictly increasing"),  # first row of a chunk not after the previous chunk's last
    ],
)
def test_bad_row_in_a_later_chunk_writes_nothing(store: PriceStore, tmp_path: Path, bad_row: int, rule: str) -> None:
    text = _minutes(23)
    rows = text.splitlines()
    if rule.startswith("Volume"):
        broken = rows[bad_row + 1].rsplit(",", 1)[0] + ",-5"
    else:
        broken = rows[bad_row].split(",", 1)[0] + "," + rows[bad_row + 1].split(",", 1)[1]  # repeats a stamp
    path = _write(tmp_path, _minutes(23, bad={bad_row: broken}))
    with pytest.raises(InputError) as info:
        import_csv(path, "MIN", "1m", store, chunk_rows=4)
    assert f"prices.csv line {bad_row + 2}=" in str(info.value) and rule in str(info.value)
    assert store.available() == []  # the table the import created is gone
    import_csv(_write(tmp_path, _minutes(5), "first.csv"), "MIN", "1m", store)
    with pytest.raises(InputError):
        import_csv(path, "MIN", "1m", store, chunk_rows=4, replace=True)
    assert len(store.read("MIN", "1m")) == 5  # an existing table keeps every row


def test_streamed_merge_replaces_the_whole_span(store: PriceStore, tmp_path: Path) -> None:
    """Stored rows between two chunks of the file (inside its span) go, rows outside the span stay."""
    import_csv(_write(tmp_path, _minutes(30)), "MIN", "1m", store)
    sparse = [line for i, line in enumerate(_minutes(30).splitlines()) if i == 0 or (5 <= i <= 20 and i % 5 == 0)]
    assert import_csv(_write(tmp_path, "\n".join(sparse) + "\n", "sparse.csv"), "MIN", "1m", store, chunk_rows=1) == 4
    stamps = [str(t)[11:16] for t in store.read("MIN", "1m").timestamps]
    assert stamps[:4] == ["14:30", "14:31", "14:32", "14:33"]  # before the span: kept
    assert stamps[4:8] == ["14:34", "14:39", "14:44", "14:49"]  # inside: exactly the file's rows
    assert stamps[8] == "14:50" and len(stamps) == 8 + 10  # after: kept

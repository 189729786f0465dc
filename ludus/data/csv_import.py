"""Import OHLCV bars from CSV: the whole file is checked before anything is written.

Columns (names case-insensitive, extra columns ignored): Timestamp (or Date/Datetime/Time), Open, High, Low,
Close, Volume. Timestamps are ISO 8601 dates or date-times; ones with a UTC offset are converted to UTC,
naive ones are taken as UTC. Errors name the file's line number, the timestamp and the rule.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ludus.data.bars import Bars
from ludus.data.prices import PriceStore
from ludus.data.symbols import validate_interval, validate_symbol
from ludus.data.validation import validate_bars
from ludus.errors import InputError

TIMESTAMP_ALIASES = ("timestamp", "date", "datetime", "time")
VALUE_COLUMNS = ("open", "high", "low", "close", "volume")


def read_csv(path: str | Path, symbol: str, interval: str) -> Bars:
    """Parse and validate a CSV file into Bars (InputError naming the line and the rule)."""
    symbol, interval = validate_symbol(symbol), validate_interval(interval)
    path = Path(path)
    name = path.name
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InputError("file", str(path), f"cannot be read: {exc.strerror or exc}") from None
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise InputError("file", str(path), "is empty (expected a header line)") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{name} line 1", "-", f"unreadable CSV: {exc}") from None
        index = _column_index(header, name)
        stamps: list[datetime] = []
        values: list[list[float]] = []
        lines: list[int] = []
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank lines carry no bar
                if len(row) < len(header):
                    raise InputError(f"{name} line {line}", ",".join(row),
                                     f"has {len(row)} fields, the header has {len(header)}")
                raw_ts = row[index["timestamp"]].strip()
                stamps.append(_parse_timestamp(raw_ts, f"{name} line {line}"))
                values.append([_parse_number(row[index[c]], c, raw_ts, f"{name} line {line}")
                               for c in VALUE_COLUMNS])
                lines.append(line)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{name} line {reader.line_num}", "-", f"unreadable CSV: {exc}") from None
    if not stamps:
        raise InputError("file", str(path), "has a header but no data rows")
    arr = np.array(values, dtype=np.float64)
    bars = Bars(symbol, interval, np.array(stamps, dtype="datetime64[ns]"), *(arr[:, i].copy() for i in range(5)))
    validate_bars(bars, row_label=lambda i: f"{name} line {lines[i]}")
    return bars


def import_csv(path: str | Path, symbol: str, interval: str, store: PriceStore, *, replace: bool = False) -> int:
    """Validate the whole file, then write it in one transaction; nothing is written when the file is bad."""
    bars = read_csv(path, symbol, interval)
    return store.write(bars, replace=replace)


def _column_index(header: list[str], name: str) -> dict[str, int]:
    lowered = [h.strip().lower() for h in header]
    index: dict[str, int] = {}
    for col in VALUE_COLUMNS:
        if lowered.count(col) > 1:
            raise InputError(f"{name} line 1", ",".join(header), f"column {col!r} appears more than once")
        if col in lowered:
            index[col] = lowered.index(col)
    ts_cols = [alias for alias in TIMESTAMP_ALIASES if alias in lowered]
    if len(ts_cols) > 1:
        raise InputError(f"{name} line 1", ",".join(header), f"ambiguous timestamp columns {ts_cols}")
    if ts_cols:
        index["timestamp"] = lowered.index(ts_cols[0])
    missing = [c for c in ("timestamp", *VALUE_COLUMNS) if c not in index]
    if missing:
        raise InputError(f"{name} line 1", ",".join(header),
                         f"missing required column(s) {', '.join(missing)} (need Timestamp or Date, "
                         "Open, High, Low, Close, Volume; names are case-insensitive)")
    return index


def _parse_timestamp(raw: str, where: str) -> datetime:
    if not raw:
        raise InputError(where, raw, "Timestamp is missing")
    try:
        dt = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InputError(where, raw, "Timestamp is not an ISO 8601 date or date-time") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


def _parse_number(raw: str, column: str, stamp: str, where: str) -> float:
    text = raw.strip()
    if not text:
        raise InputError(where, stamp, f"{column.capitalize()} is missing")
    try:
        return float(text)
    except ValueError:
        raise InputError(where, stamp, f"{column.capitalize()} is not a number: {text!r}") from None

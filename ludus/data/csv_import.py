"""Import OHLCV bars from CSV, streamed: chunks of rows are parsed, validated and written as they come.

Columns (names case-insensitive, extra columns ignored): Timestamp (or Date/Datetime/Time), Open, High, Low,
Close, Volume. Timestamps are ISO 8601 dates or date-times; ones with a UTC offset are converted to UTC,
naive ones are taken as UTC. Errors name the file's line number, the timestamp and the rule.

Nothing is written when a row is bad: the chunks go into one database transaction
(``PriceStore.write_chunks``) as they are validated, and the first bad row raises before it commits, which
rolls everything back (and drops a table the import created). Memory is one chunk of rows
(``CHUNK_ROWS``), whatever the file's size.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from contextlib import closing
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
CHUNK_ROWS = 65_536

Progress = Callable[[int, int], None]  # (bytes read, file size)


class CsvBars:
    """An open CSV file of bars whose header is checked; ``chunks()`` yields validated Bars of at most
    ``chunk_rows`` rows each, every one strictly after the previous (InputError naming the line at the
    first bad row). ``close()`` it (``contextlib.closing``)."""

    def __init__(
        self,
        path: str | Path,
        symbol: str,
        interval: str,
        *,
        chunk_rows: int = CHUNK_ROWS,
        on_progress: Progress | None = None,
    ) -> None:
        self.symbol, self.interval = validate_symbol(symbol), validate_interval(interval)
        self.path = Path(path)
        self.name = self.path.name
        self.chunk_rows = int(chunk_rows)
        self.on_progress = on_progress
        try:
            self._raw = self.path.open("rb")
            self.size = self.path.stat().st_size
        except OSError as exc:
            raise InputError("file", str(self.path), f"cannot be read: {exc.strerror or exc}") from None
        self._text = io.TextIOWrapper(self._raw, encoding="utf-8-sig", newline="")
        self._reader = csv.reader(self._text)
        try:
            self.header = next(self._reader)
        except StopIteration:
            self.close()
            raise InputError("file", str(self.path), "is empty (expected a header line)") from None
        except (csv.Error, UnicodeDecodeError) as exc:
            self.close()
            raise InputError(f"{self.name} line 1", "-", f"unreadable CSV: {exc}") from None
        try:
            self.index = _column_index(self.header, self.name)
        except InputError:
            self.close()
            raise

    def close(self) -> None:
        self._text.close()

    def chunks(self) -> Iterator[Bars]:
        reader, index, name, width = self._reader, self.index, self.name, len(self.header)
        ts_col = index["timestamp"]
        cols = [index[c] for c in VALUE_COLUMNS]
        previous: tuple[np.datetime64, np.ndarray, int] | None = None  # the last bar yielded and its line
        stamps: list[datetime] = []
        values: list[list[float]] = []
        lines: list[int] = []
        total = 0
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not cell.strip() for cell in row):
                    continue  # blank lines carry no bar
                if len(row) < width:
                    raise InputError(
                        f"{name} line {line}", ",".join(row), f"has {len(row)} fields, the header has {width}"
                    )
                raw_ts = row[ts_col].strip()
                where = f"{name} line {line}"
                stamps.append(_parse_timestamp(raw_ts, where))
                values.append(
                    [_parse_number(row[c], col, raw_ts, where) for c, col in zip(cols, VALUE_COLUMNS, strict=True)]
                )
                lines.append(line)
                if len(stamps) >= self.chunk_rows:
                    previous = yield from self._emit(stamps, values, lines, previous)
                    total += len(lines)
                    stamps, values, lines = [], [], []
        except (csv.Error, UnicodeDecodeError) as exc:
            raise InputError(f"{name} line {reader.line_num}", "-", f"unreadable CSV: {exc}") from None
        if stamps:
            yield from self._emit(stamps, values, lines, previous)
            total += len(lines)
        if total == 0:
            raise InputError("file", str(self.path), "has a header but no data rows")

    def _emit(self, stamps, values, lines, previous):
        arr = np.array(values, dtype=np.float64).reshape(len(values), 5)
        ts = np.array(stamps, dtype="datetime64[ns]")
        cols = [np.ascontiguousarray(arr[:, i]) for i in range(5)]
        if previous is None:
            check = Bars(self.symbol, self.interval, ts, *cols)
            labels = lines
        else:  # the previous chunk's last (valid) bar first: order across chunks is checked like within one
            last_ts, last_values, last_line = previous
            check = Bars(
                self.symbol,
                self.interval,
                np.concatenate([[last_ts], ts]),
                *(np.concatenate([[last_values[i]], cols[i]]) for i in range(5)),
            )
            labels = [last_line, *lines]
        validate_bars(check, row_label=lambda i: f"{self.name} line {labels[i]}")
        yield Bars(self.symbol, self.interval, ts, *cols)
        if self.on_progress is not None:
            self.on_progress(min(self._raw.tell(), self.size), self.size)
        return ts[-1], arr[-1].copy(), lines[-1]


def read_csv(path: str | Path, symbol: str, interval: str) -> Bars:
    """Parse and validate a whole CSV file into Bars (InputError naming the line and the rule)."""
    with closing(CsvBars(path, symbol, interval)) as source:
        chunks = list(source.chunks())
    return Bars(
        chunks[0].symbol,
        chunks[0].interval,
        np.concatenate([c.timestamps for c in chunks]),
        *(np.concatenate([getattr(c, f) for c in chunks]) for f in ("open", "high", "low", "close", "volume")),
    )


def import_csv(
    path: str | Path,
    symbol: str,
    interval: str,
    store: PriceStore,
    *,
    replace: bool = False,
    chunk_rows: int = CHUNK_ROWS,
    on_progress: Progress | None = None,
) -> int:
    """Stream the file into the store in one transaction; nothing is written when the file is bad (see the
    module docstring). ``on_progress(bytes_read, file_size)`` follows the file."""
    with closing(CsvBars(path, symbol, interval, chunk_rows=chunk_rows, on_progress=on_progress)) as source:
        return store.write_chunks(source.symbol, source.interval, source.chunks(), replace=replace)


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
        raise InputError(
            f"{name} line 1",
            ",".join(header),
            f"missing required column(s) {', '.join(missing)} (need Timestamp or Date, "
            "Open, High, Low, Close, Volume; names are case-insensitive)",
        )
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

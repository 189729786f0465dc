"""The price store in Delphi's layout: schema ``Prices``, one table ``{SYMBOL}_{INTERVAL}`` per series.

Columns Timestamp (naive UTC), Open, High, Low, Close, Volume; Timestamp is the primary key. Backend mapping
(SQL Server ``[Prices].[SPX_1d]``, PostgreSQL ``"Prices"."SPX_1d"``, SQLite: an attached sibling file named
``Prices``) is described in :mod:`ludus.db.engine`. Symbols and intervals pass :mod:`ludus.data.symbols`
before any table name is formed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timezone

import numpy as np
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from ludus.constants import PRICES_SCHEMA
from ludus.data.bars import Bars
from ludus.data.symbols import INTERVAL_PATTERN, SYMBOL_PATTERN, validate_interval, validate_symbol
from ludus.data.validation import validate_bars
from ludus.db.engine import database_errors
from ludus.db.schema import price_table
from ludus.errors import InputError, UnknownSymbolError

TimeLike = datetime | date | str | np.datetime64


@dataclass(frozen=True)
class PriceTableInfo:
    """One price table: what ``ludus data list`` shows."""

    symbol: str
    interval: str
    table: str
    first: datetime | None
    last: datetime | None
    rows: int


class PriceStore:
    """Read and write OHLCV bars; every method opens its own short transaction on ``engine``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- reading ---------------------------------------------------------------------------------------

    def read(
        self,
        symbol: str,
        interval: str,
        *,
        start: TimeLike | None = None,
        end: TimeLike | None = None,
        last_n: int | None = None,
    ) -> Bars:
        """Bars with ``start <= Timestamp <= end`` (both optional), or only the last ``last_n`` of them.

        Raises UnknownSymbolError (listing what is available) when the table does not exist.
        """
        symbol, interval = validate_symbol(symbol), validate_interval(interval)
        if last_n is not None and (isinstance(last_n, bool) or not isinstance(last_n, int) or last_n < 1):
            raise InputError("last_n", last_n, "must be a positive integer")
        table = price_table(symbol, interval)
        query = select_window(table, start=_to_naive_utc(start, "start"), end=_to_naive_utc(end, "end"), last_n=last_n)
        with database_errors(self.engine.url), self.engine.connect() as conn:
            if not _has_table(conn, table.name):
                raise UnknownSymbolError(symbol, interval, self._available(conn))
            rows = list(conn.execute(query).all())
        if last_n:
            rows.reverse()
        return _bars_from_rows(symbol, interval, rows)

    def available(self, interval: str | None = None) -> list[str]:
        """Names of the price tables (``SPX_1d``), sorted; only ``interval`` when given."""
        if interval is not None:
            interval = validate_interval(interval)
        with database_errors(self.engine.url), self.engine.connect() as conn:
            names = self._available(conn)
        return [n for n in names if interval is None or n.rsplit("_", 1)[1] == interval]

    def describe(self) -> list[PriceTableInfo]:
        """Every price table with its first/last bar and row count."""
        out = []
        with database_errors(self.engine.url), self.engine.connect() as conn:
            for name in self._available(conn):
                symbol, interval = name.rsplit("_", 1)
                table = price_table(symbol, interval)
                ts = table.c.Timestamp
                first, last, rows = conn.execute(sa.select(sa.func.min(ts), sa.func.max(ts), sa.func.count())).one()
                out.append(PriceTableInfo(symbol, interval, name, first, last, int(rows)))
        return out

    # --- writing ---------------------------------------------------------------------------------------

    def write(self, bars: Bars, *, replace: bool = False) -> int:
        """Validate and store ``bars``; returns the rows written.

        ``replace=True`` makes the table hold exactly ``bars``. Otherwise the bars are merged: stored rows
        inside ``bars``' time span are replaced by it, rows outside the span stay. Either way it is one
        transaction, so a failure leaves the table as it was (or absent).
        """
        symbol, interval = validate_symbol(bars.symbol), validate_interval(bars.interval)
        validate_bars(bars)
        table = price_table(symbol, interval)
        rows = _rows_from_bars(bars)
        with database_errors(self.engine.url), self.engine.begin() as conn:
            _ensure_prices_schema(conn)
            table.create(conn, checkfirst=True)
            ts = table.c.Timestamp
            if replace:
                conn.execute(table.delete())
            else:
                conn.execute(table.delete().where(ts >= rows[0]["Timestamp"], ts <= rows[-1]["Timestamp"]))
            conn.execute(table.insert(), rows)
        return len(rows)

    def write_chunks(self, symbol: str, interval: str, chunks: Iterable[Bars], *, replace: bool = False) -> int:
        """Store consecutive chunks of bars (each strictly after the previous one) in one transaction, with
        the same merge rule as ``write`` over their whole span; returns the rows written.

        The chunks are consumed while the transaction is open, so a producer that streams a file holds one
        chunk in memory at a time. If it raises (a bad row found half-way), nothing is written: the
        transaction rolls back and a table this call created is dropped (SQLite commits DDL at once).
        """
        symbol, interval = validate_symbol(symbol), validate_interval(interval)
        table = price_table(symbol, interval)
        created = False
        written = 0
        try:
            with database_errors(self.engine.url), self.engine.begin() as conn:
                _ensure_prices_schema(conn)
                created = not _has_table(conn, table.name)
                table.create(conn, checkfirst=True)
                ts = table.c.Timestamp
                if replace:
                    conn.execute(table.delete())
                last = None
                for bars in chunks:
                    if len(bars) == 0:
                        continue
                    if (bars.symbol, bars.interval) != (symbol, interval):
                        raise ValueError(f"chunk of {bars.symbol}_{bars.interval} in a write of {symbol}_{interval}")
                    validate_bars(bars)
                    rows = _rows_from_bars(bars)
                    if last is not None and rows[0]["Timestamp"] <= last:
                        raise InputError(
                            f"{symbol}_{interval}", rows[0]["Timestamp"], "chunks must follow each other in time"
                        )
                    if not replace:  # the stored rows of the span so far, gaps between chunks included
                        after = ts > last if last is not None else ts >= rows[0]["Timestamp"]
                        conn.execute(table.delete().where(after, ts <= rows[-1]["Timestamp"]))
                    conn.execute(table.insert(), rows)
                    last = rows[-1]["Timestamp"]
                    written += len(rows)
        except BaseException:
            if created:
                with database_errors(self.engine.url), self.engine.begin() as conn:
                    if _has_table(conn, table.name):
                        table.drop(conn)
            raise
        return written

    def drop(self, symbol: str, interval: str) -> bool:
        """Drop a price table; False when it did not exist."""
        table = price_table(validate_symbol(symbol), validate_interval(interval))
        with database_errors(self.engine.url), self.engine.begin() as conn:
            if not _has_table(conn, table.name):
                return False
            table.drop(conn)
        return True

    @staticmethod
    def _available(conn: Connection) -> list[str]:
        names = sa.inspect(conn).get_table_names(schema=PRICES_SCHEMA)
        # Tables that do not follow the naming rule (someone else's) are not price series to us.
        return sorted(n for n in names if _is_price_table_name(n))


def select_window(
    table: sa.Table, *, start: datetime | None = None, end: datetime | None = None, last_n: int | None = None
) -> sa.Select:
    """SELECT of the OHLCV columns in a time window; ``last_n`` gives the newest rows (in descending order)."""
    ts = table.c.Timestamp
    query = sa.select(ts, table.c.Open, table.c.High, table.c.Low, table.c.Close, table.c.Volume)
    if start is not None:
        query = query.where(ts >= start)
    if end is not None:
        query = query.where(ts <= end)
    return query.order_by(ts.desc()).limit(last_n) if last_n else query.order_by(ts)


def _is_price_table_name(name: str) -> bool:
    symbol, sep, interval = name.rpartition("_")
    return bool(sep) and bool(SYMBOL_PATTERN.fullmatch(symbol)) and bool(INTERVAL_PATTERN.fullmatch(interval))


def _has_table(conn: Connection, name: str) -> bool:
    return sa.inspect(conn).has_table(name, schema=PRICES_SCHEMA)


def _ensure_prices_schema(conn: Connection) -> None:
    # SQLite attaches it on connect; a server database that never saw `ludus db upgrade` gets it here.
    if conn.dialect.name == "sqlite":
        return
    if PRICES_SCHEMA not in sa.inspect(conn).get_schema_names():
        conn.execute(sa.schema.CreateSchema(PRICES_SCHEMA))


def _rows_from_bars(bars: Bars) -> list[dict]:
    stamps = np.asarray(bars.timestamps).astype("datetime64[us]").astype(object)
    cols = [np.asarray(getattr(bars, f), dtype=np.float64).tolist() for f in ("open", "high", "low", "close", "volume")]
    return [
        {"Timestamp": t, "Open": o, "High": h, "Low": lo, "Close": c, "Volume": v}
        for t, o, h, lo, c, v in zip(stamps, *cols, strict=True)
    ]


def _bars_from_rows(symbol: str, interval: str, rows: list) -> Bars:
    n = len(rows)
    ts = np.array([r[0] for r in rows], dtype="datetime64[ns]") if n else np.empty(0, "datetime64[ns]")
    values = np.array([r[1:] for r in rows], dtype=np.float64).reshape(n, 5)
    return Bars(symbol, interval, ts, *(np.ascontiguousarray(values[:, i]) for i in range(5)))


def _to_naive_utc(value: TimeLike | None, field: str) -> datetime | None:
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            dt = value
        elif isinstance(value, date):
            dt = datetime(value.year, value.month, value.day)
        elif isinstance(value, str):
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        elif isinstance(value, np.datetime64):
            dt = value.astype("datetime64[us]").astype(datetime)
        else:
            raise TypeError(type(value).__name__)
    except (TypeError, ValueError) as exc:
        raise InputError(field, value, f"not a date/time ({exc})") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt

"""`ludus data ...`: load the sample, import CSV, list tables."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ludus.cli.common import console, print_table

app = typer.Typer(no_args_is_help=True)


def _store():
    from ludus.config import get_settings
    from ludus.data.prices import PriceStore
    from ludus.db.engine import make_engine

    return PriceStore(make_engine(get_settings().database_url))


@app.command("load-sample", help="Load real daily OHLCV shipped by packages: SPX, IXIC, VIX, GOOG (1d).")
def load_sample_cmd() -> None:
    from ludus.data.sample import load_sample

    counts = load_sample(_store())
    for symbol, rows in counts.items():
        console.print(f"loaded {symbol}_1d: {rows} bars")


@app.command("import", help="Import OHLCV bars from a CSV file (validated; nothing is written when it is bad).")
def import_cmd(
    file: Annotated[Path, typer.Argument(help="CSV with Timestamp (or Date), Open, High, Low, Close, Volume")],
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="symbol, e.g. SPY")],
    interval: Annotated[str, typer.Option("--interval", "-i", help="bar interval, e.g. 1d, 1h, 5m")] = "1d",
    replace: Annotated[bool, typer.Option("--replace", help="replace the whole table instead of merging")] = False,
) -> None:
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    from ludus.data.csv_import import import_csv
    from ludus.data.symbols import table_name

    name = table_name(symbol, interval)  # validates both before anything else happens
    store = _store()
    progress = Progress(
        TextColumn(f"importing {file.name}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )
    with progress:
        task = progress.add_task("rows", total=None)
        rows = import_csv(
            file,
            symbol,
            interval,
            store,
            replace=replace,
            on_progress=lambda done, size: progress.update(task, completed=done, total=size),
        )
    console.print(f"imported {rows} bars into Prices.{name}")


@app.command("list", help="List price tables: symbol, interval, first and last bar, rows.")
def list_cmd() -> None:
    infos = _store().describe()
    if not infos:
        console.print("no price tables yet: run `ludus data load-sample` or `ludus data import`")
        return
    table = Table("symbol", "interval", "first bar", "last bar", "rows", title="Prices")
    for info in infos:
        table.add_row(info.symbol, info.interval, _fmt(info.first), _fmt(info.last), f"{info.rows:,}")
    print_table(table)


def _fmt(value) -> str:
    if value is None:
        return "-"
    text = value.isoformat(sep=" ")
    return text[:10] if text.endswith("00:00:00") else text

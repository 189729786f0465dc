"""`ludus backtest`, `ludus sweep` and `ludus strategies`: the batched engine from the command line."""

from __future__ import annotations

import csv
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from ludus.cli.common import console, err_console, print_table
from ludus.errors import InputError

if TYPE_CHECKING:  # torch and the engine are imported inside the commands (fast `ludus --help`)
    from ludus.strategies.base import Strategy

SHOWN_METRICS = (
    "total_return",
    "cagr",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "trades",
    "turnover",
    "exposure",
)
SWEEP_METRICS = ("total_return", "sharpe", "sortino", "max_drawdown", "trades", "exposure")
LOWER_IS_BETTER = {"max_drawdown", "turnover", "trades"}
MAX_SAMPLES = 10_000_000  # a scrambled Sobol sample of more sets than this is not a sweep anyone waits for

StrategyOpt = Annotated[str, typer.Option("--strategy", "-s", help="strategy name (see `ludus strategies`)")]
SymbolOpt = Annotated[str, typer.Option("--symbol", help="symbol with a price table, e.g. SPX")]
IntervalOpt = Annotated[str, typer.Option("--interval", "-i", help="bar interval, e.g. 1d, 1h, 5m")]
StartOpt = Annotated[str | None, typer.Option("--start", help="first bar, ISO date (YYYY-MM-DD), inclusive")]
EndOpt = Annotated[str | None, typer.Option("--end", help="last bar, ISO date (YYYY-MM-DD), inclusive")]
CostOpt = Annotated[float, typer.Option("--cost-bps", help="cost per unit of position change, basis points")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (CUDA when present), cpu or cuda")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON instead of tables")]
CsvOpt = Annotated[bool, typer.Option("--csv", help="print the result as CSV instead of tables")]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("backtest", help="Backtest one parameter set of a strategy on one symbol; prints its metrics.")(
        backtest_command
    )
    app.command("sweep", help="Backtest N sampled parameter sets (or --grid) at once, batched; print the top K.")(
        sweep_command
    )
    app.command("strategies", help="List the strategies declared in trials/strategies/*.yaml.")(strategies_command)


# --- ludus backtest ---------------------------------------------------------------------------------------


def backtest_command(
    strategy: StrategyOpt,
    symbol: SymbolOpt,
    interval: IntervalOpt = "1d",
    start: StartOpt = None,
    end: EndOpt = None,
    params: Annotated[
        str | None, typer.Option("--params", help="comma-separated name=value list, e.g. fast=10,slow=50")
    ] = None,
    param: Annotated[
        list[str] | None,
        typer.Option("--param", "-p", help="name=value (repeatable); parameters not named take their defaults"),
    ] = None,
    cost_bps: CostOpt = 1.0,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
) -> None:
    from ludus.report.benchmark import BUY_AND_HOLD, buy_and_hold
    from ludus.strategies.engine import METRICS, run_backtest

    _one_format(as_json, as_csv)
    strat = _strategy(strategy)
    values = strat.space.validate(parse_params([*(param or []), *([params] if params else [])]))
    market, bars, bpy = _market(symbol, interval, start, end, device)
    result = run_backtest(strat, market, [values], cost_bps=cost_bps, bars_per_year=bpy)
    row = result.rows()[0]
    # the reference every trader asks for first: the same bars, held long, the same costs
    hold = buy_and_hold(market, cost_bps=cost_bps, bars_per_year=bpy).rows()[0]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "strategy": strat.name,
                    "symbol": bars.symbol,
                    "interval": bars.interval,
                    **_window(bars),
                    "parameters": values,
                    "cost_bps": cost_bps,
                    "device": market.device.type,
                    "metrics": {k: row[k] for k in METRICS},
                    BUY_AND_HOLD: {k: hold[k] for k in METRICS},
                },
                indent=2,
                default=_plain,
            )
        )
        return
    if as_csv:
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["metric", strat.name, BUY_AND_HOLD])
        out.writerows([k, repr(row[k]), repr(hold[k])] for k in METRICS)
        return
    console.print(f"{strat.name} on {bars.symbol} {bars.interval}: {_span(bars)}", highlight=False, soft_wrap=True)
    console.print(
        f"parameters: {_fmt_params(values)}   cost: {cost_bps:g} bps   device: {market.device.type}",
        highlight=False,
        soft_wrap=True,
    )
    table = Table("metric", "value", BUY_AND_HOLD.replace("_", "-"))
    for key in SHOWN_METRICS:
        table.add_row(key, fmt_metric(key, row[key]), fmt_metric(key, hold[key]))
    print_table(table)


# --- ludus sweep ------------------------------------------------------------------------------------------


def sweep_command(
    strategy: StrategyOpt,
    symbol: SymbolOpt,
    interval: IntervalOpt = "1d",
    start: StartOpt = None,
    end: EndOpt = None,
    samples: Annotated[
        int, typer.Option("--samples", "-n", help="parameter sets to sample (defaults included)")
    ] = 1000,
    grid: Annotated[
        bool, typer.Option("--grid", help="every valid combination of the declared grid instead of a sample")
    ] = False,
    max_grid: Annotated[int, typer.Option("--max-grid", help="refuse a --grid larger than this")] = 1_000_000,
    top: Annotated[int, typer.Option("--top", "-k", help="how many of the best sets to print")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="seed of the Sobol sample")] = 0,
    sort_by: Annotated[
        str, typer.Option("--sort-by", help="metric to rank by (max_drawdown, turnover, trades: lowest first)")
    ] = "sharpe",
    cost_bps: CostOpt = 1.0,
    device: DeviceOpt = "auto",
    as_json: JsonOpt = False,
    as_csv: CsvOpt = False,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="write a heatmap of --metric over --x and --y (every set swept) to this HTML file"),
    ] = None,
    x: Annotated[str | None, typer.Option("--x", help="parameter on the heatmap's x axis (default: the first)")] = None,
    y: Annotated[
        str | None, typer.Option("--y", help="parameter on the heatmap's y axis (default: the second)")
    ] = None,
    metric: Annotated[str | None, typer.Option("--metric", help="metric of the heatmap (default: --sort-by)")] = None,
) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ludus.strategies.engine import METRICS, run_backtest

    _one_format(as_json, as_csv)
    if sort_by not in METRICS:
        raise InputError("sort_by", sort_by, f"unknown metric; known: {', '.join(METRICS)}")
    if top < 1:
        raise InputError("top", top, "must be >= 1")
    if samples < 1:
        raise InputError("samples", samples, "must be >= 1")
    if samples > MAX_SAMPLES:
        raise InputError("samples", samples, f"must be <= {MAX_SAMPLES:,}")
    strat = _strategy(strategy)
    axes = _heatmap_axes(strat, x, y, metric or sort_by) if plot is not None else None
    sets = (
        strat.space.grid(max_points=max_grid) if grid else strat.space.sample(samples, seed=seed, include_defaults=True)
    )
    if not sets:
        raise InputError("grid", strategy, "the declared space has no valid combination")
    market, bars, bpy = _market(symbol, interval, start, end, device)

    # JSON/CSV own stdout: the bar goes to stderr then
    progress = Progress(
        TextColumn("backtesting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err_console if as_json or as_csv else console,
    )
    with progress:
        task = progress.add_task("sets", total=len(sets))
        began = time.perf_counter()
        result = run_backtest(
            strat,
            market,
            sets,
            cost_bps=cost_bps,
            bars_per_year=bpy,
            on_chunk=lambda done, total: progress.update(task, completed=done),
        )
        elapsed = time.perf_counter() - began

    rows = result.rows()
    order = sorted(range(len(rows)), key=lambda i: rows[i][sort_by], reverse=sort_by not in LOWER_IS_BETTER)
    if axes is not None:
        assert plot is not None
        path = _write_heatmap(plot, strat.name, bars, sets, rows, *axes, cost_bps)
        err_console.print(f"wrote {path}", highlight=False, soft_wrap=True)
    best: list[dict[str, Any]] = [
        {"rank": rank, "parameters": sets[i], **{m: rows[i][m] for m in METRICS}}
        for rank, i in enumerate(order[:top], start=1)
    ]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "strategy": strat.name,
                    "symbol": bars.symbol,
                    "interval": bars.interval,
                    **_window(bars),
                    "cost_bps": cost_bps,
                    "device": market.device.type,
                    "sort_by": sort_by,
                    "sets": len(rows),
                    "top": best,
                },
                indent=2,
                default=_plain,
            )
        )
        return
    if as_csv:
        names = [p.name for p in strat.space.params]
        out = csv.writer(sys.stdout, lineterminator="\n")
        out.writerow(["rank", *names, *METRICS])
        out.writerows(
            [b["rank"], *(_plain(b["parameters"][n]) for n in names), *(repr(b[m]) for m in METRICS)] for b in best
        )
        return
    console.print(
        f"top {min(top, len(rows))} of {len(rows)} {strat.name} sets on {bars.symbol} {bars.interval} "
        f"({_span(bars)}) by {sort_by}",
        highlight=False,
        soft_wrap=True,
    )
    table = Table("#", "parameters")
    for m in SWEEP_METRICS:
        table.add_column(m, justify="right", no_wrap=True)
    for rank, i in enumerate(order[:top], start=1):
        table.add_row(str(rank), _fmt_params(sets[i]), *(fmt_metric(m, rows[i][m]) for m in SWEEP_METRICS))
    print_table(table)
    rate = len(rows) * len(bars) / max(elapsed, 1e-9)
    console.print(
        f"{len(rows)} sets x {len(bars)} bars in {elapsed:.2f} s: {rate:,.0f} bar-evals/s "
        f"on {market.device.type}, cost {cost_bps:g} bps",
        highlight=False,
        soft_wrap=True,
    )


# --- ludus strategies -------------------------------------------------------------------------------------


def strategies_command() -> None:
    from ludus.config import get_settings
    from ludus.strategies.registry import get_strategy, list_strategies
    from ludus.strategies.space import CategoricalParam, FloatParam

    table = Table("name", "rule", "parameters (default)", "constraints", "description", show_lines=True)
    trials_dir = get_settings().trials_dir
    for name in list_strategies(trials_dir):
        strat = get_strategy(name, trials_dir)
        lines = []
        for p in strat.space.params:
            default = _fmt_value(strat.space.defaults[p.name])
            if isinstance(p, CategoricalParam):
                lines.append(f"{p.name}: {' | '.join(map(str, p.choices))} ({default})")
            else:
                kind = "float" if isinstance(p, FloatParam) else "int"
                step = f" step {_fmt_value(p.step)}" if p.step is not None else ""
                lines.append(f"{p.name}: {kind} {_fmt_value(p.low)}..{_fmt_value(p.high)}{step} ({default})")
        table.add_row(
            name, strat.rule, "\n".join(lines), "\n".join(map(str, strat.space.constraints)) or "-", strat.description
        )
    print_table(table)


def _heatmap_axes(strat: Strategy, x: str | None, y: str | None, metric: str) -> tuple[str, str, str]:
    """(x, y, metric) of --plot, checked before anything runs."""
    from ludus.strategies.engine import METRICS

    names = [p.name for p in strat.space.params]
    if len(names) < 2:
        raise InputError("plot", strat.name, "a heatmap needs a strategy with at least two parameters")
    x = x or next(n for n in names if n != y)
    y = y or next(n for n in names if n != x)
    for field, value in (("x", x), ("y", y)):
        if value not in names:
            raise InputError(field, value, f"not a parameter of {strat.name}; parameters: {', '.join(names)}")
    if x == y:
        raise InputError("y", y, "must differ from --x")
    if metric not in METRICS:
        raise InputError("metric", metric, f"unknown metric; known: {', '.join(METRICS)}")
    return x, y, metric


def _write_heatmap(
    path: Path,
    name: str,
    bars: Any,
    sets: list[dict[str, Any]],
    rows: list[dict[str, float]],
    x: str,
    y: str,
    metric: str,
    cost_bps: float,
) -> Path:
    from ludus.report.heatmap import heatmap_grid
    from ludus.report.render import heatmap_page

    grid = heatmap_grid(sets, [r[metric] for r in rows], x, y, metric, lower_is_better=metric in LOWER_IS_BETTER)
    others = (
        ""
        if grid.sets_per_cell <= 1
        else (
            f"; each cell shows the {'lowest' if metric in LOWER_IS_BETTER else 'best'} of up to "
            f"{grid.sets_per_cell} sets that differ in the other parameters"
        )
    )
    note = (
        f"{len(sets)} sets of {name} on {bars.symbol} {bars.interval} ({_span(bars)}), net of {cost_bps:g} bps"
        f"{others}; empty cells: no set swept there"
    )
    html = heatmap_page(
        f"{name} on {bars.symbol}: {metric} over {x} and {y}", x, y, grid.x, grid.y, grid.z, metric, note
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(html, encoding="utf-8")
    except OSError as exc:
        raise InputError("plot", str(path), f"cannot be written: {exc.strerror or exc}") from None
    return path


# --- helpers ----------------------------------------------------------------------------------------------


def _one_format(as_json: bool, as_csv: bool) -> None:
    if as_json and as_csv:
        raise InputError("csv", True, "--json and --csv exclude each other")


def _window(bars: Any) -> dict[str, Any]:
    return {"first": str(bars.timestamps[0])[:19], "last": str(bars.timestamps[-1])[:19], "bars": len(bars)}


def _plain(value: Any) -> Any:
    """numpy scalars and the like as JSON/CSV values."""
    return value.item() if hasattr(value, "item") else str(value)


def parse_params(items: list[str]) -> dict[str, str]:
    """``["fast=5", "mode=long_short,slow=50"]`` -> ``{"fast": "5", ...}``; the space validates the values."""
    out: dict[str, str] = {}
    for raw in (part for item in items for part in item.split(",") if part.strip()):
        name, sep, value = raw.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or not name or not value:
            raise InputError("param", raw, "must look like name=value, e.g. --param fast=10")
        if name in out:
            raise InputError(f"param.{name}", raw, "given more than once")
        out[name] = value
    return out


def parse_date(value: str | None, field: str) -> datetime | None:
    """An ISO date or date-time, or InputError naming the option."""
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise InputError(field, value, "must be an ISO date, e.g. 2015-01-31") from None


def fmt_metric(key: str, value: float) -> str:
    """How a metric is printed: counts as integers, the rest with 4 decimals (tests parse these)."""
    value = value + 0.0  # no "-0.0000" for a zero drawdown
    return f"{value:.0f}" if key == "trades" else f"{value:.4f}"


def _strategy(name: str) -> Strategy:
    from ludus.config import get_settings
    from ludus.strategies.registry import get_strategy

    return get_strategy(name, get_settings().trials_dir)


def _market(symbol: str, interval: str, start: str | None, end: str | None, device: str):
    """(MarketTensors on the device, Bars, bars per year) for the window; InputError on anything bad."""
    from ludus.config import get_settings
    from ludus.data.prices import PriceStore
    from ludus.data.symbols import bars_per_year
    from ludus.db.engine import make_engine
    from ludus.strategies.engine import resolve_device
    from ludus.strategies.market import MarketTensors

    first, last = parse_date(start, "start"), parse_date(end, "end")
    if first and last and first > last:
        raise InputError("end", end, f"must not be before --start {start}")
    dev = resolve_device(device)  # before the database: a bad --device fails fast
    bars = PriceStore(make_engine(get_settings().database_url)).read(symbol, interval, start=first, end=last)
    if len(bars) < 2:
        raise InputError(
            "start", start, f"the window has {len(bars)} bar(s) of {bars.symbol}_{bars.interval}; need at least 2"
        )
    return MarketTensors.from_bars(bars, device=dev), bars, bars_per_year(bars.interval)


def _span(bars: Any) -> str:
    return f"{str(bars.timestamps[0])[:10]} .. {str(bars.timestamps[-1])[:10]}, {len(bars)} bars"


def _fmt_value(v: Any) -> str:
    return f"{v:g}" if isinstance(v, float) else str(v)


def _fmt_params(values: dict[str, Any]) -> str:
    return " ".join(f"{k}={_fmt_value(v)}" for k, v in values.items())

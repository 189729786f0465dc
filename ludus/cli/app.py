"""Entry point: assembles every command group. Heavy imports (torch, ray) happen inside commands."""

from __future__ import annotations

import typer

from ludus.cli import backtest, cluster, config, data, jobs, lifecycle, optimize, queue, report, schedule
from ludus.cli.common import run_cli

app = typer.Typer(
    name="ludus",
    help="Ludus: Conditional Parameter Optimization for trading strategies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for module in (config, backtest, jobs, cluster, queue, optimize, report, lifecycle, schedule):
    module.register(app)
app.add_typer(data.app, name="data", help="Price data in Delphi's layout: load, import, list.")


def main() -> None:
    run_cli(app)


if __name__ == "__main__":
    main()

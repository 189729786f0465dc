"""`ludus config` and `ludus db ...`."""

from __future__ import annotations

import typer
from rich.table import Table

from ludus.cli.common import console, print_table


def register(app: typer.Typer) -> None:
    app.command("config", help="Print the effective settings (secrets masked).")(show_config)
    db = typer.Typer(help="Database schema (Alembic).", no_args_is_help=True)
    db.command("upgrade", help="Apply every migration to the configured database.")(db_upgrade)
    app.add_typer(db, name="db")


def show_config() -> None:
    from ludus.config import get_settings

    table = Table("setting", "value", title="Ludus settings (LUDUS_* environment, .env)")
    for key, value in get_settings().masked().items():
        table.add_row(key, str(value))
    print_table(table)


def db_upgrade() -> None:
    from ludus.config import get_settings
    from ludus.db.migrate import upgrade

    settings = get_settings()
    upgrade(settings.database_url)
    console.print("database schema is up to date")

"""What every command shares: consoles and turning errors into one actionable line."""

from __future__ import annotations

import os
from typing import NoReturn

from rich.console import Console

from ludus.errors import LudusError

console = Console()
err_console = Console(stderr=True)

EXIT_INPUT = 2
EXIT_INTERNAL = 1


def print_table(table) -> None:
    """Print a rich table; piped or captured output (no terminal width, rich assumes 80) is never truncated."""
    if console.is_terminal:
        console.print(table)
        return
    Console(file=console.file, width=max(console.width, 200), color_system=None).print(table)


def fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    """Print one red line on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def run_cli(app) -> None:
    """Run a typer app; user errors become one line and a non-zero exit, never a traceback."""
    # Standalone mode lets typer render its own usage errors (exit 2); everything else lands here.
    try:
        app()
    except LudusError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except SystemExit:
        raise
    except Exception as exc:  # pragma: no cover - last resort; LUDUS_DEBUG=1 shows the traceback
        if os.environ.get("LUDUS_DEBUG"):
            raise
        fail(f"internal error: {type(exc).__name__}: {exc} (set LUDUS_DEBUG=1 for the traceback)", EXIT_INTERNAL)

"""What every command shares: consoles and turning errors into one actionable line."""

from __future__ import annotations

import os
from typing import Any, NoReturn

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


def open_database(settings=None):
    """The configured database's engine once its schema is at head (the embedded SQLite migrates itself;
    elsewhere an actionable `ludus db upgrade` error instead of raw SQL)."""
    from ludus.config import get_settings
    from ludus.db.engine import make_engine
    from ludus.db.migrate import require_current

    engine = make_engine((settings or get_settings()).database_url)
    require_current(engine)
    return engine


def fail(message: str, code: int = EXIT_INPUT) -> NoReturn:
    """Print one red line on stderr and exit with ``code``."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise SystemExit(code)


def run_cli(app) -> None:
    """Run a typer app; user errors become one line and a non-zero exit, never a traceback."""
    # Not standalone: click's usage errors come back here and get the same one-line form as ours.
    try:
        code = app(standalone_mode=False, prog_name="ludus")
    except LudusError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except SystemExit:
        raise
    except Exception as exc:  # the last resort; LUDUS_DEBUG=1 shows the traceback
        # typer may vendor click (typer._click), so its exceptions are recognized by their class names
        kinds = {c.__name__ for c in type(exc).__mro__}
        click_exc: Any = exc  # a click exception (by its class names): format_message(), exit_code
        if "NoArgsIsHelpError" in kinds:
            console.print(click_exc.format_message(), highlight=False, markup=False)
            raise SystemExit(click_exc.exit_code) from None
        if "UsageError" in kinds:
            fail(usage_error_line(exc), click_exc.exit_code)
        if "Abort" in kinds:
            fail("interrupted", 130)
        if os.environ.get("LUDUS_DEBUG"):
            raise
        fail(f"internal error: {type(exc).__name__}: {exc} (set LUDUS_DEBUG=1 for the traceback)", EXIT_INTERNAL)
    if isinstance(code, int) and code:
        raise SystemExit(code)


def usage_error_line(exc) -> str:
    """A click usage error as ``--option=value: rule`` (what was given, what the rule is, where help is)."""
    import sys

    ctx = exc.ctx
    hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
    message = exc.message.replace("Input should be", "must be").rstrip(".")
    param = getattr(exc, "param", None)
    kinds = {c.__name__ for c in type(exc).__mro__}
    if "MissingParameter" in kinds and param is not None:
        return f"{_param_name(param)}: required{hint}"
    if "BadParameter" in kinds and param is not None:
        given = _given(param, sys.argv[1:])
        return (
            f"{_param_name(param)}={given}: {message}{hint}"
            if given is not None
            else f"{_param_name(param)}: {message}{hint}"
        )
    return f"{message}{hint}"


def _param_name(param) -> str:
    opts = [o for o in getattr(param, "opts", []) if o.startswith("--")] or list(getattr(param, "opts", []))
    if opts and getattr(param, "param_type_name", "") == "option":
        return opts[0]
    return str(getattr(param, "human_readable_name", None) or param.name or "argument").upper()


def _given(param, argv: list[str]) -> str | None:
    """The raw text given for an option on the command line (click does not keep it)."""
    opts = getattr(param, "opts", [])
    for i, arg in enumerate(argv):
        for opt in opts:
            if arg == opt and i + 1 < len(argv):
                return argv[i + 1]
            if arg.startswith(opt + "="):
                return arg[len(opt) + 1 :]
    return None

"""The ``ludus`` command line (typer + rich)."""

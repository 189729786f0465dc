"""Commands of this group are registered by register(app)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from ludus.cli.common import console, fail


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("schema", help="Print or write the JSON Schemas of the job, progress and result messages.")(
        schema_command
    )


def schema_command(
    kind: Annotated[
        str | None, typer.Option("--kind", "-k", help="job, progress or result (default: all three)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="write KIND.schema.json files into this directory")
    ] = None,
) -> None:
    from ludus.contracts.schema import KINDS, json_schemas

    if kind is not None and kind not in KINDS:
        fail(f"--kind={kind}: must be one of {', '.join(KINDS)}")
    schemas = json_schemas()
    selected = {kind: schemas[kind]} if kind else schemas
    if out is None:
        document = selected[kind] if kind else selected
        typer.echo(json.dumps(document, indent=2))
        return
    for name, schema in selected.items():
        path = out / f"{name}.schema.json"
        try:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
        except OSError as exc:
            fail(f"out={out}: cannot write {path.name} there ({exc.strerror or exc})")
        console.print(f"wrote {path}")

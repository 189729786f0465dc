"""JSON Schemas of the wire messages, for the .NET side (``ludus schema``).

- ``job`` describes what Ludus accepts: every field under its canonical snake_case name and under each
  accepted spelling (PascalCase, camelCase, Conductor's names such as ``StrategyName``); a field given under
  two spellings at once is rejected by Ludus (the schema cannot say so).
- ``progress`` and ``result`` describe what Ludus emits: always canonical snake_case names.
"""

from __future__ import annotations

import copy
from typing import Any

from ludus.contracts.base import WireModel, field_spellings
from ludus.contracts.events import ProgressEvent
from ludus.contracts.job import (
    MAX_LOOKBACK_BARS,
    MIN_LOOKBACK_BARS,
    GateSettings,
    Lookback,
    OptimizationJob,
    ParamOverride,
    PlacementSettings,
    SearchSettings,
    ValidationSettings,
)
from ludus.contracts.results import JobResult

DIALECT = "https://json-schema.org/draft/2020-12/schema"
SCHEMA_ID = "https://ludus.invalid/schemas/{kind}.schema.json"
KINDS = ("job", "progress", "result")

_CONVENTION = (
    "Ludus writes every message as JSON with snake_case field names, UUIDs as strings, timestamps in ISO 8601 "
    "UTC, and null for undefined numbers (never NaN)."
)


def json_schemas() -> dict[str, dict[str, Any]]:
    """{"job": ..., "progress": ..., "result": ...} as JSON Schema 2020-12 documents."""
    return {"job": job_schema(), "progress": progress_schema(), "result": result_schema()}


def job_schema() -> dict[str, Any]:
    schema = OptimizationJob.model_json_schema(mode="validation", by_alias=False)
    # `"lookback": 2520` is shorthand for {"bars": 2520}
    schema["properties"]["lookback"] = {
        "anyOf": [
            {"type": "integer", "minimum": MIN_LOOKBACK_BARS, "maximum": MAX_LOOKBACK_BARS},
            {"$ref": "#/$defs/Lookback"},
        ],
        "description": "bars (integer), or {bars} or {start, end} (ISO dates; end optional: up to the latest bar)",
    }
    models: dict[str, type[WireModel]] = {
        m.__name__: m
        for m in (Lookback, SearchSettings, ValidationSettings, GateSettings, PlacementSettings, ParamOverride)
    }
    _add_spellings(schema, OptimizationJob)
    for name, sub in schema.get("$defs", {}).items():
        if name in models:
            _add_spellings(sub, models[name])
    return _finish(
        schema,
        "job",
        "OptimizationJob",
        "A job message (Conductor -> Ludus). Field names: snake_case, PascalCase or camelCase. " + _CONVENTION,
    )


def progress_schema() -> dict[str, Any]:
    schema = ProgressEvent.model_json_schema(mode="serialization", by_alias=False)
    return _finish(schema, "progress", "ProgressEvent", "A progress event (Ludus -> Observatory). " + _CONVENTION)


def result_schema() -> dict[str, Any]:
    schema = JobResult.model_json_schema(mode="serialization", by_alias=False)
    return _finish(schema, "result", "JobResult", "The result of a job (Ludus -> Conductor). " + _CONVENTION)


def _finish(schema: dict[str, Any], kind: str, title: str, description: str) -> dict[str, Any]:
    out = {"$schema": DIALECT, "$id": SCHEMA_ID.format(kind=kind), "title": title, "description": description}
    out.update({k: v for k, v in schema.items() if k not in ("title", "description")})
    return out


def _add_spellings(schema: dict[str, Any], model: type[WireModel]) -> None:
    """Make every accepted spelling of a field a property; a required field may come under any of them."""
    props: dict[str, Any] = schema.get("properties", {})
    for fname, info in model.model_fields.items():
        if fname not in props:
            continue
        for alias in field_spellings(fname, info):
            if alias != fname:
                props[alias] = copy.deepcopy(props[fname])
    required = schema.pop("required", [])
    if required:
        schema["allOf"] = [
            {"anyOf": [{"required": [alias]} for alias in field_spellings(f, model.model_fields[f])]} for f in required
        ]

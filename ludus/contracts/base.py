"""What every wire message shares: accepted spellings, canonical JSON, error translation.

Input: every field may be spelled snake_case (canonical), PascalCase or camelCase, at every nesting level
(Conductor is a .NET service and sends ``JobId``, ``Symbols``...). A field given twice under two spellings is
an error. Output: ``to_json()``/``to_dict()`` always write the canonical snake_case names.
"""

from __future__ import annotations

import difflib
import math
import typing
from typing import Any

from pydantic import AliasChoices, AliasGenerator, BaseModel, ConfigDict, ValidationError, model_validator
from pydantic.alias_generators import to_camel, to_pascal
from pydantic_core import PydanticCustomError

from ludus.errors import InputError


def spellings(name: str, *extra: str) -> list[str]:
    """The accepted spellings of a field: canonical, PascalCase, camelCase, then explicit extras."""
    return list(dict.fromkeys([name, to_pascal(name), to_camel(name), *extra]))


def names(name: str, *extra: str) -> AliasChoices:
    """Validation alias for a field that also accepts explicit extra spellings (e.g. ``StrategyName``)."""
    return AliasChoices(*spellings(name, *extra))


def _generated(name: str) -> AliasChoices:
    return AliasChoices(*spellings(name))


_SPELLINGS: dict[type, dict[str, str]] = {}


class WireModel(BaseModel):
    """Base of every message: lenient spelling on input, canonical snake_case on output."""

    model_config = ConfigDict(
        alias_generator=AliasGenerator(validation_alias=_generated),
        populate_by_name=True,
        frozen=True,
        extra="forbid",
    )

    @classmethod
    def spelling_index(cls) -> dict[str, str]:
        """Every accepted spelling -> canonical field name."""
        index = _SPELLINGS.get(cls)
        if index is None:
            index = {}
            for fname, info in cls.model_fields.items():
                for alias in field_spellings(fname, info):
                    index[alias] = fname
            _SPELLINGS[cls] = index
        return index

    @model_validator(mode="before")
    @classmethod
    def _one_spelling_per_field(cls, data: Any) -> Any:
        if isinstance(data, dict):
            index = cls.spelling_index()
            seen: dict[str, str] = {}
            for key in data:
                fname = index.get(key) if isinstance(key, str) else None
                if fname is None:
                    continue
                if fname in seen:
                    raise PydanticCustomError(
                        "duplicate_field", f"field {fname!r} given twice (as {seen[fname]!r} and {key!r})"
                    )
                seen[fname] = key
        return data

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with canonical snake_case names."""
        return self.model_dump(mode="json", by_alias=False)

    def to_json(self) -> str:
        """The canonical wire form: JSON, snake_case names, UTC timestamps in ISO 8601."""
        return self.model_dump_json(by_alias=False)


def field_spellings(fname: str, info: Any) -> list[str]:
    alias = info.validation_alias
    if isinstance(alias, AliasChoices):
        return [c for c in alias.choices if isinstance(c, str)]
    if isinstance(alias, str):
        return [fname, alias]
    return spellings(fname)


def finite_or_none(value: Any) -> Any:
    """NaN/inf cannot travel in JSON: they become null. numpy/torch scalars become floats."""
    if value is None or isinstance(value, bool):
        return value
    if hasattr(value, "item") and not isinstance(value, (int, float)):
        value = value.item()
    if isinstance(value, (int, float)) and not math.isfinite(float(value)):
        return None
    return value


# --- turning pydantic errors into InputError --------------------------------------------------------


class MessageValidationError(InputError):
    # Model-level rules that concern one field raise PydanticCustomError(type, message, {"field": name,
    # "value": v}); the path and value reported are then that field's.
    """A message broke one or more rules; ``errors`` lists each as {field, value, reason}."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        first = errors[0]
        rule = first["reason"]
        if len(errors) > 1:
            rest = "; ".join(f"{e['field']}={_short(e['value'])}: {e['reason']}" for e in errors[1:])
            rule = f"{rule} (and {len(errors) - 1} more: {rest})"
        super().__init__(first["field"], first["value"], rule)
        self.errors = errors


def _short(value: Any, limit: int = 80) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _model_of(annotation: Any) -> type[WireModel] | None:
    """The WireModel inside an annotation (``X``, ``X | None``, ``Annotated[X, ...]``), if any."""
    if isinstance(annotation, type) and issubclass(annotation, WireModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _container_of(annotation: Any) -> Any:
    """For list[X] / dict[str, X] (possibly optional): X, else None."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    for arg in args:
        inner = _container_of(arg)
        if inner is not None:
            return inner
    return None


def canonical_path(model: type[WireModel], loc: tuple[Any, ...]) -> tuple[str, type[WireModel] | None]:
    """Dotted canonical path of an error location, and the model that holds its last element."""
    parts: list[str] = []
    current: type[WireModel] | None = model
    pending: Any = None  # element annotation of a list/dict we are inside
    holder: type[WireModel] | None = model
    for item in loc:
        if isinstance(item, int) or (pending is not None and current is None):
            parts.append(str(item))
            if pending is not None:
                current, pending = _model_of(pending), None
            continue
        if current is None:
            parts.append(str(item))
            continue
        holder = current
        fname = current.spelling_index().get(item)
        if fname is None:
            parts.append(str(item))
            current = None
            continue
        parts.append(fname)
        annotation = current.model_fields[fname].annotation
        inner = _container_of(annotation)
        if inner is not None:
            current, pending = None, inner
        else:
            current = _model_of(annotation)
    return (".".join(parts) or "$"), holder


def to_input_error(model: type[WireModel], exc: ValidationError) -> MessageValidationError:
    """One InputError carrying every pydantic error, each with a canonical dotted path."""
    errors: list[dict[str, Any]] = []
    for err in exc.errors(include_url=False):
        path, holder = canonical_path(model, tuple(err["loc"]))
        reason = err["msg"]
        value: Any = err.get("input")
        if err["type"] == "missing":
            value = None
        elif err["type"] == "extra_forbidden":
            reason = "unknown field"
            key = str(err["loc"][-1]) if err["loc"] else ""
            if holder is not None:
                known = list(holder.model_fields)
                close = difflib.get_close_matches(key, list(holder.spelling_index()), n=1, cutoff=0.6)
                if close:
                    reason += f"; did you mean {holder.spelling_index()[close[0]]!r}?"
                reason += f" (known: {', '.join(known)})"
        elif isinstance(value, dict) and err["type"] not in ("model_type", "dict_type"):
            # model-level rules: the whole object is the value; keep it short
            value = {k: v for k, v in list(value.items())[:6]}
        ctx = err.get("ctx") or {}
        if "field" in ctx:  # a model-level rule that belongs to one field (see PydanticCustomError context)
            path = ctx["field"] if path == "$" else f"{path}.{ctx['field']}"
            value = ctx.get("value")
        reason = reason.removeprefix("Value error, ")
        errors.append({"field": path, "value": value, "reason": reason})
    return MessageValidationError(errors)

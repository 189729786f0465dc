"""Text that can travel: what a message may contain, and how any value becomes safe to put in a header or JSON.

``json.loads`` accepts ``"\\ud800"``, a lone UTF-16 surrogate that no UTF-8 encoder (pika's headers,
pydantic's JSON, PostgreSQL) will take, and nests as deep as the recursion limit allows. A job message is
therefore refused when a string (key or value) cannot be encoded as UTF-8 or when it nests deeper than
:data:`MAX_DEPTH`; and every text Ludus writes back (error results, dead-letter headers, logs) goes through
:func:`safe_text`, which escapes what cannot be encoded and bounds the length.
"""

from __future__ import annotations

from typing import Any

from ludus.errors import InputError

#: deepest nesting of objects/arrays a message may have (a job needs 4: overrides.fast.choices[0])
MAX_DEPTH = 32
ELLIPSIS = "..."


def escaped(text: str) -> str:
    """``text`` with every character UTF-8 cannot encode (lone surrogates, ``\\ud800`` .. ``\\udfff``) written
    as its backslash escape."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


def safe_text(value: Any, limit: int = 500) -> str:
    """Any value as encodable text of at most ``limit`` characters (escaped, then truncated with ``...``)."""
    if isinstance(value, bytes):
        text = value.decode("utf-8", "backslashreplace")
    elif isinstance(value, str):
        text = value
    else:
        try:
            text = repr(value)
        except Exception:  # noqa: BLE001 - a value whose repr fails (or recurses) is named by its type
            text = f"<{type(value).__name__}>"
    text = escaped(text)
    if len(text) > limit:
        text = text[: max(0, limit - len(ELLIPSIS))] + ELLIPSIS
    return text


def check_text(data: Any, max_depth: int = MAX_DEPTH) -> None:
    """Raise InputError (``field=value: rule``) for the first string that cannot be encoded as UTF-8, or the
    first object/array nested deeper than ``max_depth``. Iterative: safe on any depth ``json.loads`` made."""
    stack: list[tuple[tuple[str, ...], Any, int]] = [((), data, 0)]
    while stack:
        path, value, depth = stack.pop()
        if isinstance(value, str):
            _encodable(path, value)
        elif isinstance(value, (dict, list)):
            if depth >= max_depth:
                raise InputError(
                    _dotted(path),
                    f"<{type(value).__name__} at depth {depth + 1}>",
                    f"nested deeper than {max_depth} levels",
                )
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                part = str(key) if not isinstance(key, str) else key
                if isinstance(key, str):
                    _encodable((*path, safe_text(key, 80)), key, what="field name")
                stack.append(((*path, part), item, depth + 1))


def _encodable(path: tuple[str, ...], text: str, what: str = "text") -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end].encode("utf-8", "backslashreplace").decode("ascii")
        raise InputError(
            _dotted(tuple(escaped(p) for p in path)),
            safe_text(text, 80),
            f"{what} is not valid Unicode: lone surrogate {bad} at position {exc.start} "
            "(send UTF-8 text; a UTF-16 surrogate must come in a pair)",
        ) from None


def _dotted(path: tuple[str, ...]) -> str:
    return ".".join(path) or "$"

"""Rules every stored bar obeys; the first broken one is reported with its row and timestamp."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ludus.data.bars import Bars
from ludus.errors import InputError

_PRICE_FIELDS = ("open", "high", "low", "close")


@dataclass(frozen=True)
class Violation:
    """The first row (0-based index) that breaks a rule."""

    index: int
    timestamp: str
    rule: str


def find_violation(bars: Bars) -> Violation | None:
    """The first broken rule, scanning rules in a fixed order, or None when the bars are valid."""
    n = len(bars.close)
    for name in ("timestamps", "open", "high", "low", "volume"):
        if len(getattr(bars, name)) != n:
            return Violation(0, "", f"column {name} has {len(getattr(bars, name))} values, close has {n}")
    if n == 0:
        return Violation(0, "", "no bars")
    ts = np.asarray(bars.timestamps)
    if not np.issubdtype(ts.dtype, np.datetime64):
        return Violation(0, "", f"timestamps must be datetime64, got {ts.dtype}")
    cols = {f: np.asarray(getattr(bars, f), dtype=np.float64) for f in (*_PRICE_FIELDS, "volume")}

    checks: list[tuple[np.ndarray, str]] = [(np.isnat(ts), "missing timestamp")]
    checks.append(
        (
            np.concatenate([[False], ts[1:] <= ts[:-1]]),
            "timestamps must be strictly increasing (monotonic, no duplicates)",
        )
    )
    for f, v in cols.items():
        checks.append((~np.isfinite(v), f"{f.capitalize()} is missing (NaN) or infinite"))
    for f in _PRICE_FIELDS:
        checks.append((cols[f] <= 0, f"{f.capitalize()} must be positive"))
    o, h, lo, c = (cols[f] for f in _PRICE_FIELDS)
    checks.append((h < np.maximum(o, c), "High must be >= max(Open, Close)"))
    checks.append((lo > np.minimum(o, c), "Low must be <= min(Open, Close)"))
    checks.append((cols["volume"] < 0, "Volume must be >= 0"))

    first: Violation | None = None
    with np.errstate(invalid="ignore"):
        for mask, rule in checks:
            hits = np.flatnonzero(mask)
            # Rules are listed most basic first; among rows, the earliest row wins.
            if hits.size and (first is None or hits[0] < first.index):
                first = Violation(int(hits[0]), _fmt(ts[hits[0]]), rule)
    return first


def validate_bars(bars: Bars, *, row_label: Callable[[int], str] | None = None) -> None:
    """Raise InputError naming the first bad row (``row_label(i)``, default ``row i``), its timestamp and rule."""
    v = find_violation(bars)
    if v is None:
        return
    label = (row_label or (lambda i: f"row {i}"))(v.index)
    # Reads as "SPX_1d row 3=2020-01-06: Low must be <= min(Open, Close)".
    raise InputError(f"{bars.symbol}_{bars.interval} {label}", v.timestamp or "-", v.rule)


def _fmt(ts: np.datetime64) -> str:
    if np.isnat(ts):
        return "NaT"
    text = str(np.datetime_as_string(ts, unit="s"))
    return text[:10] if text.endswith("T00:00:00") else text.replace("T", " ")

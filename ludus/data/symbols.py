"""Symbols and intervals become SQL table names: validate them against a strict pattern first."""

from __future__ import annotations

import re

from ludus.errors import InputError

SYMBOL_PATTERN = re.compile(r"^[A-Z][A-Z0-9]{0,15}$")
INTERVAL_PATTERN = re.compile(r"^([1-9][0-9]{0,2})(m|h|d|w)$")

_BARS_PER_YEAR_UNIT = {"m": 252 * 390, "h": 252 * 6.5, "d": 252, "w": 52}


def validate_symbol(symbol: object, field: str = "symbol") -> str:
    """Return the upper-cased symbol, or raise InputError naming the rule."""
    if not isinstance(symbol, str):
        raise InputError(field, symbol, "must be a string")
    normalized = symbol.strip().upper()
    if not SYMBOL_PATTERN.fullmatch(normalized):
        raise InputError(field, symbol, f"must match {SYMBOL_PATTERN.pattern} (letters and digits, 1-16 chars)")
    return normalized


def validate_interval(interval: object, field: str = "interval") -> str:
    """Return the interval (e.g. ``1d``, ``5m``, ``1h``, ``1w``), or raise InputError naming the rule."""
    if not isinstance(interval, str):
        raise InputError(field, interval, "must be a string")
    normalized = interval.strip().lower()
    if not INTERVAL_PATTERN.fullmatch(normalized):
        raise InputError(field, interval, f"must match {INTERVAL_PATTERN.pattern} (e.g. 1d, 1h, 5m, 1w)")
    return normalized


def table_name(symbol: str, interval: str) -> str:
    """Delphi's price table name ``{SYMBOL}_{INTERVAL}``; both parts are validated here."""
    return f"{validate_symbol(symbol)}_{validate_interval(interval)}"


def bars_per_year(interval: str) -> float:
    """Bars in a trading year for an interval (Sharpe annualization)."""
    match = INTERVAL_PATTERN.fullmatch(validate_interval(interval))
    assert match is not None
    count, unit = int(match.group(1)), match.group(2)
    return _BARS_PER_YEAR_UNIT[unit] / count

"""Symbols and intervals become SQL table names: validated against the strict patterns of
:mod:`ludus.vocabulary` first; the table name and the bars per year of an interval."""

from __future__ import annotations

from ludus.vocabulary import INTERVAL_PATTERN, SYMBOL_PATTERN, validate_interval, validate_symbol

_BARS_PER_YEAR_UNIT = {"m": 252 * 390, "h": 252 * 6.5, "d": 252, "w": 52}


def table_name(symbol: str, interval: str) -> str:
    """Delphi's price table name ``{SYMBOL}_{INTERVAL}``; both parts are validated here."""
    return f"{validate_symbol(symbol)}_{validate_interval(interval)}"


def bars_per_year(interval: str) -> float:
    """Bars in a trading year for an interval (Sharpe annualization)."""
    match = INTERVAL_PATTERN.fullmatch(validate_interval(interval))
    assert match is not None
    count, unit = int(match.group(1)), match.group(2)
    return _BARS_PER_YEAR_UNIT[unit] / count


__all__ = ["INTERVAL_PATTERN", "SYMBOL_PATTERN", "bars_per_year", "table_name", "validate_interval", "validate_symbol"]

"""The trading session the published parameters are for."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np

from ludus.errors import InputError


def next_session(last_timestamp: np.datetime64 | date, interval: str) -> date:
    """The next trading day after the last bar: the next weekday (exchange holidays are not modelled).

    Daily and intraday bars alike: parameters are written once per trading day. Weekly bars: the Monday of
    the following week.
    """
    if isinstance(last_timestamp, np.datetime64):
        day = last_timestamp.astype("datetime64[D]").astype(date)
    elif hasattr(last_timestamp, "date") and callable(last_timestamp.date):
        day = last_timestamp.date()
    else:
        day = last_timestamp
    if interval.endswith("w"):
        return day + timedelta(days=7 - day.weekday())
    nxt = day + timedelta(days=1)
    while nxt.weekday() >= 5:
        nxt += timedelta(days=1)
    return nxt


# --- exchange calendars (exchange-calendars): sessions of a named exchange --------------------------------


@lru_cache(maxsize=8)
def exchange_calendar(name: str) -> Any:
    """The exchange-calendars calendar ``name`` (``XNYS``, ``XLON``, ...); InputError when unknown."""
    import exchange_calendars as xcals

    key = str(name).strip().upper()
    if key not in xcals.get_calendar_names(include_aliases=True):
        raise InputError("calendar", name, "unknown exchange calendar; e.g. XNYS, XNAS, XLON, XTKS, XHKG")
    return xcals.get_calendar(key)


def is_session_day(name: str, day: date) -> bool:
    """Whether ``day`` is a trading session of exchange ``name`` (False outside the calendar's range)."""
    import exchange_calendars as xcals

    cal = exchange_calendar(name)
    try:
        return bool(cal.is_session(day.isoformat()))
    except xcals.errors.DateOutOfBounds:
        return False


def is_open_at(name: str, at: datetime) -> bool:
    """Whether exchange ``name`` is open at the timezone-aware instant ``at``."""
    import exchange_calendars as xcals
    import pandas as pd

    cal = exchange_calendar(name)
    try:
        return bool(cal.is_open_on_minute(pd.Timestamp(at).tz_convert("UTC")))
    except xcals.errors.DateOutOfBounds:
        return False


def calendar_timezone(name: str) -> str:
    """The IANA zone of exchange ``name`` (its sessions' wall clock)."""
    return str(exchange_calendar(name).tz)

"""Trading sessions from a real exchange calendar (exchange-calendars): the day published parameters are for,
how many sessions old the data is, and whether an exchange is in session (the scheduler's).

Calendars for valid_for and staleness are built for the years around the dates asked about (the package's
default window is the last 20 years) and cached.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from typing import Any

import numpy as np

from ludus.constants import DEFAULT_EXCHANGE
from ludus.errors import InputError

# Calendar years built on each side of the dates asked about.
_MARGIN_YEARS = 1


def _day(value: np.datetime64 | date | datetime) -> date:
    if isinstance(value, np.datetime64):
        return value.astype("datetime64[D]").astype(date)
    if isinstance(value, datetime):
        return value.date()
    return value


@lru_cache(maxsize=64)
def _calendar(exchange: str, first_year: int, last_year: int) -> Any:
    import exchange_calendars as xcals

    try:
        return xcals.get_calendar(exchange, start=f"{first_year}-01-01", end=f"{last_year}-12-31")
    except xcals.errors.InvalidCalendarName:
        names = ", ".join(n for n in ("XNYS", "XNAS", "XLON", "XFRA", "XTKS", "XHKG", "CMES") if n != exchange)
        raise InputError(
            "exchange", exchange, f"unknown exchange calendar (exchange-calendars codes, e.g. {names})"
        ) from None
    except (ValueError, xcals.errors.CalendarError) as exc:
        raise InputError("exchange", exchange, f"no calendar for {first_year}..{last_year}: {exc}") from None


def calendar_for(exchange: str, *days: date) -> Any:
    """The exchange's calendar from a year before the earliest of ``days`` to a year after today (or the
    latest of ``days``): one build serves every question about that span."""
    this_year = datetime.now(timezone.utc).year
    return _calendar(exchange, min(days).year - _MARGIN_YEARS, max(this_year, *(d.year for d in days)) + _MARGIN_YEARS)


def check_exchange(exchange: str) -> str:
    """InputError unless exchange-calendars knows ``exchange``."""
    calendar_for(exchange, datetime.now(timezone.utc).date())
    return exchange


def next_session(
    last_timestamp: np.datetime64 | date | datetime, interval: str, exchange: str = DEFAULT_EXCHANGE
) -> date:
    """The first trading session of ``exchange`` after the last bar's day (never a weekend or holiday).

    Daily and intraday bars alike: parameters are written once per trading day. Weekly bars: the first session
    of the following week.
    """
    day = _day(last_timestamp)
    after = day + timedelta(days=7 - day.weekday()) if interval.endswith("w") else day + timedelta(days=1)
    cal = calendar_for(exchange, day, after + timedelta(days=14))
    return cal.date_to_session(after.isoformat(), direction="next").date()


def sessions_since(
    last_timestamp: np.datetime64 | date | datetime, today: date | None = None, exchange: str = DEFAULT_EXCHANGE
) -> int:
    """Trading sessions of ``exchange`` after the last bar's day and before ``today`` (default: today, UTC):
    the sessions the data is missing."""
    day = _day(last_timestamp)
    today = today or datetime.now(timezone.utc).date()
    if today <= day + timedelta(days=1):
        return 0
    cal = calendar_for(exchange, day, today)
    return len(cal.sessions_in_range((day + timedelta(days=1)).isoformat(), (today - timedelta(days=1)).isoformat()))


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


__all__ = [
    "calendar_for",
    "calendar_timezone",
    "check_exchange",
    "exchange_calendar",
    "is_open_at",
    "is_session_day",
    "next_session",
    "sessions_since",
]

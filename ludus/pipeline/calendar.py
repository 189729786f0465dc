"""The trading session the published parameters are for."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np


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

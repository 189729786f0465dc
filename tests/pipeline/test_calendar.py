"""valid_for from a real exchange calendar: never a weekend or a holiday, the first session after the last bar."""

from __future__ import annotations

from datetime import date, timedelta

import exchange_calendars as xcals
import numpy as np
import pytest

from ludus.errors import InputError
from ludus.pipeline.calendar import check_exchange, next_session, sessions_since


@pytest.mark.parametrize("exchange", ["XNYS", "XNAS", "XLON"])
def test_next_session_is_the_first_session_after_the_day(exchange: str) -> None:
    cal = xcals.get_calendar(exchange, start="2005-01-01", end="2025-12-31")
    sessions = {d.date() for d in cal.sessions}
    rng = np.random.default_rng(0)
    for offset in rng.integers(0, 7000, 150):
        day = date(2006, 1, 1) + timedelta(days=int(offset))
        nxt = next_session(np.datetime64(day.isoformat()), "1d", exchange)
        assert nxt in sessions and nxt > day
        assert not any(day + timedelta(days=k) in sessions for k in range(1, (nxt - day).days))


def test_known_holidays_are_skipped() -> None:
    assert next_session(date(2018, 12, 31), "1d") == date(2019, 1, 2)  # New Year's Day
    assert next_session(date(2019, 7, 3), "1d") == date(2019, 7, 5)  # Independence Day
    assert next_session(date(2018, 12, 4), "1d") == date(2018, 12, 6)  # President Bush's funeral: closed
    assert next_session(date(2018, 12, 27), "1w") == date(2018, 12, 31)  # weekly: the next week's first session
    assert next_session(date(2019, 3, 29), "1h") == date(2019, 4, 1)


def test_sessions_since_counts_the_missing_sessions_and_unknown_exchanges_are_input_errors() -> None:
    assert sessions_since(date(2019, 1, 2), date(2019, 1, 3)) == 0
    assert sessions_since(date(2018, 12, 28), date(2019, 1, 3)) == 2  # Dec 31 and Jan 2
    with pytest.raises(InputError) as err:
        check_exchange("NOPE")
    assert err.value.field == "exchange" and "XNYS" in err.value.rule

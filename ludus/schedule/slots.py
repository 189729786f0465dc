"""Slot times: a cron expression read in a time zone, kept where an exchange calendar says so, and the job id
each slot publishes under."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from croniter import croniter

from ludus.constants import SCHEDULE_JOB_NAMESPACE
from ludus.errors import InputError
from ludus.pipeline.calendar import is_open_at, is_session_day

_NAMESPACE = uuid.UUID(SCHEDULE_JOB_NAMESPACE)
MAX_SLOTS_PER_WINDOW = 10_000  # a "* * * * *" cron over a week; more is a misconfiguration, not a schedule


def cron_times(cron: str, zone: ZoneInfo, after: datetime, until: datetime) -> Iterator[datetime]:
    """The cron's fire times in ``(after, until]`` as timezone-aware UTC (the cron read on ``zone``'s clock,
    daylight saving included). More than MAX_SLOTS_PER_WINDOW is an InputError, never a silent cut."""
    it = croniter(cron, after.astimezone(zone))
    for _ in range(MAX_SLOTS_PER_WINDOW):
        at = it.get_next(datetime).astimezone(timezone.utc)
        if at > until:
            return
        yield at
    raise InputError(
        "cron",
        cron,
        f"fires more than {MAX_SLOTS_PER_WINDOW:,} times between {after.isoformat()} "
        f"and {until.isoformat()}; use a coarser cron or a shorter "
        "LUDUS_SCHEDULE_CATCHUP_S",
    )


def next_times(
    cron: str,
    calendar: str,
    rule: str,
    zone: ZoneInfo,
    after: datetime,
    count: int,
    horizon: timedelta = timedelta(days=400),
) -> list[datetime]:
    """The first ``count`` slots after ``after`` (within ``horizon``), for listings."""
    it = croniter(cron, after.astimezone(zone))
    out: list[datetime] = []
    for _ in range(1_000_000):
        at = it.get_next(datetime).astimezone(timezone.utc)
        if len(out) >= count or at > after + horizon:
            break
        if in_sessions(calendar, rule, at, zone):
            out.append(at)
    return out


def in_sessions(calendar: str, rule: str, at: datetime, zone: ZoneInfo) -> bool:
    """``day``: the slot's local date is a session; ``open``: the exchange is open at the slot; ``any``."""
    if rule == "any":
        return True
    if rule == "open":
        return is_open_at(calendar, at)
    return is_session_day(calendar, at.astimezone(zone).date())


def slot_times(cron: str, calendar: str, rule: str, zone: ZoneInfo, after: datetime, until: datetime) -> list[datetime]:
    """The slots of a schedule in ``(after, until]``: cron times that fall in the calendar's sessions."""
    return [at for at in cron_times(cron, zone, after, until) if in_sessions(calendar, rule, at, zone)]


def slot_job_id(schedule: str, slot_at: datetime) -> uuid.UUID:
    """The job id of a slot: the same on every scheduler and after every restart."""
    return uuid.uuid5(_NAMESPACE, f"{schedule}@{slot_at.astimezone(timezone.utc).isoformat()}")

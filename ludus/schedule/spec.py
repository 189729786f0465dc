"""The schedule file (``trials/schedule.yaml``): which job templates to publish when, and when to prune.

```yaml
calendar: XNYS                 # exchange-calendars name; slots fire only in its sessions
timezone: America/New_York     # the cron's wall clock (default: the calendar's zone)
schedules:
  - name: spx-sma-nightly
    cron: "30 17 * * mon-fri"  # croniter syntax, in `timezone`
    job: jobs/cpo_spx_demo.json  # a job template under trials/ (its job_id is replaced per slot)
    sessions: day              # day: the slot's date is a session; open: the exchange is open; any
    deadline_after_s: 36000    # optional: the job's deadline is the slot time plus this
retention:
  cron: "0 4 * * sun"          # prune with the LUDUS_RETENTION_* settings
```
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from ludus import catalog
from ludus.constants import DEFAULT_CALENDAR, SCHEDULE_FILE
from ludus.errors import InputError

SESSION_RULES = ("day", "open", "any")
RETENTION_SCHEDULE = "retention"  # the reserved name of the retention slot in the slots table
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,99}$"


def _cron(value: str) -> str:
    from croniter import croniter

    text = " ".join(str(value).split())
    if not croniter.is_valid(text):
        raise ValueError(f"not a cron expression: {value!r} (five fields: minute hour day month weekday)")
    return text


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobSchedule(_Spec):
    """One job template published at the cron's times (only in sessions, by ``sessions``)."""

    name: str = Field(pattern=NAME_PATTERN)
    cron: str
    job: str
    sessions: Literal["day", "open", "any"] = "day"
    deadline_after_s: float | None = Field(None, gt=0, le=7 * 24 * 3600)
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        return _cron(value)


class RetentionSchedule(_Spec):
    """When the scheduler prunes (``ludus models prune`` with the retention settings)."""

    cron: str
    sessions: Literal["day", "open", "any"] = "any"
    enabled: bool = True

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        return _cron(value)


class ScheduleFile(_Spec):
    """The whole file. ``source``: where it was read from (for messages and relative job paths)."""

    calendar: str = DEFAULT_CALENDAR
    timezone: str | None = None
    schedules: list[JobSchedule] = Field(default_factory=list)
    retention: RetentionSchedule | None = None
    source: str = ""

    @field_validator("schedules")
    @classmethod
    def _unique(cls, value: list[JobSchedule]) -> list[JobSchedule]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"schedule names must be unique; repeated: {', '.join(dupes)}")
        if RETENTION_SCHEDULE in names:
            raise ValueError(f"{RETENTION_SCHEDULE!r} is reserved for the retention slot")
        return value

    @property
    def zone(self) -> ZoneInfo:
        from ludus.pipeline.calendar import calendar_timezone

        return ZoneInfo(self.timezone or calendar_timezone(self.calendar))

    def template(self, schedule: JobSchedule, trials_dir: Path | str | None = None) -> dict[str, Any]:
        """The job template of ``schedule`` as a dict (InputError naming the file when it is unreadable)."""
        path = Path(schedule.job)
        if not path.is_absolute():
            beside = Path(self.source).parent / path if self.source else None
            path = (
                beside if beside is not None and beside.is_file() else (catalog.find(schedule.job, trials_dir) or path)
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8-sig"))
        except OSError as exc:
            raise InputError(
                f"schedules.{schedule.name}.job",
                schedule.job,
                f"cannot be read ({exc.strerror}); looked in {catalog.sources(trials_dir).where()}",
            ) from None
        except json.JSONDecodeError as exc:
            raise InputError(f"schedules.{schedule.name}.job", str(path), f"is not JSON: {exc.msg}") from None
        if not isinstance(data, dict):
            raise InputError(f"schedules.{schedule.name}.job", str(path), "must hold a JSON object")
        return data


def load_schedule(path: Path | str | None = None, trials_dir: Path | str | None = None) -> ScheduleFile:
    """Read and check the schedule file: ``path``, else ``schedule.yaml`` of the local or built-in trials/."""
    if path is None:
        found = catalog.find(SCHEDULE_FILE, trials_dir)
        if found is None:
            raise InputError(
                "schedule_file", SCHEDULE_FILE, f"no schedule file; looked in {catalog.sources(trials_dir).where()}"
            )
        path = found
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise InputError("schedule_file", str(path), f"cannot be read ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise InputError("schedule_file", str(path), f"is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise InputError("schedule_file", str(path), "must be a mapping with `schedules:`")
    try:
        spec = ScheduleFile.model_validate({**raw, "source": str(path)})
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "$"
        raise InputError(f"{path.name}:{where}", err.get("input"), err.get("msg", "invalid")) from None
    from ludus.pipeline.calendar import exchange_calendar

    try:
        exchange_calendar(spec.calendar)
    except InputError as exc:
        raise InputError(f"{path.name}:calendar", exc.value, exc.rule) from None
    try:
        spec.zone  # noqa: B018 - resolving it is the check
    except ZoneInfoNotFoundError:
        raise InputError(f"{path.name}:timezone", spec.timezone, "unknown IANA time zone") from None
    return spec

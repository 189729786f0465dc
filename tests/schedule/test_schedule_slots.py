"""Slot times from cron and an exchange calendar, the schedule file, and the retention slot (SQLite)."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from ludus.errors import InputError
from ludus.schedule.slots import slot_job_id, slot_times
from ludus.schedule.spec import RETENTION_SCHEDULE, ScheduleFile, load_schedule

NY = ZoneInfo("America/New_York")
UTC = timezone.utc


def test_daily_cron_keeps_only_sessions_and_follows_daylight_saving() -> None:
    # 2026-03-06 (Fri) .. 2026-03-10 (Tue): the clocks change on Sunday the 8th
    got = slot_times(
        "30 17 * * *", "XNYS", "day", NY, datetime(2026, 3, 6, tzinfo=UTC), datetime(2026, 3, 11, tzinfo=UTC)
    )
    assert [t.astimezone(NY).date() for t in got] == [date(2026, 3, 6), date(2026, 3, 9), date(2026, 3, 10)]
    assert [t.hour for t in got] == [22, 21, 21]  # 17:30 New York is 22:30 UTC in winter, 21:30 in summer
    assert all(t.astimezone(NY).hour == 17 and t.minute == 30 for t in got)


def test_holidays_are_not_sessions_and_open_means_during_trading_hours() -> None:
    christmas = slot_times(
        "30 17 * * *", "XNYS", "day", NY, datetime(2026, 12, 24, 23, tzinfo=UTC), datetime(2026, 12, 26, tzinfo=UTC)
    )
    assert christmas == []
    every_hour = slot_times(
        "0 * * * *", "XNYS", "open", NY, datetime(2026, 12, 2, tzinfo=UTC), datetime(2026, 12, 3, tzinfo=UTC)
    )
    # the exchange is open 09:30-16:00 New York: the 10:00 .. 15:00 slots
    assert [t.astimezone(NY).hour for t in every_hour] == [10, 11, 12, 13, 14, 15]
    anything = slot_times(
        "0 12 * * *", "XNYS", "any", NY, datetime(2026, 12, 24, tzinfo=UTC), datetime(2026, 12, 27, tzinfo=UTC)
    )
    assert len(anything) == 3


def test_slot_job_ids_are_deterministic_and_distinct() -> None:
    at = datetime(2026, 12, 2, 22, 30, tzinfo=UTC)
    assert slot_job_id("a", at) == slot_job_id("a", at.astimezone(NY))
    assert slot_job_id("a", at) != slot_job_id("b", at)
    assert slot_job_id("a", at) != slot_job_id("a", at + timedelta(days=1))
    assert slot_job_id("a", at).version == 5


@pytest.mark.parametrize(
    ("doc", "fragment"),
    [
        ({"schedules": [{"name": "x", "cron": "61 * * * *", "job": "j.json"}]}, "not a cron expression"),
        ({"calendar": "NOPE", "schedules": []}, "unknown exchange calendar"),
        (
            {
                "schedules": [
                    {"name": "x", "cron": "0 1 * * *", "job": "j"},
                    {"name": "x", "cron": "0 2 * * *", "job": "j"},
                ]
            },
            "unique",
        ),
        ({"schedules": [{"name": RETENTION_SCHEDULE, "cron": "0 1 * * *", "job": "j"}]}, "reserved"),
        ({"timezone": "Mars/Olympus", "schedules": []}, "time zone"),
        ({"schedules": [{"name": "x", "cron": "0 1 * * *", "job": "j", "whenever": True}]}, "whenever"),
    ],
)
def test_a_bad_schedule_file_names_what_is_wrong(tmp_path, doc, fragment) -> None:
    import yaml

    path = tmp_path / "schedule.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(InputError) as err:
        load_schedule(path)
    assert fragment in str(err.value) and "schedule.yaml" in str(err.value)


def test_the_built_in_schedule_loads_and_its_template_builds_a_job(tmp_path, monkeypatch) -> None:
    from ludus.config import Settings
    from ludus.schedule.scheduler import Scheduler

    monkeypatch.chdir(tmp_path)  # no local trials/: the package's own schedule and job templates
    spec = load_schedule()
    assert spec.calendar == "XNYS" and spec.schedules and spec.retention is not None
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'x.db'}")
    scheduler = Scheduler(settings, spec, publish=lambda job, headers: None)
    nxt = scheduler.next_slots(3, now=datetime(2026, 12, 23, 12, tzinfo=UTC))
    assert [t.astimezone(NY).date() for t in nxt[spec.schedules[0].name]] == [
        date(2026, 12, 23),
        date(2026, 12, 24),
        date(2026, 12, 28),
    ]
    at = nxt[spec.schedules[0].name][0]
    job = scheduler.build(spec.schedules[0], at)
    assert job.job_id == slot_job_id(spec.schedules[0].name, at)
    assert job.deadline == at + timedelta(seconds=spec.schedules[0].deadline_after_s)


def test_the_retention_slot_prunes_once(tmp_path) -> None:
    from ludus.config import Settings
    from ludus.db.migrate import upgrade
    from ludus.schedule.scheduler import PRUNED, Scheduler
    from ludus.stores import models
    from ludus.stores.unit import transaction

    url = f"sqlite:///{tmp_path / 'r.db'}"
    upgrade(url)
    settings = Settings(database_url=url, retention_models_days=0, retention_studies_days=0)
    spec = ScheduleFile.model_validate({"retention": {"cron": "0 4 * * sun"}})
    at = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)  # Sunday 04:00 New York
    clock = [at + timedelta(minutes=1)]
    scheduler = Scheduler(settings, spec, publish=lambda job, headers: None, clock=lambda: clock[0])
    with transaction(scheduler.engine) as conn:
        old = models.register(conn, models.ModelVersion("sma_cross", "SPX", "1d", job_id=None, metrics=None, onnx=b"x"))
    fired = scheduler.tick()
    assert [(f.schedule, f.slot_at, f.outcome) for f in fired] == [(RETENTION_SCHEDULE, at, PRUNED)]
    assert "1 model version" in fired[0].detail
    with scheduler.engine.connect() as conn:
        assert models.get(conn, old) is None
    clock[0] = at + timedelta(hours=2)
    assert scheduler.tick() == []


def test_a_cron_too_dense_for_the_window_is_an_error_not_a_silent_cut() -> None:
    with pytest.raises(InputError, match="fires more than 10,000 times"):
        slot_times(
            "* * * * *", "XNYS", "any", NY, datetime(2026, 12, 1, tzinfo=UTC), datetime(2026, 12, 11, tzinfo=UTC)
        )

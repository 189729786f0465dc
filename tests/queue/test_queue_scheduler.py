"""The scheduler against the real RabbitMQ and PostgreSQL, driven by a fake clock: N slots in the exchange
calendar's sessions publish exactly N jobs - across a restart, with two schedulers racing, and when a
scheduler dies between claiming a slot and publishing it."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import exchange_calendars as xcals
import pandas as pd
import pytest
from queue_helpers import job

from ludus.schedule.scheduler import ELSEWHERE, PENDING, PUBLISHED, REFUSED, Scheduler
from ludus.schedule.slots import slot_job_id
from ludus.schedule.spec import ScheduleFile
from ludus.stores import slots
from ludus.stores.unit import transaction

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

NY = ZoneInfo("America/New_York")
START = datetime(2026, 12, 18, 12, 0, tzinfo=timezone.utc)  # a Friday; the window spans Christmas
END = datetime(2026, 12, 31, 23, 0, tzinfo=timezone.utc)
STEP = timedelta(hours=1)  # the fake clock's tick; the catch-up window (6 h) covers several


def expected_slots() -> list[datetime]:
    """17:30 New York on every XNYS session in the window, from exchange-calendars directly."""
    cal = xcals.get_calendar("XNYS")
    out = []
    for session in cal.sessions_in_range(pd.Timestamp(START.date()), pd.Timestamp(END.date())):
        at = datetime(session.year, session.month, session.day, 17, 30, tzinfo=NY).astimezone(timezone.utc)
        if START < at <= END:
            out.append(at)
    return out


@pytest.fixture
def spec(tmp_path) -> ScheduleFile:
    template = tmp_path / "nightly.json"
    template.write_text(json.dumps(job(trials=2)))
    return ScheduleFile.model_validate(
        {
            "calendar": "XNYS",
            "schedules": [
                {
                    "name": "spx-nightly",
                    "cron": "30 17 * * *",
                    "job": str(template),
                    "sessions": "day",
                    "deadline_after_s": 12 * 3600,
                }
            ],
        }
    )


class Clock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def ticks(start: datetime, end: datetime):
    at = start
    while at <= end:
        yield at
        at += STEP


def published_jobs(broker, queue: str) -> list[tuple[str, dict, dict]]:
    out = []
    while True:
        method, props, body = broker.ch.basic_get(queue, auto_ack=True)
        if method is None:
            return out
        out.append((props.message_id, dict(props.headers or {}), json.loads(body)))


def assert_exactly_the_slots(messages, expected) -> None:
    ids = [m[0] for m in messages]
    assert len(messages) == len(expected), (len(messages), len(expected))
    assert sorted(ids) == sorted(str(slot_job_id("spx-nightly", at)) for at in expected)
    for message_id, headers, body in messages:
        assert body["job_id"] == message_id and headers["x-ludus-schedule"] == "spx-nightly"
        slot = datetime.fromisoformat(headers["x-ludus-slot"])
        assert datetime.fromisoformat(body["deadline"]) == slot + timedelta(hours=12)


def test_n_slots_fire_n_jobs_across_a_restart(settings, broker, spec) -> None:
    expected = expected_slots()
    assert len(expected) == 9  # Dec 18, 21-24, 28-31: the weekends and Christmas Day are no sessions
    clock = Clock(START)
    middle = datetime(2026, 12, 23, 22, 0, tzinfo=timezone.utc)  # 17:00 New York: before that day's slot
    first = Scheduler(settings, spec, clock=clock, owner="first")
    fired = []
    for at in ticks(START, middle):
        clock.at = at
        fired += first.tick()
    # restart: a new process, new owner, its clock a little earlier than where the first one stopped
    second = Scheduler(settings, spec, clock=clock, owner="second")
    for at in ticks(middle - timedelta(hours=3), END):
        clock.at = at
        fired += second.tick()

    messages = published_jobs(broker, settings.jobs_queue)
    assert_exactly_the_slots(messages, expected)
    assert [f.outcome for f in fired] == [PUBLISHED] * len(expected)
    with transaction(first.engine) as conn:
        rows = slots.recent(conn, "spx-nightly", limit=100)
    assert {r.claimed_by for r in rows} == {"first", "second"} and all(r.published_at for r in rows)


def test_two_schedulers_racing_publish_each_slot_once(settings, broker, spec) -> None:
    expected = expected_slots()
    steps = list(ticks(START, END))
    barrier = threading.Barrier(2)
    outcomes: dict[str, list] = {"a": [], "b": []}
    errors: list[BaseException] = []

    def run(owner: str) -> None:
        clock = Clock(START)
        scheduler = Scheduler(settings, spec, clock=clock, owner=owner)
        try:
            for at in steps:
                barrier.wait(timeout=60)  # both tick the same instant: they race for every slot
                clock.at = at
                outcomes[owner] += scheduler.tick()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=run, args=(o,)) for o in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors

    assert_exactly_the_slots(published_jobs(broker, settings.jobs_queue), expected)
    every = outcomes["a"] + outcomes["b"]
    assert sum(f.outcome == PUBLISHED for f in every) == len(expected)
    assert all(f.outcome in (PUBLISHED, ELSEWHERE) for f in every)


def test_a_scheduler_dying_between_claim_and_publish_is_taken_over(settings, broker, spec) -> None:
    slot = expected_slots()[0]
    clock = Clock(slot + timedelta(minutes=1))

    def dies(job, headers):
        raise ConnectionError("the process was killed before the broker confirmed")

    first = Scheduler(settings, spec, clock=clock, owner="first", publish=dies, claim_timeout_s=120)
    assert [f.outcome for f in first.tick()] == [PENDING]
    assert published_jobs(broker, settings.jobs_queue) == []
    second = Scheduler(settings, spec, clock=clock, owner="second", claim_timeout_s=120)
    assert second.tick() == []  # the claim is fresh: its owner may still publish it
    clock.at = slot + timedelta(minutes=5)
    fired = second.tick()
    assert [(f.outcome, f.job_id) for f in fired] == [(PUBLISHED, slot_job_id("spx-nightly", slot))]
    assert second.tick() == []
    assert_exactly_the_slots(published_jobs(broker, settings.jobs_queue), [slot])


def test_a_template_the_checks_refuse_is_recorded_and_never_published(settings, broker, tmp_path) -> None:
    template = tmp_path / "bad.json"
    template.write_text(json.dumps(job(overrides={"fast": {"low": 500, "high": 900}})))
    spec = ScheduleFile.model_validate(
        {"schedules": [{"name": "spx-nightly", "cron": "30 17 * * *", "job": str(template)}]}
    )
    slot = expected_slots()[0]
    clock = Clock(slot + timedelta(minutes=1))
    scheduler = Scheduler(settings, spec, clock=clock, owner="s")
    fired = scheduler.tick()
    assert [f.outcome for f in fired] == [REFUSED] and "overrides.fast" in fired[0].detail
    clock.at = slot + timedelta(hours=1)
    assert scheduler.tick() == []  # recorded once, not retried every tick
    assert published_jobs(broker, settings.jobs_queue) == []
    with transaction(scheduler.engine) as conn:
        (row,) = slots.recent(conn, "spx-nightly")
    assert row.published_at is None and "overrides.fast" in row.error
    assert uuid.UUID(row.job_id) == slot_job_id("spx-nightly", slot)

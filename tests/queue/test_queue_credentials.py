"""A broker or database that refuses the credentials is said once at WARNING, with the URL masked."""

from __future__ import annotations

import logging
import time

import pytest
import sqlalchemy as sa
from queue_helpers import wait_for, worker_thread

from ludus.logs import forget_warnings

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def _refusals(caplog, name: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == name and r.levelno == logging.WARNING and "refused the credentials" in r.getMessage()
    ]


def test_a_broker_refusing_the_password_is_said_once_with_the_url_masked(settings, caplog):
    forget_warnings()
    wrong = settings.model_copy(update={"amqp_url": "amqp://guest:wr0ng-secret@127.0.0.1:5672/%2F"})
    caplog.set_level(logging.INFO)
    with worker_thread(wrong) as w:
        wait_for(
            lambda: len([r for r in caplog.records if "reconnecting" in r.getMessage()]) >= 3,
            60,
            "three reconnect attempts",
        )
        assert not w.health()[0]
    [said] = _refusals(caplog, "ludus.queue")
    assert "guest:***@127.0.0.1" in said.getMessage()
    assert "wr0ng-secret" not in caplog.text


def test_a_database_refusing_the_login_is_said_once_with_the_url_masked(settings, caplog):
    forget_warnings()
    url = sa.make_url(settings.database_url).set(username="nobody_here", password="wr0ng-secret")
    wrong = settings.model_copy(update={"database_url": url.render_as_string(hide_password=False)})
    caplog.set_level(logging.INFO)
    with worker_thread(wrong) as w:
        wait_for(lambda: not w.health()[1]["database"], 30, "the worker to see the database refuse it")
        time.sleep(3 * w.leases.beat_interval_s)  # several more probes, still one warning
    [said] = _refusals(caplog, "ludus.db")
    assert "nobody_here:***@" in said.getMessage()
    assert "wr0ng-secret" not in caplog.text

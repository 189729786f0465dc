"""The same checks before the queue and before a run: `ludus submit` refuses what a worker would refuse (exit 2,
`field=value: rule`, nothing published), and the worker refuses it before running anything."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from queue_helpers import REPO, job, settings_env, worker_thread

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def ludus(settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ludus.cli.app", *args],
        cwd=REPO,
        env=settings_env(settings),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("extra", "line"),
    [
        ({"strategy": "no_such_rule"}, "error: strategy=no_such_rule: unknown strategy; available:"),
        ({"overrides": {"fast": {"low": 500, "high": 900}}}, "error: overrides.fast"),
        ({"deadline": "2020-01-01T00:00:00Z"}, "error: deadline=2020-01-01T00:00:00+00:00: is in the past"),
        ({"symbols": ["QQQ"]}, "error: symbol=QQQ: no price table for QQQ at interval 1d; available: SPX_1d"),
    ],
)
def test_submit_refuses_what_a_worker_would_refuse(settings, broker, extra, line) -> None:
    done = ludus(settings, "submit", "-", stdin=json.dumps(job(**extra)))
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and done.stderr.startswith(line), done.stderr
    assert broker.depth(settings.jobs_queue) == 0


def test_submit_offline_skips_only_the_database_checks(settings, broker) -> None:
    unknown_symbol = job(symbols=["QQQ"])
    done = ludus(settings, "submit", "--offline", "-", stdin=json.dumps(unknown_symbol))
    assert done.returncode == 0, done.stderr
    assert broker.depth(settings.jobs_queue) == 1
    past = ludus(settings, "submit", "--offline", "-", stdin=json.dumps(job(deadline="2020-01-01T00:00:00Z")))
    assert past.returncode == 2 and "deadline=" in past.stderr
    assert broker.depth(settings.jobs_queue) == 1


def test_the_worker_refuses_a_job_whose_deadline_passed_in_the_queue_before_running_it(settings, broker) -> None:
    calls: list[str] = []

    def runner(job, **kwargs):  # the pipeline must never be reached
        calls.append(str(job.job_id))
        raise AssertionError("ran a job the checks refuse")

    body = job(deadline="2020-01-01T00:00:00Z")  # valid when Conductor sent it; past now
    with worker_thread(settings, runner=runner):
        broker.publish(body)
        broker.wait(lambda: broker.results_of(body["job_id"]), 60, "the rejection")
    (result,) = broker.results_of(body["job_id"])
    assert result["status"] == "rejected" and result["error"]["field"] == "deadline"
    assert "in the past" in result["error"]["reason"]
    assert calls == []
    assert [d.job_id for d in broker.dead_letters()] == [body["job_id"]]

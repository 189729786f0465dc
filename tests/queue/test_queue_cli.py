"""`ludus submit`, `ludus watch` and `ludus dlq` against the real broker, run as the user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pytest
from queue_helpers import REPO, job, job_record, settings_env, worker_thread

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def ludus(settings, *args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ludus.cli.app", *args],
        cwd=REPO,
        env=settings_env(settings),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_submit_publishes_a_valid_job_and_prints_its_id(settings, broker, tmp_path):
    body = job()
    path = tmp_path / "job.json"
    path.write_text(json.dumps(body))

    done = ludus(settings, "submit", str(path))

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == body["job_id"]
    assert broker.depth(settings.jobs_queue) == 1
    _method, props, raw = broker.ch.basic_get(settings.jobs_queue, auto_ack=True)
    assert json.loads(raw)["job_id"] == body["job_id"]
    assert props.message_id == body["job_id"] and props.delivery_mode == 2


def test_submit_refuses_a_bad_job_naming_the_field_and_publishes_nothing(settings, broker, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(job(search={"trials": -3})))

    done = ludus(settings, "submit", str(path))

    assert done.returncode == 2
    assert "search.trials" in done.stderr + done.stdout and "-3" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert broker.depth(settings.jobs_queue) == 0


def test_submit_reads_stdin(settings, broker):
    body = job()
    done = ludus(settings, "submit", "-", stdin=json.dumps(body))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == body["job_id"]
    assert broker.depth(settings.jobs_queue) == 1


def test_watch_follows_a_job_to_its_result(settings, broker, tmp_path):
    body = job(trials=4)
    path = tmp_path / "job.json"
    path.write_text(json.dumps(body))
    with worker_thread(settings):
        # submitted first: `watch` of an id nobody knows yet gives up after a grace period, and racing a
        # `submit` subprocess against that period fails on a loaded machine
        assert ludus(settings, "submit", str(path)).returncode == 0
        watcher = subprocess.Popen(
            [sys.executable, "-m", "ludus.cli.app", "watch", body["job_id"], "--timeout", "120"],
            cwd=REPO,
            env=settings_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        out, err = watcher.communicate(timeout=150)
    assert watcher.returncode == 0, err
    assert "succeeded" in out and "SPX" in out


def test_watch_of_a_finished_job_prints_the_stored_result(settings, broker):
    body = job(trials=4)
    with worker_thread(settings):
        broker.publish(body)
        broker.wait(lambda: broker.results_of(body["job_id"]), 120, "the result")
    done = ludus(settings, "watch", body["job_id"], "--timeout", "30")
    assert done.returncode == 0, done.stderr
    assert "succeeded" in done.stdout


def test_watch_rejects_a_job_id_that_is_not_a_uuid(settings):
    done = ludus(settings, "watch", "not-a-uuid")
    assert done.returncode == 2 and "not a UUID" in done.stderr + done.stdout


def test_dlq_lists_rejected_jobs_with_their_reason_and_replays_them(settings, broker):
    bad = job(symbols=("NOPE",))
    with worker_thread(settings):
        broker.publish(bad)
        broker.wait(lambda: broker.results_of(bad["job_id"]), 60, "the error result")
        broker.wait(lambda: broker.depth(settings.dead_letter_queue) == 1, 30, "the dead letter")

    listed = ludus(settings, "dlq", "list")
    assert listed.returncode == 0, listed.stderr
    assert bad["job_id"] in listed.stdout and "NOPE" in listed.stdout
    assert "1 dead letter(s)" in listed.stdout
    assert broker.depth(settings.dead_letter_queue) == 1, "listing leaves the letters in place"

    other = str(uuid.uuid4())
    none = ludus(settings, "dlq", "replay", "--job-id", other)
    assert none.returncode == 0 and "0 message(s)" in none.stdout
    replayed = ludus(settings, "dlq", "replay", "--job-id", bad["job_id"])
    assert replayed.returncode == 0, replayed.stderr
    assert "1 message(s) sent back" in replayed.stdout
    assert broker.depth(settings.dead_letter_queue) == 0
    assert broker.depth(settings.jobs_queue) == 1
    _, _, raw = broker.ch.basic_get(settings.jobs_queue, auto_ack=True)
    assert json.loads(raw)["job_id"] == bad["job_id"]


def test_dlq_replay_needs_exactly_one_selector(settings):
    done = ludus(settings, "dlq", "replay")
    assert done.returncode == 2 and "--job-id" in done.stderr + done.stdout


def test_dlq_replay_of_a_rejected_job_runs_it_again_as_a_new_attempt(settings, broker, spx_bars):
    import dataclasses

    from ludus.data.prices import PriceStore
    from ludus.db.engine import make_engine

    bad = job(symbols=("NOPE",))
    jid = bad["job_id"]
    with worker_thread(settings):
        broker.publish(bad)
        broker.wait(lambda: broker.results_of(jid), 60, "the rejection")
        broker.wait(lambda: broker.depth(settings.dead_letter_queue) == 1, 30, "the dead letter")
        # what the job lacked is there now: NOPE's prices are loaded
        PriceStore(make_engine(settings.database_url)).write(dataclasses.replace(spx_bars, symbol="NOPE"))
        replayed = ludus(settings, "dlq", "replay", "--job-id", jid)
        assert replayed.returncode == 0, replayed.stderr
        assert "runs again as a new attempt" in replayed.stdout
        broker.wait(lambda: len(broker.results_of(jid)) >= 2, 120, "the result of the re-run")
    assert [r["status"] for r in broker.results_of(jid)] == ["rejected", "succeeded"]
    record = job_record(settings.database_url, jid)
    assert (record.status, record.attempts, record.replays) == ("succeeded", 2, 1)
    assert broker.depth(settings.dead_letter_queue) == 0 and broker.depth(settings.jobs_queue) == 0


def test_dlq_replay_refuses_what_would_only_be_refused_again_and_says_what_to_do(settings, broker):
    first = job(trials=2)
    conflicting = {**first, "search": {"trials": 3, "seed": 1}}
    with worker_thread(settings):
        broker.publish(b'{"job_id": "%s", "strategy": 5}' % str(uuid.uuid4()).encode())
        broker.publish(first)
        broker.wait(lambda: broker.results_of(first["job_id"]), 90, "the first job")
        broker.publish(conflicting)
        broker.wait(lambda: broker.depth(settings.dead_letter_queue) == 2, 60, "two dead letters")
    done = ludus(settings, "dlq", "replay", "--all")
    assert done.returncode == 2, done.stdout + done.stderr
    said = done.stdout + done.stderr
    assert "0 message(s) sent back" in said and "ludus submit" in said
    assert "not a valid job" in said and "strategy" in said  # the contract's field=value: rule
    assert "new job_id" in said  # the conflicting payload
    assert broker.depth(settings.dead_letter_queue) == 2 and broker.depth(settings.jobs_queue) == 0


def test_watch_returns_at_once_for_rejected_and_failed_jobs(settings, broker):
    def broken(job_, **_kw):
        raise RuntimeError("the engine fell over")

    rejected = job(symbols=("NOPE",))
    never_a_job = str(uuid.uuid4())
    with worker_thread(settings):
        broker.publish(rejected)
        broker.publish(b'{"job_id": "%s", "strategy": 5}' % never_a_job.encode())
        broker.wait(
            lambda: broker.results_of(rejected["job_id"]) and broker.results_of(never_a_job), 60, "both rejections"
        )
    failed = job(trials=2)
    with worker_thread(settings, runner=broken):
        broker.publish(failed)
        broker.wait(lambda: broker.results_of(failed["job_id"]), 60, "the failure")
    for jid, words in (
        (rejected["job_id"], "NOPE"),
        (never_a_job, "strategy"),
        (failed["job_id"], "the engine fell over"),
    ):
        done = ludus(settings, "watch", jid, timeout=60)  # no --timeout: it must not wait
        assert done.returncode == 1, done.stdout + done.stderr
        assert words in done.stdout and ("rejected" in done.stdout or "failed" in done.stdout)


def test_watch_says_unknown_job_for_an_id_never_seen(settings, broker):
    done = ludus(settings, "watch", str(uuid.uuid4()), timeout=60)
    assert done.returncode == 2 and "unknown job" in done.stderr, done.stdout + done.stderr

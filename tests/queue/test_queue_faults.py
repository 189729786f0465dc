"""Faults on the real stack: worker killed mid-job, broker connections closed, database gone, consumer timeout.

Jobs are static searches of 32 trials (two progress batches of 16), a few seconds each: long enough to be hit
in the middle, short enough for the suite.
"""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request

import optuna
import pytest
import sqlalchemy as sa
from queue_helpers import (
    TcpProxy,
    close_connections_named,
    job,
    job_record,
    optimized_rows,
    rabbitmqctl,
    start_worker_process,
    study_trials,
    wait_for,
    worker_thread,
)

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres, pytest.mark.slow]

TRIALS = 32


def _in_search(broker, jid: str, step: int) -> bool:
    broker.drain()
    return any(
        e.get("job_id") == jid and e.get("phase") == "search" and (e.get("step") or 0) >= step for e in broker.progress
    )


def _assert_done_once(settings, broker, jid: str) -> None:
    results = broker.results_of(jid)
    assert results and all(r["status"] == "succeeded" for r in results), results
    # exactly one row per (strategy, symbol, interval, day); a later job for the same day replaces it
    rows = optimized_rows(settings.database_url)
    assert len(rows) == 1 and rows[0][:3] == ("sma_cross", "SPX", "1d"), rows
    assert job_record(settings.database_url, jid).status == "succeeded"
    complete = [t for t in study_trials(settings.database_url, jid) if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == TRIALS  # the search reached its target once, not once per attempt
    assert broker.depth(settings.jobs_queue) == 0 and broker.depth(settings.dead_letter_queue) == 0


def test_sigkill_mid_job_then_a_new_worker_resumes_it(settings, broker, tmp_path):
    body = job(trials=TRIALS)
    jid = body["job_id"]
    log = tmp_path / "workers.log"
    first = start_worker_process(settings, log)
    try:
        broker.publish(body)
        broker.wait(lambda: _in_search(broker, jid, 16), 120, "the first search batch")
        killed_at = time.time()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    finally:
        if first.poll() is None:
            first.kill()
    record = job_record(settings.database_url, jid)
    assert record.status == "running" and record.attempts == 1  # acked, held only by the dead worker's lease
    done_before = [t for t in study_trials(settings.database_url, jid) if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done_before) >= 16
    second = start_worker_process(settings, log)
    try:
        broker.wait(lambda: broker.results_of(jid), 120, "the result from the second worker")
        # SIGTERM on an idle worker: it stops promptly and cleanly
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    finally:
        if second.poll() is None:
            second.kill()
    _assert_done_once(settings, broker, jid)
    record = job_record(settings.database_url, jid)
    assert record.attempts == 2
    # trials finished before the kill were kept: the resumed run did not redo them
    kept = {
        t.number
        for t in study_trials(settings.database_url, jid)
        if t.state == optuna.trial.TrialState.COMPLETE and t.datetime_complete.timestamp() <= killed_at
    }
    assert kept >= {t.number for t in done_before}
    assert any("resumed by" in (e.get("message") or "") for e in broker.progress if e.get("job_id") == jid), (
        log.read_text()[-3000:]
    )


def test_broker_connections_closed_mid_job(settings, broker):
    body = job(trials=TRIALS)
    jid = body["job_id"]
    broker.publish(body)
    with worker_thread(settings) as w:
        broker.wait(lambda: _in_search(broker, jid, 0), 60, "the search to start")
        assert close_connections_named(f"ludus-worker {w.id}") == 1
        wait_for(lambda: not w.health()[1]["broker"], 10, "the worker to notice")
        broker.wait(lambda: broker.results_of(jid), 120, "the result after reconnecting")
        assert w.health()[0]
        second = job(trials=2)
        broker.publish(second)  # and it consumes again after the reconnect
        broker.wait(lambda: broker.results_of(second["job_id"]), 60, "a job published after the reconnect")
    _assert_done_once(settings, broker, jid)
    assert job_record(settings.database_url, jid).attempts == 1  # never ran twice


def test_database_unreachable_for_a_while(settings, broker, ludus_db):
    from ludus.pipeline import run_job

    url = sa.make_url(ludus_db)
    proxy = TcpProxy(url.port or 5432).start()
    proxied = settings.model_copy(update={"database_url": url.set(port=proxy.port).render_as_string(False)})
    body = job(trials=TRIALS)
    jid = body["job_id"]
    runs: list[str] = []

    def counted(job_, **kwargs):
        runs.append(str(job_.job_id))
        return run_job(job_, **kwargs)

    broker.publish(body)
    try:
        with worker_thread(proxied, http_port=0, runner=counted) as w:
            broker.wait(lambda: _in_search(broker, jid, 0), 60, "the search to start")
            proxy.stop()
            wait_for(lambda: not w.health()[1]["database"], 15, "the worker to see the database gone")
            with pytest.raises(urllib.error.HTTPError) as err:
                urllib.request.urlopen(f"http://127.0.0.1:{w.http_port}/healthz", timeout=5)
            assert err.value.code == 503
            late = job(trials=2)
            broker.publish(late)  # arrives during the outage: left in the queue, not dead-lettered
            time.sleep(5)  # longer than the lease (3 s)
            assert broker.depth(settings.jobs_queue) == 1
            assert broker.depth(settings.dead_letter_queue) == 0
            # the outage lasts until the running job has met it (on a loaded machine its first write to the
            # database can come later than the few seconds above): the test is about what the worker does then
            wait_for(lambda: w.metrics.retries._value.get() >= 1, 120, "the running job to meet the outage")
            proxy.start()
            broker.wait(
                lambda: broker.results_of(jid) and broker.results_of(late["job_id"]),
                180,
                "both results after the database came back",
            )
            assert (
                json.loads(urllib.request.urlopen(f"http://127.0.0.1:{w.http_port}/healthz", timeout=5).read())[
                    "status"
                ]
                == "ok"
            )
    finally:
        proxy.stop()
    _assert_done_once(settings, broker, jid)
    assert job_record(settings.database_url, late["job_id"]).status == "succeeded"
    # one outage, one resume: the worker waits for the database before it resumes the job, instead of
    # restarting the pipeline against a database that is still down (it did 5-14 times)
    assert runs.count(jid) <= 2, runs
    assert runs.count(late["job_id"]) == 1


def _broker_env(key: str):
    out = rabbitmqctl("eval", f"application:get_env(rabbit, {key}).").strip()
    return out[len("{ok,") : -1] if out.startswith("{ok,") else None


def _set_broker_env(key: str, value) -> None:
    if value is None:
        rabbitmqctl("eval", f"application:unset_env(rabbit, {key}).")
    else:
        rabbitmqctl("eval", f"application:set_env(rabbit, {key}, {value}).")


def _rabbitmqctl_reaches(amqp_url: str) -> bool:
    """True when the node rabbitmqctl talks to is the broker behind ``amqp_url`` (it lists our connection)."""
    import uuid

    import pika

    name = f"ludus-test-probe-{uuid.uuid4().hex[:8]}"
    params = pika.URLParameters(amqp_url)
    params.client_properties = {"connection_name": name}
    conn = pika.BlockingConnection(params)
    try:
        return name in rabbitmqctl("list_connections", "client_properties")
    finally:
        conn.close()


@pytest.fixture
def short_consumer_timeout(amqp_url):
    """consumer_timeout 2 s, checked every second (channels opened from now on) on the broker of
    ``amqp_url`` only (the fixture refuses to touch another node), and restored afterwards, checked."""
    assert _rabbitmqctl_reaches(amqp_url), "rabbitmqctl reaches another node than the test broker"
    keys = ("consumer_timeout", "channel_tick_interval")
    saved = {k: _broker_env(k) for k in keys}
    try:
        _set_broker_env("consumer_timeout", 2000)
        _set_broker_env("channel_tick_interval", 1000)
        yield 2.0
    finally:
        for key, value in saved.items():
            _set_broker_env(key, value)
        assert {k: _broker_env(k) for k in keys} == saved, "the broker settings were not restored"


def test_job_longer_than_the_consumer_timeout_runs_once(settings, broker, amqp_url, short_consumer_timeout):
    import pika

    from ludus.pipeline import run_job

    # control: the low timeout is in force (a message held unacked loses its channel)
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    broker.publish(b"held")
    method, _, _ = ch.basic_get(settings.jobs_queue)
    assert method is not None
    end = time.monotonic() + 15
    while ch.is_open and time.monotonic() < end:
        conn.process_data_events(time_limit=0.5)
    assert not ch.is_open, "the broker did not enforce the consumer timeout"
    conn.close()
    wait_for(lambda: broker.depth(settings.jobs_queue) == 1, 10, "the held message to return")
    broker.ch.queue_purge(settings.jobs_queue)

    def slow_run_job(job_, **kwargs):  # the real pipeline, made longer than the timeout
        time.sleep(3 * short_consumer_timeout)
        return run_job(job_, **kwargs)

    body = job(trials=4)
    jid = body["job_id"]
    broker.publish(body)
    with worker_thread(settings, runner=slow_run_job) as w:
        broker.wait(lambda: broker.results_of(jid), 90, "the result")
        time.sleep(2 * short_consumer_timeout)  # any redelivery would show up now
        broker.drain()
        assert w.metrics.accepted._value.get() == 1 and w.metrics.duplicates._value.get() == 0
        assert w.health()[0]  # its channel was never closed for a timeout
    assert len(broker.results_of(jid)) == 1
    record = job_record(settings.database_url, jid)
    assert record.status == "succeeded" and record.attempts == 1
    assert len(optimized_rows(settings.database_url, jid)) == 1
    assert broker.depth(settings.jobs_queue) == 0 and broker.depth(settings.dead_letter_queue) == 0


def test_sigterm_grace_over_mid_job_leaves_it_for_the_next_worker(settings, broker):
    short = settings.model_copy(update={"shutdown_grace_s": 0.5})
    body = job(trials=TRIALS)
    jid = body["job_id"]
    broker.publish(body)
    with worker_thread(short) as w:
        broker.wait(lambda: _in_search(broker, jid, 0), 60, "the search to start")
        w.stop()
        wait_for(lambda: not w.running_jobs(), 60, "the job to unwind at its next progress event")
    record = job_record(settings.database_url, jid)
    assert record.status == "accepted" and record.lease_owner is None  # released, not finished
    assert broker.results_of(jid) == []
    with worker_thread(settings):
        broker.wait(lambda: broker.results_of(jid), 120, "the result from the next worker")
    _assert_done_once(settings, broker, jid)

"""The worker on a real broker and database: runs once per job id, rejects bad input loudly, reports health."""

from __future__ import annotations

import json
import urllib.request

import pika
import pytest
from queue_helpers import job, job_record, optimized_rows, start_worker_process, wait_for, worker_thread

from ludus.queue.deadletter import H_FIELD, H_JOB_ID, H_REASON
from ludus.queue.topology import declare

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def test_topology_is_idempotent_and_dead_letters_past_the_delivery_limit(amqp_url, topology, broker):
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    declare(conn.channel(), topology)  # same arguments again: no PRECONDITION_FAILED
    conn.close()
    broker.publish(b"poison")
    # a consumer that keeps requeueing: the quorum queue's x-delivery-limit moves it to the DLQ
    for _ in range(topology.delivery_limit + 3):
        method, _, _ = broker.ch.basic_get(topology.jobs_queue)
        if method is None:
            break
        broker.ch.basic_nack(method.delivery_tag, requeue=True)
    wait_for(lambda: broker.depth(topology.dead_letter_queue) > 0, 10, "the poison message's dead letter", interval=0.1)
    letters = broker.dead_letters()
    assert len(letters) == 1 and letters[0].body == b"poison"
    assert "delivery_limit" in letters[0].reason
    assert broker.depth(topology.jobs_queue) == 0


def test_duplicates_run_once_and_get_identical_results(settings, broker):
    body = job(trials=4)
    jid = body["job_id"]
    for _ in range(3):
        broker.publish(body)
    with worker_thread(settings) as w:
        broker.wait(lambda: len(broker.results_of(jid)) >= 3, 90, "three results")
        assert w.metrics.accepted._value.get() == 1
        assert w.metrics.duplicates._value.get() == 2
    results = broker.results_of(jid)
    assert len(results) == 3
    assert all(r["status"] == "succeeded" for r in results)
    # the stored result is what duplicates get: identical payloads
    assert results[0] == results[1] == results[2]
    rows = optimized_rows(settings.database_url, jid)
    assert len(rows) == 1 and len(set(rows)) == 1
    record = job_record(settings.database_url, jid)
    assert record.status == "succeeded" and record.attempts == 1
    assert broker.depth(settings.jobs_queue) == 0


BAD = [
    (b"{not json", "$", "malformed JSON"),
    (json.dumps(job(candidates=-3)).encode(), "candidates", "greater than or equal"),
    (json.dumps(job(strategy="no_such_strategy")).encode(), "strategy", "unknown strategy"),
    (json.dumps(job(symbols=["ZZZZ"])).encode(), "symbol", "no price table"),
    (
        json.dumps(job(lookback={"start": "1990-01-01", "end": "1990-03-01"})).encode(),
        "lookback",
        "0 bars in the lookback window",
    ),
]


def test_bad_input_gets_an_error_result_and_a_dead_letter_with_the_reason(settings, broker):
    valid = job(trials=2)
    for payload, _, _ in BAD:
        broker.publish(payload)
    broker.publish(valid)
    with worker_thread(settings, http_port=0) as w:
        broker.wait(lambda: len(broker.results) >= len(BAD) + 1, 90, "every result")
        health = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{w.http_port}/healthz", timeout=5).read())
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{w.http_port}/metrics", timeout=5).read().decode()
    assert health["status"] == "ok" and health["broker"] and health["database"]
    values = dict(line.rsplit(" ", 1) for line in metrics.splitlines() if line and not line.startswith("#"))
    assert float(values["ludus_jobs_dead_lettered_total"]) == len(BAD), values
    assert float(values["ludus_jobs_succeeded_total"]) == 1.0
    # bad input is counted apart from failures: an alert on failures does not fire on a malformed message
    assert float(values["ludus_jobs_rejected_total"]) == len(BAD)
    assert float(values["ludus_jobs_failed_total"]) == 0.0
    assert "ludus_job_duration_seconds_bucket" in metrics and "ludus_backlog" in metrics
    by_status = {}
    for r in broker.results:
        by_status.setdefault(r["status"], []).append(r)
    assert [r["job_id"] for r in by_status["succeeded"]] == [valid["job_id"]]
    errors = by_status["rejected"]
    assert len(errors) == len(BAD)
    letters = broker.dead_letters()
    assert len(letters) == len(BAD)
    assert sorted(ltr.body for ltr in letters) == sorted(p for p, _, _ in BAD)
    for payload, field, words in BAD:
        letter = next(ltr for ltr in letters if ltr.body == payload)
        assert letter.headers[H_REASON] and words in letter.reason, (letter.reason, words)
        assert letter.headers[H_FIELD] == field or not field, letter.headers[H_FIELD]
        assert letter.at
        readable = json.loads(payload)["job_id"] if payload.startswith(b'{"') else None
        if readable:
            assert letter.headers[H_JOB_ID] == readable
            result = next(r for r in errors if r["job_id"] == readable)
            assert result["error"]["reason"] and words in result["error"]["reason"]
    # the unreadable one still got an error result, without a job id
    assert any(r["job_id"] is None and "malformed JSON" in r["error"]["reason"] for r in errors)
    # rejected jobs that got as far as the jobs table are recorded as rejected, and wrote nothing
    unknown_symbol = json.loads(BAD[3][0])["job_id"]
    assert job_record(settings.database_url, unknown_symbol).status == "rejected"
    assert optimized_rows(settings.database_url, unknown_symbol) == []


def test_worker_logs_one_json_line_per_job_transition(settings, broker, tmp_path):
    import signal

    ok, bad = job(trials=2), job(strategy="no_such_strategy")
    log = tmp_path / "worker.log"
    proc = start_worker_process(settings.model_copy(update={"log_format": "json", "log_level": "INFO"}), log)
    try:
        broker.publish(ok)
        broker.publish(bad)
        broker.wait(lambda: broker.results_of(ok["job_id"]) and broker.results_of(bad["job_id"]), 90, "both")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "Basic.Return" not in text and "Traceback" not in text
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines and all({"time", "level", "name", "message"} <= set(line) for line in lines)
    mine = [line for line in lines if line.get("job_id") == ok["job_id"]]
    steps = [line["transition"] for line in mine]
    assert steps[0] == "accepted" and steps[1] == "started" and steps[-1] == "finished", steps
    phases = [line for line in mine if line["transition"] == "phase"]
    assert [p["phase"] for p in phases][:2] == ["accepted", "loading_data"]
    assert all(p["previous_s"] >= 0 for p in phases[1:])
    assert mine[-1]["status"] == "succeeded" and mine[-1]["duration_s"] > 0
    [refused] = [line for line in lines if line.get("job_id") == bad["job_id"] and line.get("transition") == "rejected"]
    assert refused["status"] == "rejected" and "no_such_strategy" in refused["message"]

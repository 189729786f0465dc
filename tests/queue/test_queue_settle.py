"""Every message settles, whatever its bytes, on the real broker and database.

Each case of the chaos report is reproduced and must end in a dead letter with a reason and an error result
(or, for a job's own outcome, a recorded outcome): lone surrogates, invalid UTF-8, nesting deeper than the
recursion limit, headers near frame_max, a second payload under a known job id, conclusions that fail, the
two lease-lost paths. "Unsettled" is measured, not assumed: once the worker has stopped (its connection
closed), a message it left unacked would be back in the jobs queue.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from queue_helpers import job, job_record, optimized_rows, worker_thread

from ludus.queue.deadletter import H_DROPPED, H_JOB_ID, H_KIND, H_REASON
from ludus.queue.policy import CAUSE_CONFLICT, CAUSE_FAILED, CAUSE_INVALID
from ludus.stores.jobs import LeaseLostError

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def _deep(depth: int) -> bytes:
    return (
        b'{"job_id": "%s", "strategy": "sma_cross", "symbols": ["SPX"], "x": ' % str(uuid.uuid4()).encode()
        + b"[" * depth
        + b"]" * depth
        + b"}"
    )


HOSTILE = [
    # (name, body, headers, words in the reason)
    ("surrogate-field", json.dumps(job(strategy="\ud800")).encode(), None, "lone surrogate \\ud800"),
    (
        "surrogate-override",
        json.dumps(job(overrides={"fast": {"choices": ["\ud800"]}})).encode(),
        None,
        "overrides.fast.choices.0",
    ),
    ("surrogate-key", json.dumps({**job(), "\udc00": 1}).encode(), None, "field name is not valid Unicode"),
    ("invalid-utf8", json.dumps(job()).encode()[:-1] + b', "x": "\xff\xfe"}', None, "not UTF-8"),
    ("deep-1500", _deep(1_500), None, "nested too deeply"),
    ("deep-100000", _deep(100_000), None, "nested too deeply"),
    (
        "deep-valid-json",
        (json.dumps(job())[:-1] + ', "overrides": {"fast": {"choices": ' + "[" * 40 + "1" + "]" * 40 + "}}}").encode(),
        None,
        "nested deeper than 32 levels",
    ),
    ("header-near-frame-max", b"{not json 1", {"x-huge": "h" * 130_800}, "malformed JSON"),
    ("header-invalid-utf8", b"{not json 2", {"x-odd": b"\xed\xa0\x80\xff"}, "malformed JSON"),
]


def _run_until_result(settings, broker, runner, timeout: float, what: str, *, idle: bool = False) -> str:
    """Publish a two-trial job and run a worker with ``runner`` until the job's result is out (``idle``: and
    check that the worker holds no job then); returns the job id."""
    body = job(trials=2)
    jid = body["job_id"]
    broker.publish(body)
    with worker_thread(settings, runner=runner) as w:
        broker.wait(lambda: broker.results_of(jid), timeout, what)
        if idle:
            assert w.running_jobs() == []
    return jid


def test_hostile_messages_are_each_dead_lettered_once_with_a_reason_and_never_break_the_connection(settings, broker):
    import pika

    for _name, body, headers, _words in HOSTILE:
        broker.ch.basic_publish(
            settings.jobs_exchange, "job", body, pika.BasicProperties(delivery_mode=2, headers=headers), mandatory=True
        )
    valid = job(trials=2)
    broker.publish(valid)
    with worker_thread(settings) as w:
        broker.wait(lambda: len(broker.results) >= len(HOSTILE) + 1, 120, "every result")
        generation = w.broker.generation
        assert w.health()[0]
    assert generation == 1, "the worker had to reconnect: a message broke its connection"
    assert broker.depth(settings.jobs_queue) == 0, "a message was left unacked (back in the queue now)"
    rejected = [r for r in broker.results if r["status"] == "rejected"]
    assert len(rejected) == len(HOSTILE)
    assert [r["job_id"] for r in broker.results if r["status"] == "succeeded"] == [valid["job_id"]]
    letters = broker.dead_letters()
    assert len(letters) == len(HOSTILE)
    for name, body, _headers, words in HOSTILE:
        letter = next(ltr for ltr in letters if ltr.body == body)
        said = f"{letter.field}={letter.value}: {letter.reason}"  # field=value: rule, as `ludus dlq list` shows
        assert words in said, (name, said)
        assert letter.headers[H_KIND] == CAUSE_INVALID and letter.headers[H_REASON]
        assert any(words in (r["error"]["reason"] or "") or words in (r["error"]["field"] or "") for r in rejected), (
            name
        )
    huge = next(
        ltr
        for ltr in letters
        if "x-huge" in ltr.headers or (H_DROPPED in ltr.headers and "x-huge" in ltr.headers[H_DROPPED])
    )
    assert len(str(huge.headers.get("x-huge", ""))) <= 4000  # kept short, or dropped and named


def test_a_known_job_id_with_another_payload_gets_an_error_result_and_a_dead_letter(settings, broker):
    first = job(trials=2)
    jid = first["job_id"]
    other = {**first, "search": {"trials": 3, "seed": 1}}
    with worker_thread(settings):
        broker.publish(first)
        broker.wait(lambda: broker.results_of(jid), 90, "the first result")
        broker.publish(other)
        broker.wait(lambda: len(broker.results_of(jid)) >= 2, 60, "the refusal")
    results = broker.results_of(jid)
    assert [r["status"] for r in results] == ["succeeded", "rejected"]
    error = results[1]["error"]
    assert error["field"] == "job_id" and "different payload" in error["reason"] and "new job_id" in error["reason"]
    [letter] = broker.dead_letters()
    assert letter.headers[H_KIND] == CAUSE_CONFLICT and letter.headers[H_JOB_ID] == jid
    assert json.loads(letter.body)["search"]["trials"] == 3
    record = job_record(settings.database_url, jid)
    assert record.status == "succeeded" and record.payload["search"]["trials"] == 2  # the first job is untouched
    assert broker.depth(settings.jobs_queue) == 0


def test_a_failure_carrying_unencodable_text_fails_the_job_with_an_escaped_reason(settings, broker):
    def broken(job_, **_kw):
        raise ValueError("choice \ud800 broke " + "x" * 200_000)

    jid = _run_until_result(settings, broker, broken, 60, "the failed result", idle=True)
    [result] = broker.results_of(jid)
    assert result["status"] == "failed" and "\\ud800" in result["error"]["reason"]
    assert len(result["error"]["reason"]) <= 2000
    record = job_record(settings.database_url, jid)
    assert record.status == "failed" and record.lease_owner is None  # never left running
    [letter] = broker.dead_letters()
    assert letter.headers[H_KIND] == CAUSE_FAILED and "\\ud800" in letter.reason
    assert json.loads(letter.body)["job_id"] == jid
    assert broker.depth(settings.jobs_queue) == 0


def test_an_outcome_that_cannot_be_recorded_is_recorded_as_failed_not_left_running(settings, broker):
    def unrecordable(job_, **_kw):
        return {"job_id": str(job_.job_id), "status": "succeeded", "timings": {"x": object()}}

    jid = _run_until_result(settings, broker, unrecordable, 60, "a result", idle=True)
    [result] = broker.results_of(jid)
    assert result["status"] == "failed" and "recording the outcome" in result["error"]["reason"]
    assert job_record(settings.database_url, jid).status == "failed"


def test_lease_lost_inside_a_run_releases_the_job_instead_of_failing_it(settings, broker):
    from ludus.pipeline import run_job

    calls: list[int] = []

    def loses_its_lease_once(job_, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise LeaseLostError("persist found another owner")  # what stores.jobs.finish raises
        return run_job(job_, **kwargs)

    jid = _run_until_result(settings, broker, loses_its_lease_once, 90, "the result of the second attempt")
    assert [r["status"] for r in broker.results_of(jid)] == ["succeeded"]
    assert broker.dead_letters() == []  # released, never dead-lettered
    record = job_record(settings.database_url, jid)
    assert record.status == "succeeded" and record.attempts == 2 and len(calls) == 2


def test_a_job_that_finishes_between_two_heartbeats_still_publishes_its_result(settings, broker):
    """The flaky recovery's cause: the heartbeat saw the job's own publishing transaction end the lease, took
    it for a lost lease, and the pipeline's last progress event turned a succeeded job into a release with
    no result published."""
    from ludus.pipeline import run_job

    def slow_after_persist(job_, progress, **kwargs):
        def gate(event):
            progress(event)
            if event.phase == "persisted" and "written" in event.message:
                time.sleep(settings.job_lease_s)  # several heartbeats pass here

        return run_job(job_, progress=gate, **kwargs)

    jid = _run_until_result(settings, broker, slow_after_persist, 90, "the result")
    assert [r["status"] for r in broker.results_of(jid)] == ["succeeded"]
    assert job_record(settings.database_url, jid).status == "succeeded"
    assert len(optimized_rows(settings.database_url, jid)) == 1
    final = [e for e in broker.progress if e.get("job_id") == jid and e.get("phase") in ("succeeded", "failed")]
    assert [e["phase"] for e in final] == ["succeeded"]  # announced once, from the outbox

"""Results arrive: written with the job's outcome in one transaction, delivered by whoever is alive, kept in a
durable queue for consumers that were not listening."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pika
import pytest
from queue_helpers import REPO, job, job_record, settings_env, wait_for, worker_thread

from ludus.db.engine import make_engine
from ludus.queue.topology import declare
from ludus.stores import outbox

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

HERE = Path(__file__).resolve().parent


def _outbox_of(url: str, job_id: str) -> list[outbox.OutboxMessage]:
    with make_engine(url).connect() as conn:
        return outbox.of_job(conn, job_id)


def _results_in_queue(amqp_url: str, queue: str) -> list[dict]:
    """Every message of the durable results queue (consumed: the test owns this queue)."""
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    try:
        ch = conn.channel()
        out = []
        while True:
            method, _props, body = ch.basic_get(queue, auto_ack=True)
            if method is None:
                return out
            out.append(json.loads(body))
    finally:
        conn.close()


def test_sigkill_between_commit_and_result_publish_still_yields_exactly_one_result(settings, broker, tmp_path):
    body = job(trials=2)
    jid = body["job_id"]
    log = tmp_path / "worker.log"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "worker_dies_after_commit.py")],
        cwd=REPO,
        env=settings_env(settings),
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        broker.publish(body)
        assert proc.wait(120) == -signal.SIGKILL, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    record = job_record(settings.database_url, jid)
    assert record.status == "succeeded" and record.attempts == 1
    broker.drain()
    assert broker.results_of(jid) == []  # it died before publishing anything of the outcome
    stored = _outbox_of(settings.database_url, jid)
    assert [(m.kind, m.delivered_at) for m in stored] == [("progress", None), ("result", None)]
    with worker_thread(settings):
        broker.wait(lambda: broker.results_of(jid), 60, "the result, delivered by the next worker")
        wait_for(
            lambda: all(m.delivered_at for m in _outbox_of(settings.database_url, jid)),
            30,
            "the outbox rows marked delivered",
        )
    broker.drain()
    [result] = broker.results_of(jid)
    assert result["status"] == "succeeded"
    assert job_record(settings.database_url, jid).attempts == 1  # delivered, not run again
    queued = [r for r in _results_in_queue(settings.amqp_url, _results_queue(settings)) if r["job_id"] == jid]
    assert len(queued) == 1


def test_a_result_nobody_listens_for_waits_in_the_durable_results_queue(settings, amqp_url):
    body = job(trials=2)
    jid = body["job_id"]
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    ch.basic_publish(settings.jobs_exchange, "job", json.dumps(body).encode(), pika.BasicProperties(delivery_mode=2))
    conn.close()
    with worker_thread(settings):  # no consumer of the events exchange exists at all
        wait_for(lambda: _delivered(settings, jid), 90, "the job to finish and its outbox to be delivered")
    [result] = [r for r in _results_in_queue(amqp_url, _results_queue(settings)) if r["job_id"] == jid]
    assert result["status"] == "succeeded" and result["symbols"][0]["symbol"] == "SPX"


def test_a_result_that_reached_no_queue_is_delivered_once_one_is_bound(settings, broker, amqp_url, topology):
    body = job(trials=2)
    jid = body["job_id"]
    with worker_thread(settings) as w:
        wait_for(lambda: w.health()[0], 30, "the worker to connect")
        broker.ch.queue_delete(topology.results_queue)  # an operator removed it; and nobody else listens
        broker.ch.queue_unbind(broker.events, topology.events_exchange, routing_key="job.#")
        broker.publish(body)
        wait_for(
            lambda: any(
                m.kind == "result" and "no queue" in str(_last_error(settings, m.id))
                for m in _outbox_of(settings.database_url, jid)
            ),
            90,
            "the result to be refused as unroutable and kept",
        )
        assert job_record(settings.database_url, jid).status == "succeeded"
        conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
        declare(conn.channel(), topology)  # the queue comes back
        conn.close()
        wait_for(lambda: _delivered(settings, jid), 90, "the kept result to be delivered")
        assert w.broker.generation == 1  # an unroutable result is no reason to reconnect
    [result] = [r for r in _results_in_queue(amqp_url, topology.results_queue) if r["job_id"] == jid]
    assert result["status"] == "succeeded"


def _results_queue(settings) -> str:
    from ludus.queue.topology import Topology

    name = Topology.from_settings(settings).results_queue
    assert name.startswith("t."), name  # the test's own, never the shared ludus.results
    return name


def _delivered(settings, job_id: str) -> bool:
    record = job_record(settings.database_url, job_id)
    rows = _outbox_of(settings.database_url, job_id)
    return record is not None and record.finished and bool(rows) and all(m.delivered_at for m in rows)


def _last_error(settings, row_id: int) -> str | None:
    import sqlalchemy as sa

    from ludus.db.schema import outbox as table

    with make_engine(settings.database_url).connect() as conn:
        return conn.execute(sa.select(table.c.last_error).where(table.c.id == row_id)).scalar_one()

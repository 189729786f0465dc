"""What Kubernetes and KEDA read from a real worker (real RabbitMQ, real PostgreSQL, the real pipeline).

- Probes: liveness answers 200 whatever the broker and the database do; readiness (and /healthz) 503 while
  either is away - so an outage never restarts the Ray head, it only marks it not ready.
- Scaling signal: /backlog stays positive from the moment a job is published until it has finished,
  including while it runs after its message was acked (the queue is then empty: what KEDA's RabbitMQ
  scaler read, and why it scaled the workers away). Read through the rendered ScaledObjects' own triggers.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pika
import pytest

from ludus import constants as c
from ludus.config import Settings
from ludus.queue.topology import Topology
from tests.deploy import kuberay_rules as kr
from tests.helpers.broker import declared_topology
from tests.helpers.wait import wait_for

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.fixture
def topology(amqp_url: str, unique_name: str) -> Iterator[Topology]:
    with declared_topology(amqp_url, unique_name) as topo:
        yield topo


@pytest.fixture
def ludus_db(postgres_url: str, sample_bars) -> str:
    """A migrated PostgreSQL database with the last 1,000 real S&P 500 bars in Prices.SPX_1d."""
    from ludus.data.prices import PriceStore
    from ludus.db.engine import make_engine
    from ludus.db.migrate import upgrade

    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    PriceStore(engine).write(sample_bars.slice(len(sample_bars) - 1000))
    engine.dispose()
    return postgres_url


def _settings(db_url: str, amqp_url: str, topology: Topology, **kw) -> Settings:
    return Settings(
        database_url=db_url,
        amqp_url=amqp_url,
        jobs_exchange=topology.jobs_exchange,
        jobs_queue=topology.jobs_queue,
        dead_letter_exchange=topology.dead_letter_exchange,
        dead_letter_queue=topology.dead_letter_queue,
        events_exchange=topology.events_exchange,
        delivery_limit=topology.delivery_limit,
        job_lease_s=5.0,
        shutdown_grace_s=5.0,
        **kw,
    )


@contextmanager
def running_worker(settings: Settings, **kwargs) -> Iterator:
    from ludus.search.trial import InProcessExecutor
    from ludus.worker.worker import Worker

    kwargs.setdefault("executor_factory", lambda job: InProcessExecutor())
    w = Worker(settings, http_port=0, poll_interval_s=0.1, **kwargs)
    thread = threading.Thread(target=w.run, name="test-worker", daemon=True)
    thread.start()
    try:
        _wait(lambda: w.http_port is not None, 30, "the worker's HTTP server")
        yield w
    finally:
        w.stop()
        thread.join(timeout=40)
        assert not thread.is_alive(), "worker did not stop"
        w.engine.dispose()


def _get(w, path: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{w.http_port}{path}", timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _wait(predicate, timeout_s: float, what: str):
    return wait_for(predicate, timeout_s, what, interval=0.1)


# --- probes ----------------------------------------------------------------------------------------------


def test_broker_down_liveness_200_readiness_503(ludus_db, topology):
    settings = _settings(ludus_db, f"amqp://guest:guest@127.0.0.1:{_closed_port()}/%2F", topology)
    with running_worker(settings) as w:
        status, body = _wait(
            lambda: (r := _get(w, c.READINESS_PATH)) and r[1].get("database") and r, 30, "the database probe"
        )
        assert status == 503 and body["broker"] is False and body["database"] is True
        assert _get(w, c.HEALTH_PATH)[0] == 503
        for _ in range(3):  # stays alive through the reconnect attempts
            status, body = _get(w, c.LIVENESS_PATH)
            assert status == 200 and body["status"] == "alive"
            time.sleep(0.5)
        status, body = _get(w, c.BACKLOG_PATH)  # the scaling signal does not need the broker
        assert status == 200 and body["backlog"] == 0


def test_database_down_liveness_200_readiness_503(amqp_url, topology):
    dead_db = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/test?connect_timeout=2"
    with running_worker(_settings(dead_db, amqp_url, topology)) as w:
        status, body = _wait(
            lambda: (r := _get(w, c.READINESS_PATH)) and r[1].get("broker") and r, 30, "the broker connection"
        )
        _wait(lambda: _get(w, c.READINESS_PATH)[1]["database"] is False, 30, "the database probe to fail")
        status, body = _get(w, c.READINESS_PATH)
        assert status == 503 and body["broker"] is True and body["database"] is False
        status, body = _get(w, c.LIVENESS_PATH)
        assert status == 200 and body["status"] == "alive"
        status, body = _get(w, c.BACKLOG_PATH)
        assert status == 200 and body["stale"] is True  # last numbers, not an error that stops KEDA


# --- the scaling signal ------------------------------------------------------------------------------


def _job(placement: dict) -> dict:
    return {
        "job_id": str(uuid.uuid4()),
        "strategy": "sma_cross",
        "symbols": ["SPX"],
        "mode": "static",
        "lookback": {"bars": 800},
        "candidates": 8,
        "search": {"trials": 3, "seed": 1},
        "validation": {"folds": 2, "embargo_bars": 2, "holdout_bars": 150},
        "placement": placement,
    }


def test_backlog_stays_positive_while_the_job_runs_after_its_ack(ludus_db, amqp_url, topology, rendered):
    from ludus.pipeline import run_job

    scaled = {s["metadata"]["name"]: s for s in rendered["keda"] if s["kind"] == "ScaledObject"}
    triggers = {name: kr.metrics_api_trigger(s["spec"]["triggers"][0]) for name, s in scaled.items()}
    started, release = threading.Event(), threading.Event()

    def gated_run_job(job, **kwargs):
        started.set()
        assert release.wait(120), "the test never released the job"
        return run_job(job, **kwargs)

    def keda_view(w) -> dict[str, tuple[float, int]]:
        """(value, replicas) per ScaledObject, through KEDA's rules on the worker's real /backlog."""
        with urllib.request.urlopen(f"http://127.0.0.1:{w.http_port}{c.BACKLOG_PATH}", timeout=10) as r:
            status, body = r.status, r.read()
        out = {}
        for name, trigger in triggers.items():
            value = kr.metrics_api_value(trigger, status, body)
            out[name] = (value, kr.keda_replicas(scaled[name], [value], current=1))
        return out

    settings = _settings(ludus_db, amqp_url, topology, max_concurrent_jobs=1)
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    ch = conn.channel()
    ch.confirm_delivery()

    def publish(body: dict) -> None:
        ch.basic_publish(
            topology.jobs_exchange,
            c.JOBS_ROUTING_KEY,
            json.dumps(body).encode(),
            pika.BasicProperties(delivery_mode=2),
            mandatory=True,
        )

    def ready() -> int:
        return int(ch.queue_declare(topology.jobs_queue, passive=True).method.message_count)

    try:
        with running_worker(settings, runner=gated_run_job) as w:
            assert keda_view(w) == {"ludus-worker-gpu-amd64": (0.0, 0), "ludus-worker-jetson-arm64": (0.0, 0)}
            x86_job, anywhere_job = _job({"require": "x86_64"}), _job({})
            publish(x86_job)
            assert started.wait(60), "the worker never started the job"
            # acked: the queue is empty (KEDA's RabbitMQ scaler read 0 here) while the job runs
            assert ready() == 0
            # /backlog is read from the jobs table at most every 2 s: the job shows within that
            _wait(lambda: keda_view(w)["ludus-worker-gpu-amd64"][0] == 1.0, 15, "the running job in /backlog")
            for _ in range(8):  # and stays while it runs (well past the 2 s the snapshot is kept)
                view = keda_view(w)
                assert view["ludus-worker-gpu-amd64"] == (1.0, 1), view
                assert view["ludus-worker-jetson-arm64"] == (0.0, 0), view  # the job may not run there
                time.sleep(0.5)
            assert ready() == 0
            # a second job waits in the queue (one slot): its placement is unknown until read, so it counts
            # for every architecture
            publish(anywhere_job)
            view = _wait(
                lambda: (v := keda_view(w))["ludus-worker-jetson-arm64"][0] == 1.0 and v,
                30,
                "the queued job to show in /backlog",
            )
            assert view["ludus-worker-gpu-amd64"] == (2.0, 2) and ready() == 1
            release.set()
            _wait(lambda: keda_view(w)["ludus-worker-gpu-amd64"][0] == 0.0, 180, "both jobs to finish")
            assert keda_view(w)["ludus-worker-jetson-arm64"] == (0.0, 0)
            from ludus.db.engine import make_engine
            from ludus.stores import jobs

            engine = make_engine(ludus_db)
            with engine.connect() as db:
                statuses = {jobs.get(db, j["job_id"]).status for j in (x86_job, anywhere_job)}
            engine.dispose()
            assert statuses == {"succeeded"}
    finally:
        release.set()
        conn.close()

"""Helpers of the queue tests: jobs, a test-side broker client, workers in a thread or a process.

Everything is real (RabbitMQ, PostgreSQL, the pipeline's run_job); jobs are tiny static searches on the last
900 S&P 500 bars so a job takes about a second on the in-process executor.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pika

from ludus.config import Settings
from ludus.queue.topology import Topology

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root (bench/chaos.py imports us)
from tests.helpers.wait import wait_for as wait_for

REPO = Path(__file__).resolve().parents[2]


def settings_env(settings: Settings) -> dict[str, str]:
    """The LUDUS_* environment that makes a subprocess worker use these settings."""
    env = dict(os.environ)
    for key, value in settings.model_dump(mode="json").items():
        if value is not None:
            env[f"LUDUS_{key.upper()}"] = str(value)
    return env


def job(trials: int = 4, *, job_id: str | None = None, symbols=("SPX",), **extra) -> dict:
    """A tiny valid static job (Bayesian search of sma_cross on SPX)."""
    body = {
        "job_id": job_id or str(uuid.uuid4()),
        "strategy": "sma_cross",
        "symbols": list(symbols),
        "mode": "static",
        "lookback": {"bars": 800},
        "candidates": 8,
        "search": {"trials": trials, "seed": 1},
        "validation": {"folds": 2, "embargo_bars": 2, "holdout_bars": 150},
    }
    body.update(extra)
    return body


class Broker:
    """Test-side broker client: publish jobs, collect events and dead letters."""

    def __init__(self, url: str, topology: Topology) -> None:
        self.topology = topology
        self.conn = pika.BlockingConnection(pika.URLParameters(url))
        self.ch = self.conn.channel()
        self.ch.confirm_delivery()
        self.events = self.ch.queue_declare("", exclusive=True).method.queue
        self.ch.queue_bind(self.events, topology.events_exchange, routing_key="job.#")
        self.results: list[dict] = []
        self.progress: list[dict] = []

    def publish(self, body, headers: dict | None = None) -> None:
        raw = (
            body
            if isinstance(body, bytes)
            else json.dumps(body).encode()
            if not isinstance(body, str)
            else body.encode()
        )
        self.ch.basic_publish(
            self.topology.jobs_exchange,
            self.topology.jobs_routing_key,
            raw,
            pika.BasicProperties(delivery_mode=2, headers=headers),
            mandatory=True,
        )

    def drain(self) -> None:
        while True:
            method, _props, body = self.ch.basic_get(self.events, auto_ack=True)
            if method is None:
                return
            data = json.loads(body)
            (self.results if method.routing_key.endswith(".result") else self.progress).append(data)

    def wait(self, predicate, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            self.drain()
            if predicate():
                return
            self.conn.process_data_events(time_limit=0.2)
        self.drain()
        last = self.results[-1] if self.results else None
        detail = "" if last is None else f"; last result: {last.get('status')} {last.get('error')}"
        raise AssertionError(
            f"timed out after {timeout}s waiting for {what}; "
            f"{len(self.results)} results, {len(self.progress)} progress events{detail}"
        )

    def results_of(self, job_id: str) -> list[dict]:
        self.drain()
        return [r for r in self.results if r.get("job_id") == job_id]

    def depth(self, queue: str) -> int:
        return int(self.ch.queue_declare(queue, passive=True).method.message_count)

    def dead_letters(self):
        from ludus.queue.deadletter import browse

        return browse(self.conn, self.topology)

    def close(self) -> None:
        if self.conn.is_open:
            self.conn.close()


@contextmanager
def worker_thread(settings: Settings, **kwargs) -> Iterator:
    """A Worker running on a thread of this process (real run_job on the in-process executor)."""
    from ludus.search.trial import InProcessExecutor
    from ludus.worker.worker import Worker

    kwargs.setdefault("executor_factory", lambda job: InProcessExecutor())
    w = Worker(settings, **kwargs)
    thread = threading.Thread(target=w.run, name="test-worker", daemon=True)
    thread.start()
    try:
        yield w
    finally:
        w.stop()
        thread.join(timeout=settings.shutdown_grace_s + 20)
        assert not thread.is_alive(), "worker did not stop"
        w.engine.dispose()


def start_worker_process(settings: Settings, log_path: Path, *extra: str) -> subprocess.Popen:
    """`ludus worker --no-ray` as a separate process (killable with SIGKILL)."""
    env = settings_env(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen(
        [sys.executable, "-m", "ludus.cli.app", "worker", "--no-ray", "--http-port", "0", *extra],
        cwd=REPO,
        env=env,
        stdout=log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )


def optimized_rows(url: str, job_id: str | None = None) -> list[tuple]:
    import sqlalchemy as sa

    from ludus.db.engine import make_engine
    from ludus.db.schema import optimized_parameters as op

    q = sa.select(op.c.strategy, op.c.symbol, op.c.interval, op.c.valid_for, op.c.job_id)
    if job_id is not None:
        q = q.where(op.c.job_id == job_id)
    with make_engine(url).connect() as conn:
        return [tuple(r) for r in conn.execute(q)]


def job_record(url: str, job_id: str):
    from ludus.db.engine import make_engine
    from ludus.stores import jobs

    with make_engine(url).connect() as conn:
        return jobs.get(conn, job_id)


class TcpProxy:
    """A TCP forwarder on 127.0.0.1 (the database "goes away" when stopped: listener and connections closed)."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        import socket

        self.target = (target_host, target_port)
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        self.port = probe.getsockname()[1]
        probe.close()
        self._listener = None
        self._conns: list = []
        self._lock = threading.Lock()

    def start(self) -> TcpProxy:
        import socket

        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()
        return self

    def _accept(self, listener) -> None:
        import socket

        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self) -> None:
        import socket

        if self._listener is not None:
            try:  # wakes the thread blocked in accept(); a bare close() would leave it listening
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()


def rabbitmqctl(*args: str) -> str:
    out = subprocess.run(["rabbitmqctl", "-q", *args], check=False, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


def close_connections_named(fragment: str) -> int:
    """Force-close (server side) every broker connection whose connection_name contains ``fragment``."""
    closed = 0
    for line in rabbitmqctl("list_connections", "pid", "client_properties").splitlines():
        if fragment in line and line.startswith("<"):
            rabbitmqctl("close_connection", line.split("\t", 1)[0], "test")
            closed += 1
    return closed


def study_trials(url: str, job_id: str) -> list:
    """Every trial of every Optuna study of a job."""
    import optuna

    from ludus.search.storage import get_storage

    storage = get_storage(url)
    trials = []
    for summary in optuna.get_all_study_summaries(storage):
        if job_id in summary.study_name:
            trials += optuna.load_study(study_name=summary.study_name, storage=storage).get_trials(deepcopy=False)
    return trials

"""Chaos run of the queue worker on the real RabbitMQ and PostgreSQL: kills, duplicates, broker and database
faults, hostile messages; then the counts that must all be 0: lost, doubled, unsettled.

What it does, on a database and a broker topology of its own (nothing shared is reconfigured or restarted):

* starts ``--workers`` ``ludus worker --no-ray`` processes whose database connections go through a TCP proxy;
* publishes ``--jobs`` small static jobs, ``--duplicates`` extra copies of them, ``--conflicts`` second payloads
  under their ids and ``--malformed`` hostile messages (random bytes and JSON, broken fields, lone surrogates,
  invalid UTF-8, nesting past the recursion limit, headers near frame_max);
* meanwhile, at random instants: SIGKILLs a worker (a new one is started), force-closes a worker's broker
  connection (``rabbitmqctl close_connection``, only this run's workers), stops the database proxy for
  ``--outage-s`` seconds, or terminates this run's PostgreSQL backends (``pg_terminate_backend``);
* waits until everything is settled (or ``--timeout``), stops the workers with SIGTERM, and counts.

lost: a valid job without a succeeded record or without a result in the durable results queue, or a hostile /
conflicting message with neither a dead letter nor an error result. doubled: a job whose outcome was recorded
twice (two result rows in the outbox) or whose search ran more trials than asked (a run repeated instead of
resumed). unsettled: messages left in the jobs queue once every worker stopped (an unacked message comes back
there), jobs not finished, outbox rows never delivered.

    .venv/bin/python bench/chaos.py                    # defaults: 20 jobs, 3 workers, ~20 kills, ~5 min
    .venv/bin/python bench/chaos.py --jobs 8 --kills 6 --malformed 500 --timeout 300
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "queue"))  # the queue tests' helpers: jobs, TCP proxy, rabbitmqctl

import pika
import sqlalchemy as sa
from queue_helpers import TcpProxy, job, rabbitmqctl, settings_env, study_trials

from ludus.config import Settings
from ludus.constants import JOBS_ROUTING_KEY
from ludus.queue.topology import Topology, declare, delete

ADMIN_URL = os.environ.get("LUDUS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
AMQP_URL = os.environ.get("LUDUS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
TRIALS = 48  # three batches of 16: a few seconds per job, long enough to be hit in the middle
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff"]


def hostile(rng: random.Random, big_left: list[int]) -> tuple[str, bytes, dict | None]:
    """One message the contract refuses: (class, body, headers)."""
    kinds = ["bytes", "json", "missing", "mutated", "surrogate", "surrogate_key", "utf8", "deep", "deep_json"]
    if big_left[0] > 0:
        kinds.append("header")
    kind = rng.choice(kinds)
    body = job(trials=2)
    if kind == "bytes":
        return kind, rng.randbytes(rng.randint(0, 40)), None
    if kind == "json":
        return kind, json.dumps(rng.choice([None, 3, "x", [1, {"a": None}], {"job_id": 7}])).encode(), None
    if kind == "missing":
        body.pop(rng.choice(["job_id", "strategy", "symbols"]))
    elif kind == "mutated":
        body[rng.choice(["strategy", "symbols", "lookback", "mode", "candidates", "search"])] = rng.choice(
            [-1, "", None, True, 1e300, "no_such_thing"]
        )
        body.setdefault("strategy", "sma_cross")
    elif kind == "surrogate":
        body[rng.choice(["strategy", "interval"])] = rng.choice(SURROGATES)
    elif kind == "surrogate_key":
        body[rng.choice(SURROGATES)] = 1
    elif kind == "utf8":
        raw = json.dumps(body).encode()
        cut = rng.randint(1, len(raw) - 1)
        return kind, raw[:cut] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"]) + raw[cut:], None
    elif kind == "deep":
        depth = rng.randint(1_100, 20_000)
        return kind, json.dumps(body)[:-1].encode() + b', "x": ' + b"[" * depth + b"]" * depth + b"}", None
    elif kind == "deep_json":
        depth = rng.randint(33, 800)
        body["overrides"] = {"fast": {"choices": json.loads("[" * depth + "]" * depth)}}
    else:
        big_left[0] -= 1
        return kind, b"{not json " + rng.randbytes(4).hex().encode(), {"x-pad": "h" * rng.randint(120_000, 130_800)}
    return kind, json.dumps(body).encode(), None


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        token = uuid.uuid4().hex[:8]
        self.db_name = f"ludus_chaos_{token}"
        self.url = ADMIN_URL.rsplit("/", 1)[0] + f"/{self.db_name}"
        self.topology = Topology(
            jobs_exchange=f"chaos.{token}.jobs",
            jobs_queue=f"chaos.{token}.jobs",
            dead_letter_exchange=f"chaos.{token}.dlx",
            dead_letter_queue=f"chaos.{token}.dead",
            events_exchange=f"chaos.{token}.events",
            results_queue=f"chaos.{token}.results",
            delivery_limit=5,
        )
        self.tmp = Path(tempfile.mkdtemp(prefix="ludus-chaos-"))
        self.workers: list[subprocess.Popen] = []
        self.faults: Counter = Counter()
        self.lock = threading.Lock()
        self.proxy: TcpProxy | None = None

    # --- setup and teardown ---------------------------------------------------------------------------

    def setup(self) -> None:
        import numpy as np
        from arch.data import sp500

        from ludus.data.bars import Bars
        from ludus.data.prices import PriceStore
        from ludus.db.engine import make_engine
        from ludus.db.migrate import upgrade

        admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{self.db_name}"'))
        admin.dispose()
        upgrade(self.url)
        df = sp500.load().iloc[-900:]
        bars = Bars(
            "SPX",
            "1d",
            df.index.values.astype("datetime64[ns]"),
            *(df[k].to_numpy(np.float64) for k in ("Open", "High", "Low", "Close", "Volume")),
        )
        PriceStore(make_engine(self.url)).write(bars)
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        declare(conn.channel(), self.topology)
        conn.close()
        port = sa.make_url(self.url).port or 5432
        self.proxy = TcpProxy(port).start()
        proxied = sa.make_url(self.url).set(port=self.proxy.port).render_as_string(hide_password=False)
        t = self.topology
        self.settings = Settings(
            database_url=proxied,
            amqp_url=AMQP_URL,
            jobs_exchange=t.jobs_exchange,
            jobs_queue=t.jobs_queue,
            dead_letter_exchange=t.dead_letter_exchange,
            dead_letter_queue=t.dead_letter_queue,
            events_exchange=t.events_exchange,
            results_queue=t.results_queue,
            delivery_limit=t.delivery_limit,
            max_concurrent_jobs=1,
            job_lease_s=3.0,
            shutdown_grace_s=10.0,
            progress_min_interval_s=0.5,
        )

    def teardown(self) -> None:
        for proc in self.workers:
            if proc.poll() is None:
                proc.kill()
        if self.proxy is not None:
            self.proxy.stop()
        from ludus.db.engine import dispose_engines
        from ludus.search.storage import dispose_storage

        dispose_storage(self.url)
        dispose_engines()
        admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)'))
        admin.dispose()
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        delete(conn.channel(), self.topology)
        conn.close()

    # --- workers and faults ---------------------------------------------------------------------------

    def start_worker(self) -> None:
        env = settings_env(self.settings)
        env.update(PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", LUDUS_DEVICE="cpu")
        log = (self.tmp / f"worker-{len(self.workers)}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "ludus.cli.app", "worker", "--no-ray", "--http-port", "0"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        with self.lock:
            self.workers.append(proc)

    def alive(self) -> list[subprocess.Popen]:
        with self.lock:
            return [p for p in self.workers if p.poll() is None]

    def kill_one(self) -> None:
        victims = self.alive()
        if not victims:
            return
        victim = self.rng.choice(victims)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        self.faults["sigkill"] += 1
        time.sleep(self.rng.uniform(0, 2))
        self.start_worker()

    def close_broker_connection(self) -> None:
        victims = self.alive()
        if not victims:
            return
        pid = self.rng.choice(victims).pid
        closed = 0
        for line in rabbitmqctl("list_connections", "pid", "client_properties").splitlines():
            if "ludus-worker " in line and f"-{pid}-" in line and line.startswith("<"):
                rabbitmqctl("close_connection", line.split("\t", 1)[0], "chaos")
                closed += 1
        self.faults["broker_connection_closed"] += closed

    def database_outage(self) -> None:
        self.proxy.stop()
        time.sleep(self.args.outage_s)
        self.proxy.start()
        self.faults["database_outage"] += 1

    def terminate_backends(self) -> None:
        admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            n = conn.execute(
                sa.text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                    "WHERE datname = :db AND pid <> pg_backend_pid()"
                ),
                {"db": self.db_name},
            )
            self.faults["pg_backends_terminated"] += int(n.scalar_one())
        admin.dispose()
        self.faults["pg_terminate_backend"] += 1

    def chaos(self, stop: threading.Event) -> None:
        plan = (
            ["kill"] * self.args.kills
            + ["broker"] * self.args.broker_faults
            + ["outage"] * self.args.db_faults
            + ["terminate"] * self.args.db_faults
        )
        self.rng.shuffle(plan)
        for action in plan:
            if stop.wait(self.rng.uniform(0.5, self.args.fault_every_s)):
                return
            try:
                {
                    "kill": self.kill_one,
                    "broker": self.close_broker_connection,
                    "outage": self.database_outage,
                    "terminate": self.terminate_backends,
                }[action]()
            except Exception as exc:  # noqa: BLE001 - a fault that could not be injected is reported, not fatal
                self.faults[f"{action}_failed"] += 1
                print(f"fault {action} not injected: {exc}", file=sys.stderr)

    # --- the run ----------------------------------------------------------------------------------------

    def run(self) -> dict:
        a = self.args
        for _ in range(a.workers):
            self.start_worker()
        valid = [job(trials=TRIALS) for _ in range(a.jobs)]
        big_left = [a.big_headers]
        hostile_msgs = [hostile(self.rng, big_left) for _ in range(a.malformed)]
        conflicts = [{**self.rng.choice(valid), "search": {"trials": 3, "seed": 9}} for _ in range(a.conflicts)]
        duplicates = [self.rng.choice(valid) for _ in range(a.duplicates)]
        t = self.topology
        conn = ch = None

        def publish(body: bytes, headers: dict | None = None) -> None:
            nonlocal conn, ch
            if conn is None or not conn.is_open:  # the run's own connection, opened per burst (an idle blocking
                conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))  # connection misses heartbeats)
                ch = conn.channel()
                ch.confirm_delivery()
            ch.basic_publish(
                t.jobs_exchange,
                JOBS_ROUTING_KEY,
                body,
                pika.BasicProperties(delivery_mode=2, headers=headers),
                mandatory=True,
            )

        stop = threading.Event()
        chaos = threading.Thread(target=self.chaos, args=(stop,), daemon=True)
        started = time.monotonic()
        chaos.start()
        for body in valid:
            publish(json.dumps(body).encode())
        stream = [("hostile", m) for m in hostile_msgs] + [("dup", d) for d in duplicates]
        self.rng.shuffle(stream)
        for kind, item in stream:
            if kind == "hostile":
                publish(item[1], item[2])
            else:
                publish(json.dumps(item).encode())
        conn.close()
        # conflicts go last: a conflict that overtook its original would make the original the conflict
        self._wait(lambda: self._finished_ids() >= {v["job_id"] for v in valid}, a.timeout / 2)
        for body in conflicts:
            publish(json.dumps(body).encode())
        conn.close()
        expected_letters = len(hostile_msgs) + len(conflicts)
        self._wait(lambda: self._settled(valid, expected_letters), a.timeout - (time.monotonic() - started))
        stop.set()
        chaos.join(a.outage_s + 30)
        if self.proxy is not None and self.proxy._listener is None:
            self.proxy.start()
        self._wait(lambda: self._settled(valid, expected_letters), 120)
        for proc in self.alive():
            proc.send_signal(signal.SIGTERM)
        for proc in self.alive():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        wall = time.monotonic() - started
        return self._count(valid, hostile_msgs, conflicts, duplicates, wall)

    def _wait(self, predicate, timeout: float) -> bool:
        end = time.monotonic() + max(1.0, timeout)
        while time.monotonic() < end:
            try:
                if predicate():
                    return True
            except Exception:  # noqa: BLE001 - a fault in progress; look again
                pass
            time.sleep(1.0)
        return False

    def _finished_ids(self) -> set[str]:
        from ludus.db.schema import jobs as table

        with sa.create_engine(self.url).connect() as conn:
            return {r[0] for r in conn.execute(sa.select(table.c.job_id).where(table.c.status == "succeeded"))}

    def _settled(self, valid: list[dict], letters: int) -> bool:
        from ludus.db.schema import outbox as ob

        if not self._finished_ids() >= {v["job_id"] for v in valid}:
            return False
        with sa.create_engine(self.url).connect() as conn:
            pending = conn.execute(sa.select(sa.func.count()).select_from(ob).where(ob.c.delivered_at.is_(None)))
            if pending.scalar_one():
                return False
        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        try:
            ch = conn.channel()
            depth = ch.queue_declare(self.topology.jobs_queue, passive=True).method.message_count
            dead = ch.queue_declare(self.topology.dead_letter_queue, passive=True).method.message_count
        finally:
            conn.close()
        return depth == 0 and dead >= letters

    # --- counting ---------------------------------------------------------------------------------------

    def _count(self, valid, hostile_msgs, conflicts, duplicates, wall: float) -> dict:
        from ludus.db.schema import jobs as jobs_table
        from ludus.db.schema import outbox as ob
        from ludus.queue.deadletter import browse, job_id_of

        conn = pika.BlockingConnection(pika.URLParameters(AMQP_URL))
        ch = conn.channel()
        left_in_jobs_queue = ch.queue_declare(self.topology.jobs_queue, passive=True).method.message_count
        letters = browse(conn, self.topology)
        results: list[tuple[dict, str | None]] = []
        while True:
            method, props, body = ch.basic_get(self.topology.results_queue, auto_ack=True)
            if method is None:
                break
            results.append((json.loads(body), props.message_id))
        conn.close()
        engine = sa.create_engine(self.url)
        with engine.connect() as db:
            records = {r.job_id: r for r in db.execute(sa.select(jobs_table)).mappings()}
            result_rows = Counter(r[0] for r in db.execute(sa.select(ob.c.job_id).where(ob.c.kind == "result")))
            undelivered = db.execute(
                sa.select(sa.func.count()).select_from(ob).where(ob.c.delivered_at.is_(None))
            ).scalar_one()
        engine.dispose()
        by_job = Counter(r["job_id"] for r, _ in results if r.get("status") == "succeeded")
        message_ids = Counter(mid for r, mid in results if r.get("status") == "succeeded")
        valid_ids = [v["job_id"] for v in valid]
        lost_jobs = [j for j in valid_ids if records.get(j, {}).get("status") != "succeeded" or by_job[j] == 0]
        # a refusal is matched to its dead letter by job id when the message has a readable one (a job rejected
        # after its worker died is dead-lettered by the next worker with the stored payload, not the original
        # bytes), else by its bytes
        letter_keys = Counter(ltr.job_id or ltr.body for ltr in letters)
        refused_bodies = [m[1] for m in hostile_msgs] + [json.dumps(c).encode() for c in conflicts]
        need = Counter(job_id_of(b) or b for b in refused_bodies)
        lost_refusals = sum(max(0, n - letter_keys[k]) for k, n in need.items())
        # at least once: a worker killed (or cut off) after a dead letter was confirmed but before its ack
        # sends the redelivered message to the dead-letter queue again
        extra_letters = sum(max(0, n - need[k]) for k, n in letter_keys.items())
        rejected_results = sum(1 for r, _ in results if r.get("status") == "rejected")
        trials_over = [j for j in valid_ids if _complete_trials(self.url, j) > TRIALS]
        doubled = sorted({j for j in valid_ids if result_rows[j] > 1} | set(trials_over))
        unfinished = [j for j, r in records.items() if r["status"] in ("accepted", "running")]
        extra_deliveries = sum(n - 1 for n in message_ids.values() if n > 1)
        return {
            "wall_s": round(wall, 1),
            "jobs": len(valid),
            "duplicates": len(duplicates),
            "conflicts": len(conflicts),
            "malformed": len(hostile_msgs),
            "malformed_classes": dict(Counter(k for k, _, _ in hostile_msgs)),
            "faults": dict(self.faults),
            "results_in_durable_queue": len(results),
            "rejected_results": rejected_results,
            "dead_letters": len(letters),
            "lost": len(lost_jobs) + lost_refusals,
            "lost_jobs": lost_jobs,
            "lost_refusals": lost_refusals,
            "doubled": len(doubled),
            "doubled_jobs": doubled,
            "unsettled": left_in_jobs_queue + len(unfinished) + int(undelivered),
            "left_in_jobs_queue": left_in_jobs_queue,
            "unfinished_jobs": unfinished,
            "undelivered_outbox_rows": int(undelivered),
            "redelivered_result_copies": extra_deliveries,
            "redelivered_dead_letters": extra_letters,
            "attempts": dict(Counter(int(records[j]["attempts"]) for j in valid_ids if j in records)),
        }


def _complete_trials(url: str, job_id: str) -> int:
    import optuna

    return sum(t.state == optuna.trial.TrialState.COMPLETE for t in study_trials(url, job_id))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--jobs", type=int, default=20)
    p.add_argument("--workers", type=int, default=3)
    p.add_argument("--kills", type=int, default=20)
    p.add_argument("--broker-faults", type=int, default=6)
    p.add_argument("--db-faults", type=int, default=3, help="database outages, and as many backend terminations")
    p.add_argument("--outage-s", type=float, default=8.0)
    p.add_argument("--duplicates", type=int, default=10)
    p.add_argument("--conflicts", type=int, default=5)
    p.add_argument("--malformed", type=int, default=2000)
    p.add_argument("--big-headers", type=int, default=10, help="hostile messages with a header near frame_max")
    p.add_argument("--fault-every-s", type=float, default=6.0, help="at most this long between faults")
    p.add_argument("--timeout", type=float, default=900.0)
    p.add_argument("--seed", type=int, default=15)
    args = p.parse_args()
    run = Run(args)
    run.setup()
    try:
        out = run.run()
    finally:
        run.teardown()
    print(
        f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f}; 1 torch thread per worker, "
        f"{args.workers} workers; logs in {run.tmp}"
    )
    print("\nfaults injected")
    for key, value in sorted(out["faults"].items()):
        print(f"  {key:<28}{value:>6}")
    print("\nmessages")
    for key in (
        "jobs",
        "duplicates",
        "conflicts",
        "malformed",
        "results_in_durable_queue",
        "rejected_results",
        "dead_letters",
        "redelivered_result_copies",
        "redelivered_dead_letters",
    ):
        print(f"  {key:<28}{out[key]:>6}")
    print(f"  malformed classes: {out['malformed_classes']}")
    print(f"  attempts per job: {out['attempts']}")
    print("\noutcome")
    for key in ("lost", "doubled", "unsettled"):
        detail = {
            "lost": (out["lost_jobs"], out["lost_refusals"]),
            "doubled": out["doubled_jobs"],
            "unsettled": (out["left_in_jobs_queue"], out["unfinished_jobs"], out["undelivered_outbox_rows"]),
        }
        print(f"  {key:<28}{out[key]:>6}   {detail[key]}")
    print()
    print(f"wall_s={out['wall_s']}")
    print(f"kills={out['faults'].get('sigkill', 0)}")
    print(f"broker_faults={out['faults'].get('broker_connection_closed', 0)}")
    print(f"database_faults={out['faults'].get('database_outage', 0) + out['faults'].get('pg_terminate_backend', 0)}")
    print(f"duplicates={out['duplicates']}")
    print(f"malformed={out['malformed'] + out['conflicts']}")
    print(f"lost={out['lost']}")
    print(f"doubled={out['doubled']}")
    print(f"unsettled={out['unsettled']}")
    sys.exit(0 if out["lost"] == out["doubled"] == out["unsettled"] == 0 else 1)


if __name__ == "__main__":
    main()

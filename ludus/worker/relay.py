"""Delivering the outbox: stored results, final progress events and dead letters, until the broker confirms.

Every worker runs a relay, so a row is delivered by whoever is alive: the worker that wrote it (right after its
commit, :meth:`OutboxRelay.flush`), another worker once the writer's claim expired, or the next start.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

import sqlalchemy as sa

from ludus.db.schema import utcnow
from ludus.queue.policy import POLICIES, Stage, decide, is_transient
from ludus.stores import outbox
from ludus.stores.unit import transaction
from ludus.worker.broker_io import BrokerIO
from ludus.worker.lifecycle import Lifecycle
from ludus.worker.metrics import WorkerMetrics

log = logging.getLogger("ludus.worker")

POLL_S = 1.0  # how often a relay looks for rows (the writer flushes its own at once)
BATCH = 50
KEEP_DELIVERED = timedelta(days=1)  # delivered rows are kept a day (for `ludus show-job`-style forensics)
PRUNE_EVERY_S = 600.0


class OutboxRelay:
    def __init__(
        self,
        engine: sa.Engine,
        broker: BrokerIO,
        owner: str,
        claim_s: float,
        metrics: WorkerMetrics,
        lifecycle: Lifecycle,
    ) -> None:
        self.engine = engine
        self.broker = broker
        self.owner = owner
        self.claim_s = claim_s
        self.metrics = metrics
        self.lifecycle = lifecycle
        self._flush_lock = threading.Lock()
        self._wanted = threading.Event()
        self._failures = 0

    def flush(self) -> int:
        """Deliver what is claimable now; returns how many rows the broker confirmed. Never raises: a row
        that did not go out stays in the outbox for the next pass."""
        if not self.broker.up:
            self._wanted.set()
            return 0
        with self._flush_lock:
            try:
                with transaction(self.engine) as conn:
                    rows = outbox.claim(conn, self.owner, self.claim_s, limit=BATCH)
            except Exception as exc:  # noqa: BLE001 - the database is down: the loop comes back
                self._note_failure(exc)
                return 0
            sent = 0
            for row in rows:
                try:
                    self.broker.publish_stored(row)
                except Exception as exc:  # noqa: BLE001 - decide() says when to try again
                    decision = decide(exc, Stage.DELIVER, attempt=row.attempts)
                    self._note_failure(exc)
                    self._give_back(row, exc, decision.delay_s)
                    if is_transient(exc):
                        break  # the broker is gone: the remaining rows would fail the same way
                    continue
                self._mark_delivered(row)
                sent += 1
            self._failures = 0 if sent else self._failures
            return sent

    def request(self) -> None:
        """Ask the loop for a pass now (after a commit that wrote rows)."""
        self._wanted.set()

    def loop(self) -> None:
        """The relay thread: a pass every POLL_S (sooner on request), backing off while failing."""
        next_prune = 0.0
        while not self.lifecycle.closed.is_set():
            delay = POLL_S if self._failures == 0 else POLICIES[Stage.DELIVER].delay(self._failures)
            self._wanted.wait(max(0.05, delay))
            self._wanted.clear()
            if self.lifecycle.closed.is_set():
                return
            self.flush()
            self._gauge()
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_S
                self._prune()

    # ---------------------------------------------------------------------------------------------------

    def _mark_delivered(self, row: outbox.OutboxMessage) -> None:
        self.metrics.outbox_delivered.inc()
        if row.kind == outbox.DEAD_LETTER:
            self.metrics.dead_lettered.inc()
        # A row the broker has but the database does not know as delivered would go out again after the
        # claim expired: retry the mark a few times before accepting that rare duplicate.
        for attempt in range(5):
            try:
                with transaction(self.engine) as conn:
                    outbox.delivered(conn, row.id, self.owner)
                return
            except Exception as exc:  # noqa: BLE001
                if not is_transient(exc):
                    log.error("outbox row %s delivered but not marked: %s", row.id, exc)
                    return
                self.lifecycle.sleep(decide(exc, Stage.DELIVER, attempt=attempt).delay_s)
        log.warning(
            "outbox row %s delivered but not marked (database down); it may be delivered twice (same message_id %s)",
            row.id,
            row.message_id,
        )

    def _give_back(self, row: outbox.OutboxMessage, exc: BaseException, retry_in_s: float) -> None:
        if not is_transient(exc):
            log.warning(
                "outbox row %s (%s of job %s) not delivered: %s; retrying in %.0fs",
                row.id,
                row.kind,
                row.job_id,
                exc,
                retry_in_s,
            )
        try:
            with transaction(self.engine) as conn:
                outbox.undeliverable(conn, row.id, self.owner, f"{type(exc).__name__}: {exc}", retry_in_s=retry_in_s)
        except Exception:  # noqa: BLE001 - the claim simply expires
            pass

    def _note_failure(self, exc: BaseException) -> None:
        self._failures += 1
        log.debug("outbox pass failed: %s", exc)

    def _gauge(self) -> None:
        try:
            with self.engine.connect() as conn:
                self.metrics.outbox_pending.set(outbox.pending(conn))
        except Exception:  # noqa: BLE001 - the gauge keeps its last value
            pass

    def _prune(self) -> None:
        try:
            with transaction(self.engine) as conn:
                outbox.prune(conn, utcnow() - KEEP_DELIVERED)
        except Exception:  # noqa: BLE001 - next time
            pass

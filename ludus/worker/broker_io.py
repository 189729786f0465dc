"""The worker's broker I/O: one connection owned by one thread, calls into it from the others, and
:meth:`BrokerIO.settle`, the only code of the worker that acks a message.

pika is not thread-safe: the I/O thread runs :meth:`poll` and :meth:`fetch`; every other thread goes through
:meth:`call`, which runs a function on the I/O thread (``add_callback_threadsafe``) and waits for it. A delivery
tag is valid only on the connection it came from (its ``generation``): after a reconnect the broker has put
the message back in the queue, and its redelivery is what settles it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ludus import constants as c
from ludus.errors import TransientError
from ludus.queue.connection import connect
from ludus.queue.deadletter import (
    H_JOB_ID,
    H_KIND,
    H_REASON,
    HEADERS_BUDGET,
    dead_letter_headers,
    publish_dead_letter,
    requeue_headers,
)
from ludus.queue.policy import Action, Decision, is_transient
from ludus.queue.publisher import HeadersError, Publisher, UnroutableError
from ludus.queue.topology import Topology, declare, queue_depth
from ludus.stores import outbox
from ludus.worker.metrics import WorkerMetrics

if TYPE_CHECKING:
    from pika.adapters.blocking_connection import BlockingChannel, BlockingConnection

log = logging.getLogger("ludus.worker")


@dataclass
class Delivery:
    """A message fetched by basic.get; its tag is only valid on the connection ``generation`` it came from."""

    tag: int
    generation: int
    body: bytes
    headers: dict
    message_id: str | None
    redelivered: bool


class BrokerIO:
    """One broker connection: a consuming channel and a confirming publisher channel."""

    def __init__(self, amqp_url: str, topology: Topology, name: str, worker_id: str, metrics: WorkerMetrics) -> None:
        self.amqp_url = amqp_url
        self.topology = topology
        self.name = name
        self.worker_id = worker_id
        self.metrics = metrics
        self._lock = threading.Lock()
        self._conn: BlockingConnection | None = None
        self._ch: BlockingChannel | None = None
        self._pub: Publisher | None = None
        self.generation = 0
        self._broken = False
        self._pending: set[Future] = set()

    # --- the I/O thread -----------------------------------------------------------------------------

    def open(self) -> None:
        conn = connect(self.amqp_url, name=self.name)
        try:
            ch = conn.channel()
            declare(ch, self.topology)
            pub = Publisher(conn.channel())
        except Exception:
            _close_quietly(conn)
            raise
        with self._lock:
            self._conn, self._ch, self._pub, self._broken = conn, ch, pub, False
            self.generation += 1
        self.metrics.broker_up.set(1)
        log.info("worker %s connected (generation %d)", self.worker_id, self.generation)

    def drop(self) -> None:
        """Forget the connection (closing it if it is still open); pending calls fail as transient."""
        with self._lock:
            conn, self._conn, self._ch, self._pub = self._conn, None, None, None
            self.generation += 1
            pending, self._pending = self._pending, set()
        self.metrics.broker_up.set(0)
        for fut in pending:
            if not fut.done():
                fut.set_exception(TransientError("broker connection lost"))
        if conn is not None:
            _close_quietly(conn)

    @property
    def up(self) -> bool:
        return self._conn is not None and not self._broken

    def poll(self, seconds: float) -> None:
        """Let pika do its I/O (and run queued calls) for up to ``seconds``."""
        conn = self._conn
        if conn is None:
            raise TransientError("broker connection is down")
        conn.process_data_events(time_limit=seconds)
        if self._broken:
            raise TransientError("a channel broke; reopening the connection")

    def fetch(self) -> Delivery | None:
        """One message of the jobs queue, unacked, or None when it is empty."""
        method, props, body = self._channel().basic_get(self.topology.jobs_queue, auto_ack=False)
        if method is None:
            return None
        headers = props.headers if isinstance(props.headers, dict) else {}
        return Delivery(
            method.delivery_tag, self.generation, body, dict(headers), props.message_id, bool(method.redelivered)
        )

    def depth(self) -> int:
        return queue_depth(self._channel(), self.topology.jobs_queue)

    def wake(self) -> None:
        """Make the I/O thread look at its slots now (not at the end of its poll interval)."""
        conn = self._conn
        if conn is not None:
            try:
                conn.add_callback_threadsafe(lambda: None)
            except Exception:  # noqa: BLE001 - closing: nothing to wake
                pass

    # --- any thread ---------------------------------------------------------------------------------

    def call(self, fn: Callable[[], Any], timeout: float = 30.0) -> Any:
        """Run ``fn`` on the I/O thread and return its result (TransientError when the connection is gone)."""
        with self._lock:
            conn, gen = self._conn, self.generation
        if conn is None:
            raise TransientError("broker connection is down")
        fut: Future = Future()

        def callback() -> None:
            if fut.done():
                return
            if gen != self.generation:
                fut.set_exception(TransientError("broker connection was replaced"))
                return
            try:
                fut.set_result(fn())
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                if is_transient(exc) and not isinstance(exc, TransientError):
                    self._broken = True
                fut.set_exception(exc)

        with self._lock:
            self._pending.add(fut)
        try:
            conn.add_callback_threadsafe(callback)
        except Exception as exc:
            with self._lock:
                self._pending.discard(fut)
            raise TransientError(f"broker connection is closing: {exc}") from exc
        try:
            return fut.result(timeout)
        except FutureTimeout as exc:
            raise TransientError("broker did not answer in time") from exc
        finally:
            with self._lock:
                self._pending.discard(fut)

    def settle(self, delivery: Delivery, decision: Decision, *, job_id: str | None = None, result: Any = None) -> bool:
        """Apply a Decision to a delivery, in one step on the I/O thread; the only ack of the worker.

        ``result`` (an error result, or the stored result a duplicate gets) goes out first, then:
        DONE -> ack. REJECT/FAIL -> confirmed copy on the dead-letter exchange with the reason in its headers,
        then ack; should the copy itself be refused (headers), a copy with the reason alone, and failing that
        a broker-side dead-lettering (nack without requeue) — the message is settled whatever its bytes.
        RETRY/RELEASE -> confirmed republish to the jobs exchange, then ack (unlike a requeue it does not count
        against the delivery limit, so outages never make dead letters); failing that, a requeue.
        Returns False when the connection went away first: the message is back in the queue, and its
        redelivery settles it.
        """

        def on_io() -> bool:
            if delivery.generation != self.generation:
                return False
            if result is not None:
                self._publish_result_now(result)
            if decision.settles_with_dead_letter:
                settled_by_us = self._dead_letter_now(delivery, decision, job_id)
            elif decision.action in (Action.RETRY, Action.RELEASE):
                settled_by_us = self._requeue_now(delivery)
            else:
                settled_by_us = True
            if settled_by_us:  # otherwise a nack already settled it (broker-side dead letter or requeue)
                self._channel().basic_ack(delivery.tag)
            return True

        try:
            return bool(self.call(on_io))
        except Exception as exc:  # noqa: BLE001 - the broker still holds the message; its redelivery settles it
            if not is_transient(exc):
                log.error("settling a message failed (%s); the broker redelivers it", exc)
            return False

    def publish_event(self, job_id: str, event: Any) -> None:
        """Best effort: a progress event that cannot go out now is dropped, the job goes on."""
        key = c.progress_routing_key(job_id)
        try:
            self.call(
                lambda: self._publisher().publish(self.topology.events_exchange, key, event, mandatory=False),
                timeout=5.0,
            )
        except Exception as exc:  # noqa: BLE001 - progress is informational
            log.debug("progress event for %s dropped: %s", job_id, exc)

    def publish_stored(self, message: outbox.OutboxMessage) -> None:
        """Hand one outbox row to the broker and wait for the confirm (raises when it did not go out)."""
        t = self.topology
        exchange = t.dead_letter_exchange if message.kind == outbox.DEAD_LETTER else t.events_exchange
        key = t.jobs_queue if message.kind == outbox.DEAD_LETTER else message.routing_key
        # progress is informational: nobody bound means nobody wants it; results and dead letters must land
        mandatory = message.kind != outbox.PROGRESS
        content = "application/octet-stream" if message.kind == outbox.DEAD_LETTER else "application/json"

        def on_io() -> None:
            pub = self._publisher()
            try:
                pub.publish(
                    exchange,
                    key,
                    message.body,
                    headers=message.headers,
                    mandatory=mandatory,
                    message_id=message.message_id,
                    content_type=content,
                )
            except HeadersError:
                pub.publish(
                    exchange,
                    key,
                    message.body,
                    headers=_reason_only(message.headers),
                    mandatory=mandatory,
                    message_id=message.message_id,
                    content_type=content,
                )

        self.call(on_io)

    # --- on the I/O thread, inside settle -------------------------------------------------------------

    def _publish_result_now(self, result: Any) -> None:
        # the key carries the result's own (UUID) job id: any other text could hold dots and miss the binding
        raw = getattr(result, "job_id", None) if not isinstance(result, dict) else result.get("job_id")
        job_id = str(raw) if raw else None
        key = c.result_routing_key(job_id or c.UNKNOWN_JOB_KEY)
        try:
            self._publisher().publish(self.topology.events_exchange, key, result, mandatory=True)
        except UnroutableError:
            log.warning(
                "result of %s reached no queue (is %s bound to %s?)",
                job_id or "a message",
                self.topology.results_queue,
                self.topology.events_exchange,
            )
        except Exception as exc:
            if is_transient(exc):
                raise
            log.error("result of %s could not be published: %s", job_id or "a message", exc)

    def _dead_letter_now(self, delivery: Delivery, decision: Decision, job_id: str | None) -> bool:
        """True when a copy with the reason was confirmed; False when it was left to the broker (nack)."""
        pub = self._publisher()
        budget = min(HEADERS_BUDGET, pub.frame_max // 4)
        headers = dead_letter_headers(
            delivery.headers, decision.error, job_id=job_id, worker=self.worker_id, cause=decision.cause, budget=budget
        )
        for attempt in (headers, _reason_only(headers)):
            try:
                publish_dead_letter(pub, self.topology, delivery.body, attempt)
                self.metrics.dead_lettered.inc()
                return True
            except (HeadersError, UnroutableError) as exc:
                log.warning("dead letter refused (%s); trying with less", exc)
        self._channel().basic_nack(delivery.tag, requeue=False)
        self.metrics.dead_lettered.inc()
        return False

    def _requeue_now(self, delivery: Delivery) -> bool:
        t = self.topology
        pub = self._publisher()
        try:
            pub.publish(
                t.jobs_exchange,
                t.jobs_routing_key,
                delivery.body,
                headers=requeue_headers(delivery.headers, min(HEADERS_BUDGET, pub.frame_max // 4)),
                message_id=delivery.message_id,
            )
            return True
        except (HeadersError, UnroutableError) as exc:
            log.warning("republishing a message failed (%s); requeueing it instead", exc)
            self._channel().basic_nack(delivery.tag, requeue=True)
            return False

    # --- the open connection's parts (TransientError once it is gone) -----------------------------------

    def _channel(self) -> BlockingChannel:
        ch = self._ch
        if ch is None:
            raise TransientError("broker connection is down")
        return ch

    def _publisher(self) -> Publisher:
        pub = self._pub
        if pub is None:
            raise TransientError("broker connection is down")
        return pub


def _reason_only(headers: dict | None) -> dict:
    """The smallest useful dead-letter headers: the job id, the kind and a short reason."""
    headers = headers or {}
    out = {k: headers[k] for k in (H_JOB_ID, H_KIND) if isinstance(headers.get(k), str)}
    reason = headers.get(H_REASON)
    if isinstance(reason, str):
        out[H_REASON] = reason[:500]
    return out


def _close_quietly(conn) -> None:
    try:
        if conn.is_open:
            conn.close()
    except Exception:  # noqa: BLE001 - already broken
        pass

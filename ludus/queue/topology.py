"""Exchanges and queues Ludus uses, declared idempotently by every process that touches the broker.

jobs exchange (direct) --job--> jobs queue (quorum, x-delivery-limit, dead-letters at-least-once)
                                     | rejected / over the delivery limit
                                     v
dead-letter exchange (fanout) --> dead-letter queue (quorum)
events exchange (topic): ``job.<id>.progress`` and ``job.<id>.result``
                         --job.*.result--> results queue (quorum, durable: every result, even with no consumer)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ludus import constants as c
from ludus.config import Settings


@dataclass(frozen=True)
class Topology:
    """Names and limits of the broker objects (defaults from ludus.constants, overridable by Settings)."""

    jobs_exchange: str = c.JOBS_EXCHANGE
    jobs_queue: str = c.JOBS_QUEUE
    jobs_routing_key: str = c.JOBS_ROUTING_KEY
    dead_letter_exchange: str = c.DEAD_LETTER_EXCHANGE
    dead_letter_queue: str = c.DEAD_LETTER_QUEUE
    events_exchange: str = c.EVENTS_EXCHANGE
    # None: ludus.results for the default events exchange, "<events exchange>.results" for another one, so a
    # namespace of its own (a test, a second deployment on one broker) never shares the results queue
    results_queue: str | None = None
    results_max_length: int = c.RESULTS_QUEUE_MAX_LENGTH
    delivery_limit: int = c.DELIVERY_LIMIT

    def __post_init__(self) -> None:
        if self.results_queue is None:
            own = f"{self.events_exchange}.results"
            derived = c.RESULTS_QUEUE if self.events_exchange == c.EVENTS_EXCHANGE else own
            object.__setattr__(self, "results_queue", derived)

    @classmethod
    def from_settings(cls, settings: Settings) -> Topology:
        return cls(
            jobs_exchange=settings.jobs_exchange,
            jobs_queue=settings.jobs_queue,
            dead_letter_exchange=settings.dead_letter_exchange,
            dead_letter_queue=settings.dead_letter_queue,
            events_exchange=settings.events_exchange,
            results_queue=settings.results_queue,
            results_max_length=settings.results_queue_max_length,
            delivery_limit=settings.delivery_limit,
        )

    def jobs_queue_arguments(self) -> dict[str, Any]:
        # at-least-once dead-lettering needs reject-publish overflow (the broker refuses rather than drops);
        # the delivery limit is explicit because 3.x has none by default and 4.x defaults to 20.
        return {
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": self.dead_letter_exchange,
            "x-dead-letter-strategy": "at-least-once",
            "x-overflow": "reject-publish",
            "x-delivery-limit": self.delivery_limit,
        }

    def results_queue_arguments(self) -> dict[str, Any]:
        # A results queue nobody reads must not grow without bound; past the limit the broker refuses (nacks)
        # new results, and the worker's outbox keeps them until there is room: full is backpressure, not loss.
        # Quorum queues take x-max-length and reject-publish on 3.10, 3.13 and 4.x alike.
        return {"x-queue-type": "quorum", "x-max-length": self.results_max_length, "x-overflow": "reject-publish"}


def declare(channel: Any, topology: Topology) -> None:
    """Declare every exchange, queue and binding (idempotent; same arguments every time)."""
    t = topology
    channel.exchange_declare(t.jobs_exchange, exchange_type="direct", durable=True)
    channel.exchange_declare(t.dead_letter_exchange, exchange_type="fanout", durable=True)
    channel.exchange_declare(t.events_exchange, exchange_type="topic", durable=True)
    channel.queue_declare(t.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"})
    channel.queue_bind(t.dead_letter_queue, t.dead_letter_exchange)
    channel.queue_declare(t.jobs_queue, durable=True, arguments=t.jobs_queue_arguments())
    channel.queue_bind(t.jobs_queue, t.jobs_exchange, routing_key=t.jobs_routing_key)
    channel.queue_declare(t.results_queue, durable=True, arguments=t.results_queue_arguments())
    channel.queue_bind(t.results_queue, t.events_exchange, routing_key=c.RESULTS_BINDING)


def delete(channel: Any, topology: Topology) -> None:
    """Remove every object of a topology (tests, and operators tearing down a namespace)."""
    t = topology
    for queue in (t.jobs_queue, t.dead_letter_queue, t.results_queue):
        channel.queue_delete(queue)
    for exchange in (t.jobs_exchange, t.dead_letter_exchange, t.events_exchange):
        channel.exchange_delete(exchange)


def queue_depth(channel: Any, queue: str) -> int:
    """Ready messages of a queue (passive declare; unacknowledged ones are not counted)."""
    return int(channel.queue_declare(queue, passive=True).method.message_count)

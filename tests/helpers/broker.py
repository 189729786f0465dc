"""A test's own RabbitMQ topology: exchanges and queues under a unique name, declared and deleted again."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pika

from ludus.queue.topology import Topology, declare, delete


@contextmanager
def declared_topology(amqp_url: str, name: str) -> Iterator[Topology]:
    """A topology named after ``name`` (delivery limit 5), declared on the broker for the block's length."""
    topo = Topology(
        jobs_exchange=f"t.{name}.jobs",
        jobs_queue=f"t.{name}.jobs",
        dead_letter_exchange=f"t.{name}.dlx",
        dead_letter_queue=f"t.{name}.dead",
        events_exchange=f"t.{name}.events",
        delivery_limit=5,
    )
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    declare(conn.channel(), topo)
    conn.close()
    yield topo
    conn = pika.BlockingConnection(pika.URLParameters(amqp_url))
    delete(conn.channel(), topo)
    conn.close()

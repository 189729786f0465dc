"""Opening broker connections: named (visible in the management UI), with heartbeats."""

from __future__ import annotations

import pika
import pika.exceptions

from ludus.errors import TransientError

# Errors that mean "the broker or the network is gone for now": reconnect with backoff, never dead-letter.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPConnectionError,
    pika.exceptions.AMQPChannelError,
    pika.exceptions.StreamLostError,
    ConnectionError,
    OSError,
)


def connect(url: str, *, name: str, heartbeat: int = 30) -> pika.BlockingConnection:
    """A blocking connection; ``name`` shows up as the connection name on the broker."""
    params = pika.URLParameters(url)
    params.heartbeat = heartbeat
    params.blocked_connection_timeout = 300
    params.connection_attempts = 1
    params.client_properties = {"connection_name": name, "product": "ludus"}
    try:
        return pika.BlockingConnection(params)
    except BROKER_ERRORS as exc:
        raise TransientError(f"broker unreachable at {_safe(url)}: {type(exc).__name__}: {exc}") from exc


def _safe(url: str) -> str:
    from ludus.config import mask_url

    return mask_url(url)

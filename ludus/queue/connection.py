"""Opening broker connections: named (visible in the management UI), with heartbeats."""

from __future__ import annotations

import logging

import pika
import pika.exceptions

from ludus.config import mask_url
from ludus.errors import TransientError
from ludus.logs import warn_once

log = logging.getLogger("ludus.queue")

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
        where = mask_url(url)
        if refused_credentials(exc):
            # said once: the worker keeps retrying (the secret may be rotated), the log must not flood
            warn_once(log, f"amqp-auth:{where}", "the broker at %s refused the credentials: %s", where, exc)
        raise TransientError(f"broker unreachable at {where}: {type(exc).__name__}: {exc}") from exc


def refused_credentials(exc: BaseException) -> bool:
    """True when the broker refused the user, password or vhost (not when it is merely unreachable)."""
    if isinstance(
        exc,
        (
            pika.exceptions.ProbableAuthenticationError,
            pika.exceptions.AuthenticationError,
            pika.exceptions.ProbableAccessDeniedError,
        ),
    ):
        return True
    return "ACCESS_REFUSED" in str(exc) or "403" in str(getattr(exc, "args", ""))[:20]

"""Publishing with publisher confirms: a message counts as sent only once the broker confirmed it."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pika
import pika.exceptions

from ludus.errors import LudusError, TransientError

JSON = "application/json"


class UnroutableError(LudusError):
    """A mandatory message matched no queue (the topology is missing or a binding is wrong)."""


class HeadersError(LudusError):
    """Headers that cannot go out: a value pika cannot encode, or more bytes than one frame holds (the
    broker would close the whole connection). Raised before anything is sent."""


# room in a content-header frame besides the headers: class, weight, body size, flags, other properties
_HEADER_FRAME_OVERHEAD = 1024
DEFAULT_FRAME_MAX = 131072  # RabbitMQ's default


def encode(payload: Any) -> bytes:
    """JSON bytes of a dict[str, Any], a pydantic model or raw bytes/str."""
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode()
    if hasattr(payload, "model_dump_json"):
        return bytes(payload.model_dump_json(by_alias=False).encode())
    return json.dumps(payload, default=str).encode()


class Publisher:
    """Wraps one channel in confirm mode. Not thread-safe: call it from the connection's thread."""

    def __init__(self, channel: Any) -> None:
        self.channel = channel
        channel.confirm_delivery()

    @property
    def frame_max(self) -> int:
        """The frame size negotiated with the broker (a header frame must fit in one)."""
        try:
            return int(self.channel.connection._impl.params.frame_max)
        except (AttributeError, TypeError, ValueError):
            return DEFAULT_FRAME_MAX

    def publish(
        self,
        exchange: str,
        routing_key: str,
        body: Any,
        *,
        mandatory: bool = True,
        headers: dict[str, Any] | None = None,
        message_id: str | None = None,
        content_type: str = JSON,
    ) -> None:
        """Publish a persistent message and wait for the broker's confirm.

        Raises UnroutableError when a mandatory message was returned and TransientError when the broker
        nacked it (e.g. the queue refuses: reject-publish overflow) or the connection broke.
        """
        props = pika.BasicProperties(
            delivery_mode=pika.DeliveryMode.Persistent,
            content_type=content_type,
            message_id=message_id or str(uuid.uuid4()),
            headers=headers or None,
        )
        try:
            size = sum(len(piece) for piece in props.encode())
        except Exception as exc:
            raise HeadersError(f"headers cannot be encoded: {type(exc).__name__}") from exc
        if size > self.frame_max - _HEADER_FRAME_OVERHEAD:
            raise HeadersError(f"headers of {size} bytes exceed the frame size {self.frame_max}")
        try:
            self.channel.basic_publish(exchange, routing_key, encode(body), props, mandatory=mandatory)
        except pika.exceptions.UnroutableError as exc:
            raise UnroutableError(
                f"message to exchange {exchange!r} with key {routing_key!r} reached no queue"
            ) from exc
        except pika.exceptions.NackError as exc:
            raise TransientError(f"broker refused the message to {exchange!r} (nack)") from exc
        except (pika.exceptions.AMQPError, OSError) as exc:
            raise TransientError(f"publishing to {exchange!r} failed: {type(exc).__name__}: {exc}") from exc

"""Dead letters: how a rejected job carries its reason, and how operators list and replay them.

A bad job is republished (with publisher confirms) to the dead-letter exchange with ``x-ludus-error-*``
headers, then the original delivery is acked. The broker's own dead-lettering (delivery limit exceeded)
carries ``x-death`` instead; both are read back by :func:`describe`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from ludus.queue.publisher import Publisher
from ludus.queue.topology import Topology

H_FIELD = "x-ludus-error-field"
H_VALUE = "x-ludus-error-value"
H_REASON = "x-ludus-error-reason"
H_JOB_ID = "x-ludus-job-id"
H_AT = "x-ludus-dead-lettered-at"
H_WORKER = "x-ludus-worker"
H_REPLAYS = "x-ludus-replays"
# headers that describe one dead-lettering; a replay strips them so the job starts clean
_DEAD_HEADERS = (H_FIELD, H_VALUE, H_REASON, H_AT, H_WORKER, "x-death", "x-first-death-exchange",
                 "x-first-death-queue", "x-first-death-reason", "x-last-death-exchange", "x-last-death-queue",
                 "x-last-death-reason", "x-delivery-count")

_JOB_ID_KEYS = ("job_id", "JobId", "jobId", "JobID")


def job_id_of(body: bytes | str | dict | None) -> str | None:
    """The job id of a payload when one can be read (even from an otherwise invalid job), else None."""
    data: Any = body
    if isinstance(body, (bytes, str)):
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
    if isinstance(data, dict):
        for key in _JOB_ID_KEYS:
            value = data.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                return str(value)[:100]
    return None


def dead_letter_headers(original: dict | None, error: dict, *, job_id: str | None, worker: str) -> dict:
    headers = {k: v for k, v in (original or {}).items() if k not in _DEAD_HEADERS}
    headers.update({
        H_FIELD: str(error.get("field", ""))[:500],
        H_VALUE: str(error.get("value", ""))[:500],
        H_REASON: str(error.get("reason", ""))[:2000],
        H_AT: datetime.now(timezone.utc).isoformat(timespec="seconds"),
        H_WORKER: worker,
    })
    if job_id:
        headers[H_JOB_ID] = job_id
    return headers


def publish_dead_letter(publisher: Publisher, topology: Topology, body: bytes, headers: dict) -> None:
    """Put a copy of a rejected message on the dead-letter exchange (confirmed)."""
    publisher.publish(topology.dead_letter_exchange, topology.jobs_queue, body, headers=headers, mandatory=True,
                      content_type="application/octet-stream")


@dataclass
class DeadLetter:
    """One message of the dead-letter queue, as operators see it."""

    job_id: str | None
    reason: str
    field: str
    value: str
    at: str
    body: bytes = b""
    headers: dict = field(default_factory=dict)


def describe(headers: dict | None, body: bytes) -> DeadLetter:
    headers = headers or {}
    reason = _text(headers.get(H_REASON))
    at = _text(headers.get(H_AT))
    if not reason:  # dead-lettered by the broker itself (delivery limit, rejected)
        deaths = headers.get("x-death") or []
        death = deaths[0] if deaths else {}
        reason = f"broker: {_text(death.get('reason') or headers.get('x-first-death-reason')) or 'unknown'}"
        stamp = death.get("time")
        at = stamp.isoformat() if isinstance(stamp, datetime) else _text(stamp)
    return DeadLetter(
        job_id=_text(headers.get(H_JOB_ID)) or job_id_of(body),
        reason=reason, field=_text(headers.get(H_FIELD)), value=_text(headers.get(H_VALUE)), at=at,
        body=body, headers=dict(headers),
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def browse(connection, topology: Topology, limit: int | None = None) -> list[DeadLetter]:
    """Every dead letter (up to ``limit``), left in the queue (fetched unacked, then returned)."""
    channel = connection.channel()
    try:
        depth = int(channel.queue_declare(topology.dead_letter_queue, passive=True).method.message_count)
        out: list[DeadLetter] = []
        for _ in range(depth if limit is None else min(depth, limit)):
            method, props, body = channel.basic_get(topology.dead_letter_queue, auto_ack=False)
            if method is None:
                break
            out.append(describe(props.headers, body))
        return out
    finally:
        channel.close()  # returns every fetched message to the queue


def replay(connection, topology: Topology, *, job_id: str | None = None) -> list[DeadLetter]:
    """Move dead letters (all, or those of one job) back to the jobs exchange; returns what was moved.

    Each message is republished with confirms before its dead-letter copy is acked, so a crash in between
    duplicates it at worst (the job id makes the duplicate harmless), never loses it.
    """
    channel = connection.channel()
    publisher = Publisher(connection.channel())
    moved: list[DeadLetter] = []
    try:
        depth = int(channel.queue_declare(topology.dead_letter_queue, passive=True).method.message_count)
        for _ in range(depth):
            method, props, body = channel.basic_get(topology.dead_letter_queue, auto_ack=False)
            if method is None:
                break
            letter = describe(props.headers, body)
            if job_id is not None and letter.job_id != job_id:
                continue  # stays unacked, returned when the channel closes
            headers = {k: v for k, v in (props.headers or {}).items() if k not in _DEAD_HEADERS}
            headers[H_REPLAYS] = int(headers.get(H_REPLAYS, 0) or 0) + 1
            publisher.publish(topology.jobs_exchange, topology.jobs_routing_key, body, headers=headers,
                              message_id=props.message_id, content_type=props.content_type or "application/json")
            channel.basic_ack(method.delivery_tag)
            moved.append(letter)
        return moved
    finally:
        channel.close()
        publisher.channel.close()



"""Dead letters: how a rejected job carries its reason, and how operators list and replay them.

A bad job is republished (with publisher confirms) to the dead-letter exchange with ``x-ludus-error-*``
headers, then the original delivery is acked. The broker's own dead-lettering (delivery limit exceeded)
carries ``x-death`` instead; both are read back by :func:`describe`.

Headers must never be what breaks a dead letter: every value is made encodable and bounded, and the original
headers are copied only while the total stays within a budget far below the connection's ``frame_max`` (a
header frame larger than that makes the broker close the whole connection).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pika.data

from ludus.contracts.job import parse_job
from ludus.contracts.text import safe_text
from ludus.errors import InputError
from ludus.queue.policy import CAUSE_CONFLICT
from ludus.queue.publisher import Publisher
from ludus.queue.topology import Topology

H_FIELD = "x-ludus-error-field"
H_VALUE = "x-ludus-error-value"
H_REASON = "x-ludus-error-reason"
H_KIND = "x-ludus-error-kind"  # one of ludus.queue.policy.CAUSES
H_JOB_ID = "x-ludus-job-id"
H_AT = "x-ludus-dead-lettered-at"
H_WORKER = "x-ludus-worker"
H_REPLAYS = "x-ludus-replays"
H_DROPPED = "x-ludus-headers-dropped"
# headers that describe one dead-lettering; a replay strips them so the job starts clean
_DEAD_HEADERS = (
    H_FIELD,
    H_VALUE,
    H_REASON,
    H_KIND,
    H_AT,
    H_WORKER,
    H_DROPPED,
    "x-death",
    "x-first-death-exchange",
    "x-first-death-queue",
    "x-first-death-reason",
    "x-last-death-exchange",
    "x-last-death-queue",
    "x-last-death-reason",
    "x-delivery-count",
)

#: total size of the headers Ludus publishes (encoded), far below RabbitMQ's default frame_max of 128 KiB
HEADERS_BUDGET = 32 * 1024
HEADER_TEXT_CHARS = 4000
HEADER_DEPTH = 8

_JOB_ID_KEYS = ("job_id", "JobId", "jobId", "JobID")


def job_id_of(body: bytes | str | dict[str, Any] | None) -> str | None:
    """The job id of a payload when one can be read (even from an otherwise invalid job), else None.

    Never raises: an unreadable, undecodable or absurdly nested body simply has no readable id."""
    data: Any = body
    if isinstance(body, (bytes, str)):
        try:
            data = json.loads(body)
        except Exception:  # noqa: BLE001 - ValueError, UnicodeDecodeError, RecursionError: no readable id
            return None
    if isinstance(data, dict):
        for key in _JOB_ID_KEYS:
            value = data.get(key)
            if isinstance(value, (str, int)) and not isinstance(value, bool) and str(value).strip():
                return safe_text(str(value), 100)
    return None


def encoded_size(headers: dict[str, Any] | None) -> int:
    """Bytes the headers take in a frame (AMQP field table); raises when a value cannot be encoded."""
    if not headers:
        return 0
    pieces: list[bytes] = []
    return int(pika.data.encode_table(pieces, headers))


def safe_value(value: Any, depth: int = 0) -> Any:
    """A header value that pika can encode: text escaped and bounded, nested tables bounded in depth."""
    if isinstance(value, str):
        return safe_text(value, HEADER_TEXT_CHARS)
    if isinstance(value, (bool, int, Decimal, datetime)) or value is None:
        try:  # pika cannot encode every value it decodes (ints past 64 bits, huge decimals)
            pika.data.encode_value([], value)
            return value
        except Exception:  # noqa: BLE001 - kept as text instead
            return safe_text(value, 200)
    if isinstance(value, bytes):
        return value if len(value) <= HEADER_TEXT_CHARS else value[:HEADER_TEXT_CHARS]
    if depth >= HEADER_DEPTH:
        return safe_text(value, 200)
    if isinstance(value, dict):
        return {safe_text(k, 128): safe_value(v, depth + 1) for k, v in list(value.items())[:64]}
    if isinstance(value, (list, tuple)):
        return [safe_value(v, depth + 1) for v in list(value)[:64]]
    return safe_text(value, 200)


def bounded_headers(
    headers: dict[str, Any] | None, budget: int = HEADERS_BUDGET, *, drop: tuple[str, ...] = ()
) -> tuple[dict[str, Any], list[str]]:
    """Copy of ``headers`` with safe values that fits in ``budget`` bytes; returns (headers, dropped names).

    Headers are kept in their order while they fit; one that is too large (or cannot be encoded) is dropped
    and named, so a near-``frame_max`` header never breaks the copy that carries the reason."""
    out: dict[str, Any] = {}
    dropped: list[str] = []
    used = 0
    for key, value in (headers or {}).items():
        if key in drop:
            continue
        name = safe_text(key, 128)
        try:
            clean = safe_value(value)
            size = encoded_size({name: clean})
        except Exception:  # noqa: BLE001 - an unencodable header is dropped, not fatal
            dropped.append(name)
            continue
        if used + size > budget:
            dropped.append(name)
            continue
        out[name] = clean
        used += size
    return out, dropped


def dead_letter_headers(
    original: dict[str, Any] | None,
    error: dict[str, Any],
    *,
    job_id: str | None,
    worker: str,
    cause: str = "",
    budget: int = HEADERS_BUDGET,
) -> dict[str, Any]:
    """The headers of a dead letter: the reason (field, value, rule, kind), who and when, and as many of the
    original headers as fit in ``budget`` bytes (the names of those left out in ``x-ludus-headers-dropped``)."""
    ours = {
        H_FIELD: safe_text(error.get("field", ""), 200),
        H_VALUE: safe_text(error.get("value", ""), 500),
        H_REASON: safe_text(error.get("reason", ""), 2000),
        H_KIND: safe_text(cause, 32),
        H_AT: datetime.now(timezone.utc).isoformat(timespec="seconds"),
        H_WORKER: safe_text(worker, 200),
    }
    if job_id:
        ours[H_JOB_ID] = safe_text(job_id, 100)
    room = max(0, budget - encoded_size(ours) - 1024)  # 1 KiB left for the list of dropped names
    kept, dropped = bounded_headers(original, room, drop=(*_DEAD_HEADERS, *ours))
    headers = {**kept, **ours}
    if dropped:
        headers[H_DROPPED] = safe_text(", ".join(dropped), 900)
    return headers


def requeue_headers(original: dict[str, Any] | None, budget: int = HEADERS_BUDGET) -> dict[str, Any]:
    """Headers of a message republished to the jobs queue (retry/release): the broker's delivery count
    removed, everything else kept while it fits."""
    kept, _dropped = bounded_headers(original, budget, drop=("x-delivery-count",))
    return kept


def replay_count(headers: dict[str, Any] | None) -> int:
    """How many times a message was replayed from the dead-letter queue (0 for junk or a missing header)."""
    value = (headers or {}).get(H_REPLAYS)
    try:
        return max(0, int(value)) if value is not None and not isinstance(value, bool) else 0
    except (TypeError, ValueError):
        return 0


def publish_dead_letter(publisher: Publisher, topology: Topology, body: bytes, headers: dict[str, Any]) -> None:
    """Put a copy of a rejected message on the dead-letter exchange (confirmed)."""
    publisher.publish(
        topology.dead_letter_exchange,
        topology.jobs_queue,
        body,
        headers=headers,
        mandatory=True,
        content_type="application/octet-stream",
    )


@dataclass
class DeadLetter:
    """One message of the dead-letter queue, as operators see it."""

    job_id: str | None
    reason: str
    field: str
    value: str
    at: str
    kind: str = ""
    body: bytes = b""
    headers: dict[str, Any] = dataclasses.field(default_factory=dict)


def describe(headers: dict[str, Any] | None, body: bytes) -> DeadLetter:
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
        reason=reason,
        field=_text(headers.get(H_FIELD)),
        value=_text(headers.get(H_VALUE)),
        at=at,
        kind=_text(headers.get(H_KIND)),
        body=body,
        headers=dict(headers),
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


def browse(connection: Any, topology: Topology, limit: int | None = None) -> list[DeadLetter]:
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


@dataclass
class Refusal:
    """A dead letter ``replay`` left in place: why, and what the operator should do instead."""

    letter: DeadLetter
    reason: str


def replay_refusal(letter: DeadLetter) -> str | None:
    """Why replaying this dead letter would only get it refused again (None: it may run now).

    A message that breaks the job contract, or a second payload under a known job id, can only be fixed by
    sending a corrected job; a job rejected for something the world lacked (an unknown symbol, a missing
    strategy) or that failed runs again as a new attempt."""
    if letter.kind == CAUSE_CONFLICT:
        return (
            f"{letter.reason}; replaying cannot help: give the job a new job_id and resubmit it "
            "with `ludus submit JOB.json`"
        )
    try:
        parse_job(letter.body)
    except InputError as exc:
        return f"the message is not a valid job ({exc}); fix it and resubmit it with `ludus submit JOB.json`"
    return None


def replay(connection: Any, topology: Topology, *, job_id: str | None = None) -> tuple[list[DeadLetter], list[Refusal]]:
    """Move dead letters (all, or those of one job) back to the jobs exchange; returns (moved, refused).

    Each message is republished with confirms before its dead-letter copy is acked, so a crash in between
    duplicates it at worst (the job id makes the duplicate harmless), never loses it. The replay counter
    header makes the worker reopen a rejected or failed job and run it again as a new attempt. A letter that
    could only be refused again is left in the queue (see :func:`replay_refusal`).
    """
    channel = connection.channel()
    publisher = Publisher(connection.channel())
    moved: list[DeadLetter] = []
    refused: list[Refusal] = []
    try:
        depth = int(channel.queue_declare(topology.dead_letter_queue, passive=True).method.message_count)
        for _ in range(depth):
            method, props, body = channel.basic_get(topology.dead_letter_queue, auto_ack=False)
            if method is None:
                break
            letter = describe(props.headers, body)
            if job_id is not None and letter.job_id != job_id:
                continue  # stays unacked, returned when the channel closes
            why = replay_refusal(letter)
            if why is not None:
                refused.append(Refusal(letter, why))
                continue  # stays, returned when the channel closes
            headers = requeue_headers({k: v for k, v in (props.headers or {}).items() if k not in _DEAD_HEADERS})
            headers[H_REPLAYS] = replay_count(props.headers) + 1
            publisher.publish(
                topology.jobs_exchange,
                topology.jobs_routing_key,
                body,
                headers=headers,
                message_id=props.message_id,
                content_type=props.content_type or "application/json",
            )
            channel.basic_ack(method.delivery_tag)
            moved.append(letter)
        return moved, refused
    finally:
        channel.close()
        publisher.channel.close()

"""A broker stand-in for fast policy tests (the dramatiq way): it records what the worker asked of it.

Only for tests of the worker's decisions; every test of delivery itself runs against the real RabbitMQ.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ludus.queue.policy import Decision
from ludus.worker.broker_io import Delivery


@dataclass
class Settled:
    delivery: Delivery
    decision: Decision
    job_id: str | None
    result: Any


@dataclass
class StubBroker:
    """Implements the part of BrokerIO that JobExecution uses; ``settled`` lists every settle in order."""

    settled: list[Settled] = field(default_factory=list)
    events: list[tuple[str, Any]] = field(default_factory=list)
    up: bool = True
    generation: int = 1
    _tag: int = 0

    def deliver(self, body: bytes, headers: dict | None = None) -> Delivery:
        self._tag += 1
        return Delivery(self._tag, self.generation, body, dict(headers or {}), None, False)

    def settle(self, delivery: Delivery, decision: Decision, *, job_id: str | None = None, result: Any = None) -> bool:
        if result is not None:  # what the real broker would have to encode
            text = result.model_dump_json() if hasattr(result, "model_dump_json") else json.dumps(result)
            text.encode("utf-8")
        self.settled.append(Settled(delivery, decision, job_id, result))
        return True

    def publish_event(self, job_id: str, event: Any) -> None:
        self.events.append((job_id, event))

    def settles_of(self, delivery: Delivery) -> list[Settled]:
        return [s for s in self.settled if s.delivery.tag == delivery.tag]

"""Intake on a stub broker: every message the contract refuses is settled exactly once, with a reason and an
error result that serializes, whatever its bytes (fast: no broker, no database; the real-broker fuzz test
in test_queue_fuzz.py sends the same classes through RabbitMQ)."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from stub_broker import StubBroker

from ludus.config import Settings
from ludus.queue.policy import Action
from ludus.worker.execution import JobExecution
from ludus.worker.lifecycle import Lifecycle
from ludus.worker.metrics import WorkerMetrics

JOB_ID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"
VALID = {"job_id": JOB_ID, "strategy": "sma_cross", "symbols": ["SPX"], "mode": "static"}


def _execution(broker: StubBroker) -> JobExecution:
    return JobExecution(
        settings=Settings(),
        engine=None,
        broker=broker,
        relay=None,
        leases=None,
        lifecycle=Lifecycle(1.0),
        metrics=WorkerMetrics(),
        worker_id="stub-worker",
        runner=None,
        executor_factory=None,
        runner_options={},
        max_attempts=20,
    )


def _surrogate_job(draw) -> bytes:
    where = draw(st.sampled_from(["strategy", "symbols", "key", "override", "job_id"]))
    bad = draw(st.sampled_from(["\\ud800", "\\udfff", "x\\udc80y"]))
    body = json.dumps(VALID)
    if where == "strategy":
        body = body.replace('"sma_cross"', f'"{bad}"')
    elif where == "symbols":
        body = body.replace('["SPX"]', f'["{bad}"]')
    elif where == "key":
        body = body[:-1] + f', "{bad}": 1}}'
    elif where == "override":
        body = body[:-1] + f', "overrides": {{"fast": {{"choices": ["{bad}"]}}}}}}'
    else:
        body = body.replace(JOB_ID, bad)
    return body.encode()


@st.composite
def hostile(draw) -> bytes:
    kind = draw(st.sampled_from(["surrogate", "utf8", "deep", "deep_valid_json", "bytes", "text"]))
    if kind == "surrogate":
        return _surrogate_job(draw)
    if kind == "utf8":
        return json.dumps(VALID).encode()[:-2] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80"])) + b"}"
    if kind == "deep":  # deeper than the recursion limit: json.loads itself gives up
        depth = draw(st.integers(1_500, 50_000))
        return b'{"job_id": "' + JOB_ID.encode() + b'", "x": ' + b"[" * depth + b"]" * depth + b"}"
    if kind == "deep_valid_json":  # parses, but nests far beyond what a job needs
        depth = draw(st.integers(33, 900))
        return (json.dumps(VALID)[:-1] + ', "overrides": {"fast": ' + "[" * depth + "]" * depth + "}}").encode()
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    return json.dumps(draw(st.text(max_size=20))).encode()


def test_every_refused_message_is_settled_once_with_a_reason_and_a_result() -> None:
    broker = StubBroker()
    execution = _execution(broker)
    seen: list = []

    @given(hostile())
    @hsettings(max_examples=1500, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    def feed(body: bytes) -> None:
        delivery = broker.deliver(body, {"x-big": "h" * 1000})
        execution.intake(delivery)
        seen.append(delivery)

    feed()
    assert len(seen) >= 1000
    unsettled = [d for d in seen if len(broker.settles_of(d)) != 1]
    assert unsettled == []
    for s in broker.settled:
        assert s.decision.action is Action.REJECT, s.decision
        assert s.decision.error["reason"] and s.result.error.reason
        assert s.result.status == "rejected"
    reasons = " ".join(s.decision.reason for s in broker.settled)
    for words in ("lone surrogate", "not UTF-8", "nested too deeply", "nested deeper than"):
        assert words in reasons, words

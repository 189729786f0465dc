"""Fuzz: hypothesis-generated malformed messages interleaved with valid jobs; the worker never dies."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from queue_helpers import job, worker_thread

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids,
                                                                                     max_size=3), max_leaves=6)
FIELDS = ["strategy", "symbols", "interval", "lookback", "mode", "candidates", "search", "cost_bps", "validation"]


@st.composite
def malformed(draw) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "mutated", "missing"]))
    if kind == "bytes":
        return draw(st.binary(max_size=40))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    body = job(trials=2)
    field = draw(st.sampled_from(FIELDS))
    if kind == "missing":
        body.pop(draw(st.sampled_from(["job_id", "strategy", "symbols"])))
    else:
        body[field] = draw(json_values.filter(lambda v: not isinstance(v, (dict, list))))
    return json.dumps(body).encode()


def test_fuzzed_messages_are_dead_lettered_and_valid_jobs_complete(settings, broker):
    from ludus.contracts.job import parse_job

    payloads: list[bytes] = []

    @given(malformed())
    @hsettings(max_examples=2000, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    def collect(payload: bytes) -> None:
        try:
            parse_job(payload)
        except Exception:  # noqa: BLE001 - keep only what the contract rejects
            payloads.append(payload)

    collect()
    assert len(payloads) >= 1000  # thousands of attempts, most of them rejected by the contract
    valid = [job(trials=2) for _ in range(3)]
    step = len(payloads) // 3
    for i, payload in enumerate(payloads):
        broker.publish(payload)
        if i % step == 0 and valid[i // step:i // step + 1]:
            broker.publish(valid[i // step])
    with worker_thread(settings.model_copy(update={"max_concurrent_jobs": 2})) as w:
        broker.wait(lambda: len(broker.results) >= len(payloads) + len(valid), 480, "every result")
        assert w.health()[0]
    ok = {r["job_id"] for r in broker.results if r["status"] == "succeeded"}
    assert ok == {v["job_id"] for v in valid}
    letters = broker.dead_letters()
    assert len(letters) == len(payloads)
    assert sorted(ltr.body for ltr in letters) == sorted(payloads)
    assert all(ltr.reason and ltr.headers.get("x-ludus-error-reason") for ltr in letters)
    assert broker.depth(settings.jobs_queue) == 0

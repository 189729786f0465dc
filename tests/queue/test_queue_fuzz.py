"""Fuzz: thousands of hypothesis-generated hostile messages interleaved with valid jobs on the real broker.

The classes the chaos run found: random bytes and JSON, mutated and truncated jobs, lone UTF-16 surrogates
(in values and keys), invalid UTF-8, nesting deeper than the recursion limit, headers near ``frame_max``, and
a second payload under a known job id. Every message must settle: once the worker has stopped (its
connection closed), a message it had left unacked would be back in the jobs queue, so the count of unsettled
messages is that queue's depth, and it must be 0.
"""

from __future__ import annotations

import json

import pika
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from queue_helpers import job, worker_thread

from ludus.constants import JOBS_ROUTING_KEY

pytestmark = [pytest.mark.rabbitmq, pytest.mark.postgres]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
    max_leaves=6,
)
FIELDS = ["strategy", "symbols", "interval", "lookback", "mode", "candidates", "search", "cost_bps", "validation"]
SURROGATES = ["\ud800", "\udbff", "\udc00", "\udfff", "a\ud834b"]
BIG_HEADERS = 12  # headers near frame_max: enough to catch a broken copy, few enough to keep the broker light


@st.composite
def malformed(draw) -> tuple[bytes, dict | None]:
    kind = draw(
        st.sampled_from(
            ["bytes", "json", "mutated", "missing", "surrogate", "surrogate_key", "utf8", "deep", "deep_json", "header"]
        )
    )
    if kind == "bytes":
        return draw(st.binary(max_size=40)), None
    if kind == "json":
        return json.dumps(draw(json_values)).encode(), None
    body = job(trials=2)
    if kind == "missing":
        body.pop(draw(st.sampled_from(["job_id", "strategy", "symbols"])))
    elif kind == "mutated":
        body[draw(st.sampled_from(FIELDS))] = draw(json_values.filter(lambda v: not isinstance(v, (dict, list))))
    elif kind == "surrogate":
        bad = draw(st.sampled_from(SURROGATES))
        where = draw(st.sampled_from(["strategy", "symbols", "override"]))
        if where == "override":
            body["overrides"] = {"fast": {"choices": [bad]}}
        else:
            body[where] = [bad] if where == "symbols" else bad
    elif kind == "surrogate_key":
        body[draw(st.sampled_from(SURROGATES))] = 1
    elif kind == "utf8":
        raw = json.dumps(body).encode()
        cut = draw(st.integers(1, len(raw) - 1))
        return raw[:cut] + draw(st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80"])) + raw[
            cut:
        ], None
    elif kind == "deep":  # deeper than the recursion limit: json.loads itself gives up
        depth = draw(st.integers(1_100, 20_000))
        return json.dumps(body)[:-1].encode() + b', "x": ' + b"[" * depth + b"]" * depth + b"}", None
    elif kind == "deep_json":  # parses, but nests far beyond what a job needs
        depth = draw(st.integers(33, 800))
        body["overrides"] = {"fast": {"choices": json.loads("[" * depth + "]" * depth)}}
    else:  # invalid, with a header a few bytes short of what one frame can carry
        return b"{not json: " + draw(st.binary(max_size=8)), {"x-pad": "h" * draw(st.integers(120_000, 130_800))}
    return json.dumps(body).encode(), None


def test_fuzzed_messages_are_all_settled_dead_lettered_with_a_reason_and_valid_jobs_complete(settings, broker):
    from ludus.contracts.job import parse_job

    payloads: list[tuple[bytes, dict | None]] = []
    big = 0

    @given(malformed())
    @hsettings(max_examples=2000, database=None, deadline=None, suppress_health_check=list(HealthCheck))
    def collect(sample: tuple[bytes, dict | None]) -> None:
        nonlocal big
        body, headers = sample
        if headers is not None:
            if big >= BIG_HEADERS:
                return
            big += 1
        try:
            parse_job(body)
        except Exception:  # noqa: BLE001 - keep only what the contract rejects
            payloads.append(sample)

    collect()
    assert len(payloads) >= 1000  # thousands of attempts, most of them rejected by the contract
    kinds = {"surrogate": b"\\ud8", "deep": b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", "utf8": b"\xff"}
    for name, marker in kinds.items():
        assert any(marker in body for body, _ in payloads), f"no {name} case generated"
    assert big >= 1
    valid = [job(trials=2) for _ in range(3)]
    conflicts = [{**v, "search": {"trials": 3, "seed": 2}} for v in valid]  # known ids, other payloads
    step = len(payloads) // 3
    for i, (body, headers) in enumerate(payloads):
        broker.ch.basic_publish(
            settings.jobs_exchange,
            JOBS_ROUTING_KEY,
            body,
            pika.BasicProperties(delivery_mode=2, headers=headers),
            mandatory=True,
        )
        if i % step == 0 and valid[i // step : i // step + 1]:
            broker.publish(valid[i // step])
    for body in conflicts:
        broker.publish(body)
    expected = len(payloads) + len(valid) + len(conflicts)
    with worker_thread(settings.model_copy(update={"max_concurrent_jobs": 2})) as w:
        broker.wait(lambda: len(broker.results) >= expected, 480, "every result")
        assert w.health()[0]
        assert w.broker.generation == 1, "a message broke the worker's connection"
    unsettled = broker.depth(settings.jobs_queue)
    print(f"fuzz: {len(payloads)} hostile + {len(valid)} valid + {len(conflicts)} conflicting, unsettled={unsettled}")
    assert unsettled == 0, f"{unsettled} message(s) left unacked by the worker"
    ok = {r["job_id"] for r in broker.results if r["status"] == "succeeded"}
    assert ok == {v["job_id"] for v in valid}
    letters = broker.dead_letters()
    assert len(letters) == len(payloads) + len(conflicts)
    assert sorted(ltr.body for ltr in letters) == sorted(
        [b for b, _ in payloads] + [json.dumps(c).encode() for c in conflicts]
    )
    assert all(ltr.reason and ltr.headers.get("x-ludus-error-reason") for ltr in letters)
    refused = [r for r in broker.results if r["status"] == "rejected"]
    assert len(refused) == len(payloads) + len(conflicts)
    assert sum("different payload" in r["error"]["reason"] for r in refused) == len(conflicts)

"""Whatever arrives on the queue, parse_job answers with a job or an InputError (never another exception)."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from ludus.contracts.job import extract_job_id, parse_job
from ludus.errors import InputError

JOB_ID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"

scalars = st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=False) | st.text(max_size=12)
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
    st.text(max_size=10), inner, max_size=4), max_leaves=12)
keys = st.sampled_from([
    "JobId", "job_id", "StrategyName", "Symbols", "symbols", "LookbackPeriod", "Search", "search", "Validation",
    "Overrides", "Placement", "ConditionsFrom", "Deadline", "Priority", "Candidates", "CostBps", "Mode", "x",
])


def check(raw) -> None:
    try:
        parse_job(raw)
    except InputError as exc:
        assert exc.field and isinstance(exc.rule, str)
        json.dumps(exc.to_dict())  # what the error result carries is always serializable
    extract_job_id(raw)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(keys, json_values, max_size=8))
def test_random_messages(message):
    check(message)
    check(json.dumps(message).encode())


@settings(max_examples=200, deadline=None)
@given(json_values, st.binary(max_size=40))
def test_random_payloads(value, blob):
    check(json.dumps(value))
    check(blob)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["Trials", "Sampler", "TimeoutS", "Seed", "trails"]), json_values, max_size=4),
       st.dictionaries(st.sampled_from(["fast", "Slow", "mode"]), json_values, max_size=3))
def test_random_nested_sections(search, overrides):
    check({"JobId": JOB_ID, "StrategyName": "sma_cross", "Symbols": ["SPX"], "Search": search,
           "Overrides": overrides})

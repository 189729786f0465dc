"""Whatever arrives on the queue, parse_job answers with a job or an InputError (never another exception), and
what an InputError carries can always be encoded (headers, JSON) — lone surrogates and deep nesting included."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ludus.contracts.job import extract_job_id, parse_job
from ludus.contracts.results import ErrorDetail
from ludus.errors import InputError

JOB_ID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"

# text with lone UTF-16 surrogates (json.loads accepts "\ud800"; no UTF-8 encoder does)
surrogate_text = st.text(st.characters(categories=["Cs"]) | st.characters(), min_size=1, max_size=6).filter(
    lambda t: any(0xD800 <= ord(ch) <= 0xDFFF for ch in t)
)
texts = st.text(max_size=12) | surrogate_text
scalars = st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.floats(allow_nan=False) | texts
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10) | surrogate_text, inner, max_size=4)
    ),
    max_leaves=12,
)
keys = st.sampled_from(
    [
        "JobId",
        "job_id",
        "StrategyName",
        "Symbols",
        "symbols",
        "LookbackPeriod",
        "Search",
        "search",
        "Validation",
        "Overrides",
        "Placement",
        "ConditionsFrom",
        "Deadline",
        "Priority",
        "Candidates",
        "CostBps",
        "Mode",
        "x",
    ]
)


def check(raw) -> None:
    try:
        parse_job(raw)
    except InputError as exc:
        assert exc.field and isinstance(exc.rule, str)
        json.dumps(exc.to_dict())  # what the error result carries is always serializable
        detail = ErrorDetail(**exc.to_dict())  # and encodable: headers and the error result take it as it is
        detail.model_dump_json().encode("utf-8")
        for text in (detail.field or "", detail.value or "", detail.reason):
            text.encode("utf-8")
    extract_job_id(raw)


def test_lone_surrogates_are_refused_naming_the_field() -> None:
    body = {
        "JobId": JOB_ID,
        "StrategyName": "sma_cross",
        "Symbols": ["SPX"],
        "Overrides": {"fast": {"Choices": [1, "\ud800"]}},
    }
    for raw in (body, json.dumps(body), json.dumps(body).encode()):
        with pytest.raises(InputError) as err:
            parse_job(raw)
        assert err.value.field == "Overrides.fast.Choices.1" and "lone surrogate \\ud800" in err.value.rule
        assert str(err.value).startswith("Overrides.fast.Choices.1=\\ud800: ")


@settings(max_examples=60, deadline=None)
@given(st.integers(33, 990), st.sampled_from(["list", "dict"]))
def test_nesting_deeper_than_any_job_is_refused(depth, container) -> None:
    inner = "[" * depth + "]" * depth if container == "list" else '{"a":' * depth + "1" + "}" * depth
    raw = f'{{"job_id": "{JOB_ID}", "strategy": "sma_cross", "symbols": ["SPX"], "x": {inner}}}'
    with pytest.raises(InputError, match="nested deeper than 32 levels"):
        parse_job(raw)
    with pytest.raises(InputError, match="nested too deeply"):
        parse_job('{"x": ' + "[" * 100_000 + "]" * 100_000 + "}")


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
@given(
    st.dictionaries(st.sampled_from(["Trials", "Sampler", "TimeoutS", "Seed", "trails"]), json_values, max_size=4),
    st.dictionaries(st.sampled_from(["fast", "Slow", "mode"]), json_values, max_size=3),
)
def test_random_nested_sections(search, overrides):
    check({"JobId": JOB_ID, "StrategyName": "sma_cross", "Symbols": ["SPX"], "Search": search, "Overrides": overrides})

"""The job message: spellings, bounds, error reporting."""

from __future__ import annotations

import json
import uuid
from datetime import date, timezone

import pytest
from pydantic import ValidationError

from ludus.contracts.base import MessageValidationError
from ludus.contracts.job import OptimizationJob, extract_job_id, parse_job
from ludus.errors import InputError

JOB_ID = "6f1c2d3e-4b5a-4c6d-8e7f-9a0b1c2d3e4f"


def minimal(**extra):
    return {"job_id": JOB_ID, "strategy": "sma_cross", "symbols": ["SPX"], **extra}


def error_of(raw) -> InputError:
    with pytest.raises(InputError) as info:
        parse_job(raw)
    return info.value


def test_defaults_of_a_minimal_job():
    job = parse_job(minimal())
    assert job.job_id == uuid.UUID(JOB_ID)
    assert (job.mode, job.interval, job.objective, job.search.sampler) == ("cpo", "1d", "sharpe", "tpe")
    assert job.lookback.bars == 2520 and job.validation.holdout_bars is None  # every bar after the training span
    assert job.validation.windows == 6 and job.search.seeds == 3 and job.gate.alpha == 0.05
    assert job.exchange == "XNYS" and job.exchange_of("SPX") == "XNYS" and job.publish.on_stale == "flag"
    assert job.challengers.arms == ["cpo", "best_fixed", "defaults", "ensemble", "rolling", "policy_gradient"]
    assert job.overrides == {} and job.conditions_from == [] and job.placement.exclude == []


def test_pascal_case_from_conductor_equals_snake_case():
    pascal = {
        "JobId": JOB_ID,
        "StrategyName": "sma_cross",
        "Symbols": ["spx", "IXIC", "SPX"],
        "Interval": "1D",
        "LookbackPeriod": 1500,
        "Candidates": 32,
        "Search": {"Trials": 8, "Sampler": "cmaes", "TimeoutS": 60},
        "CostBps": 2,
        "Validation": {"Folds": 2, "EmbargoBars": 3, "HoldoutBars": 100},
        "Gate": {"MinImprovement": 0.1},
        "Overrides": {"fast": {"Low": 5, "High": 20}},
        "ConditionsFrom": ["vix"],
        "Priority": 9,
        "Placement": {"Require": "AMD64"},
    }
    snake = {
        "job_id": JOB_ID,
        "strategy": "sma_cross",
        "symbols": ["SPX", "IXIC"],
        "interval": "1d",
        "lookback": {"bars": 1500},
        "candidates": 32,
        "search": {"trials": 8, "sampler": "cmaes", "timeout_s": 60},
        "cost_bps": 2.0,
        "validation": {"folds": 2, "embargo_bars": 3, "holdout_bars": 100},
        "gate": {"min_improvement": 0.1},
        "overrides": {"fast": {"low": 5, "high": 20}},
        "conditions_from": ["VIX"],
        "priority": 9,
        "placement": {"require": "x86_64"},
    }
    a, b = parse_job(pascal), parse_job(snake)
    assert a == b
    assert a.symbols == ["SPX", "IXIC"]  # upper-cased, deduplicated, order kept
    assert a.overrides == {"fast": {"low": 5, "high": 20}}  # plain dicts for ParameterSpace.narrow
    assert parse_job({"jobId": JOB_ID, "strategyName": "sma_cross", "symbols": ["SPX"]}).strategy == "sma_cross"


def test_accepts_bytes_str_dict_and_round_trips():
    raw = json.dumps(minimal(deadline="2030-01-01T06:00:00"))
    job = parse_job(raw.encode())
    assert job == parse_job(raw) == parse_job(json.loads(raw))
    assert job.deadline is not None and job.deadline.tzinfo == timezone.utc  # naive .NET DateTime = UTC
    again = parse_job(job.to_json())
    assert again == job
    assert json.loads(job.to_json())["job_id"] == JOB_ID and "JobId" not in job.to_json()


def test_lookback_forms():
    assert parse_job(minimal(lookback=3000)).lookback.bars == 3000
    dates = parse_job(minimal(lookback={"start": "2013-01-01"})).lookback
    assert dates.start == date(2013, 1, 1) and dates.end is None and dates.bars is None
    err = error_of(minimal(lookback={"bars": 500, "start": "2013-01-01"}))
    assert err.field == "lookback" and "not both" in err.rule
    assert error_of(minimal(lookback={})).field == "lookback"
    err = error_of(minimal(lookback={"Start": "2015-01-01", "End": "2014-01-01"}))
    assert err.field == "lookback" and "after start" in err.rule
    err = error_of(minimal(lookback=200, validation={"holdout_bars": 252}))
    assert err.field == "lookback.bars" and err.value == 200 and "holdout" in err.rule


def test_malformed_json_is_an_input_error_at_the_root():
    err = error_of(b'{"job_id": ')
    assert err.field == "$" and "malformed JSON" in err.rule
    assert error_of(b"\xff\xfe\x00").field == "$"
    assert error_of("[" * 100_000 + "]" * 100_000).field == "$"  # nesting bomb
    assert error_of('{"priority": ' + "9" * 5000 + "}").field == "$"  # beyond the integer digit limit
    assert error_of({1: 2, "job_id": JOB_ID}).field
    err = error_of("[1, 2]")
    assert err.field == "$" and "object" in err.rule


def test_error_names_the_dotted_path_value_and_rule():
    err = error_of(minimal(Search={"Trials": 0}))
    assert err.field == "search.trials" and err.value == 0 and "greater than or equal to 1" in err.rule
    assert str(err).startswith("search.trials=0:")


def test_every_error_is_listed():
    err = error_of({"job_id": "nope", "strategy": "Bad-Name", "symbols": [], "cost_bps": -1})
    assert isinstance(err, MessageValidationError)
    fields = [e["field"] for e in err.errors]
    assert fields == ["job_id", "strategy", "symbols", "cost_bps"]
    for f in fields[1:]:
        assert f in str(err)
    assert err.to_dict()["reason"].count(";") >= 2  # the reason the result carries lists the others too


def test_unknown_field_is_named_with_a_suggestion():
    err = error_of(minimal(search={"trails": 5}))
    assert err.field == "search.trails" and "unknown field" in err.rule and "'trials'" in err.rule
    err = error_of(minimal(Cadidates=5))
    assert err.field == "Cadidates" and "candidates" in err.rule


def test_same_field_under_two_spellings_is_rejected():
    err = error_of(minimal(Symbols=["IXIC"]))
    assert "symbols" in err.rule and "twice" in err.rule


@pytest.mark.parametrize(
    ("patch", "field"),
    [
        ({"strategy": "SmaCross"}, "strategy"),
        ({"strategy": "sma cross; drop table"}, "strategy"),
        ({"symbols": ["SPX", "SP X"]}, "symbols.1"),
        ({"symbols": ["SPX_1d"]}, "symbols.0"),
        ({"interval": "1 day"}, "interval"),
        ({"mode": "grid"}, "mode"),
        ({"candidates": 1}, "candidates"),
        ({"candidates": 100_000}, "candidates"),
        ({"search": {"sampler": "cma"}}, "search.sampler"),
        ({"search": {"timeout_s": 0}}, "search.timeout_s"),
        ({"search": {"seed": -1}}, "search.seed"),
        ({"objective": "profit"}, "objective"),
        ({"cost_bps": 5000}, "cost_bps"),
        ({"validation": {"folds": 0}}, "validation.folds"),
        ({"validation": {"embargo_bars": -1}}, "validation.embargo_bars"),
        ({"gate": {"min_improvement": -0.5}}, "gate.min_improvement"),
        ({"priority": 10}, "priority"),
        ({"deadline": "tomorrow"}, "deadline"),
        ({"conditions_from": ["VIX", "vi x"]}, "conditions_from.1"),
        ({"placement": {"require": "sparc"}}, "placement.require.0"),  # one name is a list of one
        ({"placement": {"require": "arm64", "exclude": ["arm64"]}}, "placement.require"),
        ({"placement": {"exclude": ["x86_64", "aarch64"]}}, "placement"),
        ({"overrides": {"Fast": {"low": 1, "high": 2}}}, "overrides.Fast.[key]"),
        ({"overrides": {"fast": {"low": 9, "high": 2}}}, "overrides.fast.low"),
        ({"overrides": {"fast": {"low": 1, "choices": [1]}}}, "overrides.fast"),
        ({"overrides": {"fast": {}}}, "overrides.fast"),
        ({"overrides": {"mode": {"choices": ["a", "a"]}}}, "overrides.mode.choices"),
        ({"overrides": {"fast": {"lo": 1}}}, "overrides.fast.lo"),
    ],
)
def test_rules(patch, field):
    err = error_of(minimal(**patch))
    assert err.field == field, (err.field, str(err))


def test_missing_required_fields():
    err = error_of({})
    assert [e["field"] for e in err.errors] == ["job_id", "strategy", "symbols"]
    assert all(e["reason"] == "Field required" for e in err.errors)


def test_override_forms_stay_plain_dicts():
    job = parse_job(
        minimal(
            overrides={
                "fast": {"low": 5},
                "slow": {"High": 200, "Step": 5},
                "mode": {"Value": "long_flat"},
                "kind": {"choices": ["a", 2, True]},
            }
        )
    )
    assert job.overrides == {
        "fast": {"low": 5},
        "slow": {"high": 200, "step": 5},
        "mode": {"value": "long_flat"},
        "kind": {"choices": ["a", 2, True]},
    }
    assert json.loads(job.to_json())["overrides"] == job.overrides


def test_job_is_immutable():
    job = parse_job(minimal())
    with pytest.raises(ValidationError):
        job.strategy = "other"  # type: ignore[misc]
    assert isinstance(job, OptimizationJob)


def test_extract_job_id_from_bad_messages():
    assert extract_job_id(json.dumps({"JobId": JOB_ID, "Symbols": 5})) == uuid.UUID(JOB_ID)
    assert extract_job_id(b"not json") is None
    assert extract_job_id({"job_id": "garbage"}) is None
    assert extract_job_id("[]") is None

"""JSON Schemas for the .NET side: the example jobs and emitted messages validate against them."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from ludus.cli.app import app
from ludus.contracts import JobResult, ProgressEvent, parse_job
from ludus.contracts.schema import json_schemas
from ludus.errors import InputError

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "trials" / "jobs").glob("*.json"))


@pytest.fixture(scope="module")
def schemas():
    return json_schemas()


def validator(schema):
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_three_valid_schemas(schemas):
    assert set(schemas) == {"job", "progress", "result"}
    for schema in schemas.values():
        validator(schema)
        assert schema["$schema"].endswith("2020-12/schema")


def test_examples_exist_and_cover_the_modes():
    names = {p.name for p in EXAMPLES}
    assert {"cpo_spx_demo.json", "static_sma_cross_goog.json", "multi_rsi_reversion.json"} <= names
    jobs = [parse_job(p.read_bytes()) for p in EXAMPLES]
    assert {j.mode for j in jobs} == {"cpo", "static"}
    assert any(len(j.symbols) > 1 for j in jobs)
    demo = parse_job((REPO / "trials/jobs/cpo_spx_demo.json").read_bytes())
    assert demo.symbols == ["SPX"] and demo.conditions_from == ["VIX", "IXIC"]
    assert demo.candidates <= 64 and demo.search.trials <= 8 and demo.validation.folds == 3


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_job_validates_against_model_and_schema(path, schemas):
    raw = json.loads(path.read_text())
    job = parse_job(raw)
    v = validator(schemas["job"])
    v.validate(raw)  # the form Conductor sends (PascalCase or snake_case)
    v.validate(json.loads(job.to_json()))  # and the canonical form Ludus stores


def test_schema_rejects_what_the_parser_rejects(schemas):
    v = validator(schemas["job"])
    good = {"JobId": str(uuid.uuid4()), "StrategyName": "sma_cross", "Symbols": ["SPX"]}
    v.validate(good)
    for bad in (
        {k: val for k, val in good.items() if k != "StrategyName"},  # required field missing
        good | {"Cadidates": 5},  # typo
        good | {"Search": {"Trials": 0}},
        good | {"Symbols": []},
        good | {"Mode": "grid"},
        good | {"LookbackPeriod": 10},
    ):
        assert not v.is_valid(bad), bad
        with pytest.raises(InputError):
            parse_job(bad)


def test_emitted_messages_validate(schemas):
    event = ProgressEvent(job_id=uuid.uuid4(), phase="search", step=1, total=8, best_value=0.3)
    validator(schemas["progress"]).validate(json.loads(event.to_json()))
    result = JobResult.rejected(None, ValueError("boom"))
    validator(schemas["result"]).validate(json.loads(result.to_json()))
    assert not validator(schemas["progress"]).is_valid({"job_id": str(uuid.uuid4()), "phase": "dreaming"})


def test_cli_prints_and_writes(tmp_path):
    runner = CliRunner()
    res = runner.invoke(app, ["schema", "--kind", "job"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["title"] == "OptimizationJob"
    res = runner.invoke(app, ["schema", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["job.schema.json", "progress.schema.json", "result.schema.json"]
    assert json.loads((tmp_path / "result.schema.json").read_text())["title"] == "JobResult"
    res = runner.invoke(app, ["schema", "--kind", "jobs"])
    assert res.exit_code == 2


def test_a_decision_result_validates_and_the_schema_names_the_outcomes(schemas):
    from ludus.constants import CHALLENGER_ARMS, DECISIONS
    from ludus.contracts.results import ArmResult, ChampionInfo, ConfigurationCount, SymbolResult, WindowInfo

    defs = schemas["result"]["$defs"]
    assert defs["SymbolResult"]["properties"]["decision"]["anyOf"][0]["enum"] == list(DECISIONS)
    assert set(CHALLENGER_ARMS) <= set(defs["ArmResult"]["properties"]["name"]["enum"])
    sym = SymbolResult(
        symbol="SPX",
        parameters={"fast": 10},
        published=True,
        reason="kept: ...",
        decision="kept",
        arm="defaults",
        champion=ChampionInfo(arm="defaults", source="defaults", parameters={"fast": 10}),
        arms=[
            ArmResult(name="defaults", role="champion", sharpe=0.7, window_sharpes=[0.5, float("nan")]),
            ArmResult(
                name="cpo",
                role="challenger",
                sharpe=0.9,
                delta_sharpe=0.2,
                delta_se=0.3,
                z=0.67,
                seed_sharpes=[0.8, 1.0, 0.9],
            ),
        ],
        z_threshold=3.1,
        configurations=ConfigurationCount(candidates=64, model_trials=8, baseline_trials=64, challengers=5, jobs=1),
        windows=[WindowInfo(start="2018-01-02", end="2018-06-29", bars=124)],
        oos_bars=124,
        stale_sessions=0,
    )
    result = JobResult(
        job_id=uuid.uuid4(), status="succeeded", strategy="sma_cross", interval="1d", mode="cpo", symbols=[sym]
    )
    data = json.loads(result.to_json())
    validator(schemas["result"]).validate(data)
    assert data["symbols"][0]["decision"] == "kept" and data["symbols"][0]["arms"][0]["window_sharpes"][1] is None
    bad = json.loads(result.to_json())
    bad["symbols"][0]["decision"] = "maybe"
    assert not validator(schemas["result"]).is_valid(bad)

"""`ludus optimize`, `ludus recommend` and `ludus show-job` as a user runs them: real subprocesses, a real
SQLite database with the sample data, small jobs on the in-process executor (--no-ray)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

from ludus.db.engine import make_engine
from ludus.db.schema import jobs, model_versions, optimized_parameters
from ludus.stores.parameters import read_active
from tests.helpers import cli, databases

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A migrated SQLite database with the sample data (what `ludus db upgrade` + `data load-sample` do)."""
    return databases.migrate_and_load_sample(f"sqlite:///{tmp_path / 'cli.db'}")


ludus = cli.subprocess_run


def small_job(**extra) -> dict:
    body = {
        "job_id": str(uuid.uuid4()),
        "strategy": "sma_cross",
        "symbols": ["SPX"],
        "lookback": {"bars": 900},
        "candidates": 16,
        "search": {"trials": 2, "seed": 1, "baseline_trials": 8, "seeds": 1},
        "validation": {"folds": 2, "embargo_bars": 2, "holdout_bars": 150, "windows": 2},
        "conditions_from": ["VIX"],
    }
    body.update(extra)
    return body


def written(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        out = tuple(
            conn.execute(sa.select(sa.func.count()).select_from(t)).scalar_one()
            for t in (optimized_parameters, model_versions, jobs)
        )
    engine.dispose()
    return out


def test_optimize_then_recommend_and_show_job(url: str, tmp_path: Path) -> None:
    body = small_job()
    path = tmp_path / "job.json"
    path.write_text(json.dumps(body))

    done = ludus(url, "optimize", str(path), "--no-ray")

    assert done.returncode == 0, done.stderr
    engine = make_engine(url)
    with engine.connect() as conn:
        row = read_active(conn, "sma_cross", "SPX", "1d")
    engine.dispose()
    assert row is not None and row.job_id == body["job_id"]
    params = ", ".join(f"{k}={v}" for k, v in row.parameters.items())
    out = done.stdout
    for fragment in (
        "sma_cross SPX 1d (cpo)",
        f"{row.decision} ({row.arm})",
        "published",
        params,
        "champion",
        "configurations",
        "z needed",
        "SPX: arms out of sample",
        "ΔSharpe ± SE",
        "θ switches/yr",
        "policy_gradient",
        "ensemble *",
        "model version",
        str(row.valid_for),
        "evaluation",
        "label throughput",
        f"job {body['job_id']}: succeeded",
    ):
        assert fragment in out, fragment

    shown = ludus(url, "recommend", "--strategy", "sma_cross", "--symbol", "SPX", "--interval", "1d")

    assert shown.returncode == 0, shown.stderr
    assert params in shown.stdout and str(row.valid_for) in shown.stdout and body["job_id"] in shown.stdout
    if row.model_version is None:  # the CPO policy is not live: no model to re-score
        assert "no active CPO model" in shown.stdout
    else:
        assert f"model version {row.model_version} re-scored" in shown.stdout

    record = ludus(url, "show-job", body["job_id"], "--json")
    assert record.returncode == 0, record.stderr
    stored = json.loads(record.stdout)
    assert stored["status"] == "succeeded" and stored["result"]["symbols"][0]["parameters"] == row.parameters
    assert stored["result"]["symbols"][0]["decision"] in ("changed", "kept")


def test_optimize_reads_stdin_and_prints_json(url: str) -> None:
    body = small_job(mode="static", search={"trials": 4, "seed": 2}, lookback={"bars": 600})

    done = ludus(url, "optimize", "-", "--no-ray", "--json", stdin=json.dumps(body))

    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["job_id"] == body["job_id"] and result["status"] == "succeeded" and result["mode"] == "static"
    assert result["symbols"][0]["decision"] is None  # a static search decides nothing
    assert result["symbols"][0]["published"] and result["symbols"][0]["model_version"] is None
    assert written(url) == (1, 0, 1)
    # everything ran in this process: torch on the cores the process owns, no more
    assert result["timings"]["torch_threads"] == len(os.sched_getaffinity(0))


def test_no_ray_pins_torch_to_the_cores_the_process_owns() -> None:
    """Under an affinity of one core, torch gets one thread (not the machine's core count)."""
    code = (
        "import os, torch; from ludus.cpo.threads import pin_torch_threads; "
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); torch.set_num_threads(8); "
        "print(pin_torch_threads(), torch.get_num_threads())"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "1"]


def test_optimize_json_carries_the_decision_for_a_nightly_script(url: str) -> None:
    body = small_job(challengers={"arms": ["best_fixed", "rolling"]})

    done = ludus(url, "optimize", "-", "--no-ray", "--json", stdin=json.dumps(body))

    assert done.returncode == 0, done.stderr
    sym = json.loads(done.stdout)["symbols"][0]
    assert sym["decision"] in ("changed", "kept") and sym["reason"].startswith(sym["decision"] + ": ")
    assert sym["arm"] in ("defaults", "best_fixed", "rolling") and sym["champion"]["arm"] == "defaults"
    assert [a["name"] for a in sym["arms"]] == ["defaults", "best_fixed", "rolling"]
    for arm in sym["arms"][1:]:
        assert {"sharpe", "delta_sharpe", "delta_se", "z", "window_sharpes", "turnover", "switches_per_year"} <= set(
            arm
        ) and len(arm["window_sharpes"]) == 2
    assert sym["configurations"]["candidates"] == 16 and sym["z_threshold"] > 1.645


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"search": {"trials": -3}}, ("search.trials", "-3")),
        ({"strategy": "no_such_strategy"}, ("strategy", "no_such_strategy", "unknown strategy")),
        ({"symbols": ["NOPE"]}, ("symbol", "NOPE", "no price table")),
        ({"lookback": {"bars": 99999}}, ("lookback.bars", "99999")),
    ],
)
def test_bad_job_exits_2_with_one_line_and_writes_nothing(url: str, tmp_path: Path, change, fragments) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(small_job(**change)))

    done = ludus(url, "optimize", str(path), "--no-ray")

    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in done.stderr, done.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert written(url) == (0, 0, 0)


def test_missing_file_and_nothing_published(url: str) -> None:
    missing = ludus(url, "optimize", "no-such-job.json", "--no-ray")
    assert missing.returncode == 2 and "no-such-job.json" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1

    nothing = ludus(url, "recommend", "--strategy", "sma_cross", "--symbol", "SPX")
    assert nothing.returncode == 2 and "nothing published yet" in nothing.stderr

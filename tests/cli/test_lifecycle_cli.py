"""`ludus jobs`, `ludus models`, `ludus params history`, `ludus recommend --json` as a user runs them: real
subprocesses on a SQLite database where two real CPO jobs ran (`ludus optimize --no-ray`)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import uuid
from datetime import datetime
from pathlib import Path

import pytest

from tests.helpers import cli, databases

REPO = Path(__file__).resolve().parents[2]
JOB_IDS = ("3b5c0c2e-6a4f-4d3e-9f1a-1c2b3d4e5f60", "3b5c0c2e-6a4f-4d3e-9f1a-1c2b3d4e5f61")


ludus = cli.subprocess_run


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sample data and two finished CPO jobs of sma_cross on SPX (two model versions), built once."""

    path = tmp_path_factory.mktemp("lifecycle") / "life.db"
    url = databases.migrate_and_load_sample(f"sqlite:///{path}")
    for seed, job_id in enumerate(JOB_IDS, start=1):
        body = {
            "job_id": job_id,
            "strategy": "sma_cross",
            "symbols": ["SPX"],
            "lookback": {"bars": 900},
            "candidates": 16,
            "search": {"trials": 2, "seed": seed},
            "conditions_from": ["VIX"],
            "validation": {"folds": 2, "embargo_bars": 2, "holdout_bars": 150},
        }
        ok(ludus(url, "optimize", "-", "--no-ray", "--json", stdin=json.dumps(body)))
    return path


@pytest.fixture
def url(template: Path, tmp_path: Path) -> str:
    """This test's own copy of the template database."""
    from ludus.db.engine import prices_sidecar_path

    dest = tmp_path / "life.db"
    shutil.copyfile(template, dest)
    shutil.copyfile(prices_sidecar_path(str(template)), prices_sidecar_path(str(dest)))
    return f"sqlite:///{dest}"


def versions(url: str) -> dict[str, int]:
    listed = json.loads(ok(ludus(url, "models", "list", "--json")))
    return {v["job_id"]: v["version"] for v in listed}


def test_jobs_list_filters_and_show_reports_creation_start_and_attempts(url: str) -> None:
    listed = json.loads(ok(ludus(url, "jobs", "list", "--strategy", "sma_cross", "--symbol", "SPX", "--json")))
    assert [j["job_id"] for j in listed] == list(reversed(JOB_IDS))  # newest first
    assert all(j["status"] == "succeeded" and j["attempts"] == 1 for j in listed)
    assert json.loads(ok(ludus(url, "jobs", "list", "--status", "failed", "--json"))) == []
    assert json.loads(ok(ludus(url, "jobs", "list", "--symbol", "GOOG", "--json"))) == []
    assert len(json.loads(ok(ludus(url, "jobs", "list", "--since", "1h", "--json")))) == 2
    assert json.loads(ok(ludus(url, "jobs", "list", "--since", "2999-01-01", "--json"))) == []
    bad = ludus(url, "jobs", "list", "--status", "done")
    assert bad.returncode == 2 and bad.stderr.startswith("error: status=done: must be one of accepted")

    shown = json.loads(ok(ludus(url, "jobs", "show", JOB_IDS[0], "--json")))
    created, started, finished = (datetime.fromisoformat(shown[k]) for k in ("created_at", "started_at", "finished_at"))
    assert created == started < finished  # created when the run began, not when it ended
    assert (finished - created).total_seconds() >= shown["result"]["timings"]["total"] * 0.99
    assert shown["attempts"] == 1
    text = ok(ludus(url, "show-job", JOB_IDS[0]))
    assert f"job {JOB_IDS[0]}: succeeded (1 attempt(s); created" in text and "started 20" in text


def test_activate_v1_then_v2_roll_back_and_recommend_and_the_row_follow(url: str) -> None:
    from ludus.db.engine import make_engine
    from ludus.stores.parameters import read_active

    v = versions(url)
    v1, v2 = v[JOB_IDS[0]], v[JOB_IDS[1]]
    published = []
    for version, reason in ((v1, "first try"), (v2, "second try")):
        out = ok(ludus(url, "models", "activate", str(version), "--reason", reason, "--by", "alice"))
        assert f"-> {version} (by alice: {reason})" in out
        published.append(json.loads(ok(ludus(url, "recommend", "-s", "sma_cross", "--symbol", "SPX", "--json"))))
    out = ok(ludus(url, "models", "rollback", "-s", "sma_cross", "--symbol", "SPX", "--reason", "v2 misbehaves"))
    assert f"rollback: sma_cross SPX 1d version {v2} -> {v1}" in out
    after = json.loads(ok(ludus(url, "recommend", "-s", "sma_cross", "--symbol", "SPX", "--json")))

    for doc, version in ((published[0], v1), (published[1], v2), (after, v1)):
        assert doc["published"]["model_version"] == version and doc["model"]["version"] == version
        # what is published is the active model's best candidate on the latest conditions
        assert doc["published"]["parameters"] == doc["model"]["candidates"][0]["parameters"]
    assert after["published"]["parameters"] == published[0]["published"]["parameters"]
    engine = make_engine(url)
    with engine.connect() as conn:  # what Constellations reads
        row = read_active(conn, "sma_cross", "SPX", "1d")
    engine.dispose()
    assert row.model_version == v1 and row.parameters == published[0]["published"]["parameters"]
    assert row.baseline_parameters is not None

    history = json.loads(ok(ludus(url, "params", "history", "-s", "sma_cross", "--symbol", "SPX", "--json")))
    assert [(c["action"], c["from_version"], c["to_version"]) for c in history["changes"]] == [
        ("rollback", v2, v1),
        ("activate", v1, v2),
        ("activate", None, v1),
    ]
    assert [c["reason"] for c in history["changes"]] == ["v2 misbehaves", "second try", "first try"]
    assert {d["job_id"] for d in history["decisions"]} == set(JOB_IDS)
    assert all(d["dsr"] is not None and d["improvement"] is not None for d in history["decisions"])
    text = ok(ludus(url, "params", "history", "-s", "sma_cross", "--symbol", "SPX"))
    assert "activations and rollbacks" in text and "v2 misbehaves" in text

    listed = json.loads(ok(ludus(url, "models", "list", "--json")))
    assert {x["version"]: x["status"] for x in listed} == {v1: "active", v2: "retired"}


def test_export_writes_the_onnx_model_onnxruntime_loads(url: str, tmp_path: Path) -> None:
    import numpy as np
    import onnxruntime as ort

    v1 = versions(url)[JOB_IDS[0]]
    out = tmp_path / "models" / "v1.onnx"
    text = ok(ludus(url, "models", "export", str(v1), "--out", str(out), "--card"))
    data = out.read_bytes()
    assert hashlib.sha256(data).hexdigest() in text
    card = json.loads(out.with_suffix(".json").read_text())
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    theta = np.asarray(card["metrics"]["theta"], dtype=np.float32)
    n_features = len(card["metrics"]["conditions"])
    # the inputs: conditions [K, F], θ [K, D], each candidate's current and previous position [K, 2]
    inputs = {
        "conditions": np.zeros((theta.shape[0], n_features), np.float32),
        "theta": theta,
        "positions": np.zeros((theta.shape[0], len(card["metrics"]["position_inputs"])), np.float32),
    }
    feeds = {i.name: inputs[i.name] for i in session.get_inputs()}
    scores = session.run(None, feeds)[0]
    assert np.asarray(scores).reshape(-1).shape[0] == theta.shape[0] and np.isfinite(scores).all()
    unwritable = ludus(url, "models", "export", str(v1), "--out", "/proc/nope/v1.onnx")
    assert unwritable.returncode == 2 and unwritable.stderr.startswith("error: out=/proc/nope/v1.onnx: cannot write")
    missing = ludus(url, "models", "export", "999")
    assert missing.returncode == 2 and "model_version=999: no such model version" in missing.stderr


def test_prune_never_touches_the_live_version_or_what_a_row_names(url: str) -> None:
    from ludus.search.storage import ludus_studies

    v = versions(url)
    v1, v2 = v[JOB_IDS[0]], v[JOB_IDS[1]]
    ok(ludus(url, "models", "activate", str(v1), "--reason", "keep"))
    dry = json.loads(
        ok(
            ludus(
                url,
                "models",
                "prune",
                "--older-than-days",
                "0",
                "--studies-older-than-days",
                "0",
                "--dry-run",
                "--json",
            )
        )
    )
    assert dry["model_versions"] == [v2] and versions(url) == v  # a dry run deletes nothing
    ok(ludus(url, "models", "prune", "--older-than-days", "0", "--studies-older-than-days", "0"))
    assert versions(url) == {JOB_IDS[0]: v1}
    studies = {s.name for s in ludus_studies(url)}
    # the live row was published by job 1 (through v1): its studies stay; job 2's are gone
    assert studies and all(JOB_IDS[0] in name for name in studies)
    assert set(dry["studies"]) and all(JOB_IDS[1] in name for name in dry["studies"])
    kept = ok(ludus(url, "models", "prune", "--older-than-days", "0"))
    assert "deleted 0 model version(s)" in kept


@pytest.mark.postgres
def test_a_database_without_tables_gets_an_actionable_error(postgres_url: str, tmp_path: Path) -> None:
    job = tmp_path / "job.json"
    job.write_text(json.dumps({"job_id": str(uuid.uuid4()), "strategy": "sma_cross", "symbols": ["SPX"]}))
    for args in (
        ("show-job", JOB_IDS[0]),
        ("recommend", "-s", "sma_cross", "--symbol", "SPX"),
        ("jobs", "list"),
        ("models", "list"),
        ("optimize", str(job), "--no-ray"),
    ):
        done = ludus(postgres_url, *args)
        assert done.returncode == 2, (args, done.stdout, done.stderr)
        assert (
            done.stderr.startswith("error: database_url=postgresql+psycopg://")
            and "run `ludus db upgrade`" in done.stderr
        ), done.stderr
        assert "SELECT" not in done.stderr and "sqlalche.me" not in done.stderr
    from ludus.db.migrate import current

    assert current(postgres_url) is None  # nothing was created behind the user's back

"""run_job in CPO mode end to end on a real database: a market whose best parameters depend on the regime gets
an active CPO model; a market without any dependence gets its model refused and the baseline published."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

from pipeline_helpers import (
    REPO,
    SMALL_MODEL_SPACE,
    Events,
    counts,
    settings_for,
    synthetic_job,
    write_synthetic_market,
)

from ludus.contracts.job import parse_job
from ludus.db.engine import make_engine
from ludus.pipeline import run_job
from ludus.search.trial import InProcessExecutor
from ludus.stores import models
from ludus.stores.parameters import read_active


def _run(url: str, body: dict, events: Events | None = None):
    engine = make_engine(url)
    try:
        with InProcessExecutor() as executor:
            return run_job(parse_job(body), engine=engine, settings=settings_for(url), progress=events or Events(),
                           executor=executor, model_space=SMALL_MODEL_SPACE)
    finally:
        engine.dispose()


def test_regime_dependence_gets_an_active_model_and_its_recommendation_published(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'syn.db'}"
    write_synthetic_market(url, dependence=True)
    body = synthetic_job()
    events = Events()

    result = _run(url, body, events)

    (sym,) = result.symbols
    assert result.status == "succeeded" and sym.published
    # the gate's verdict, and the numbers it was decided on
    assert sym.expected_return is not None, sym.reason
    assert sym.reason.startswith("CPO model active"), sym.reason
    assert sym.improvement >= body["gate"]["min_improvement"]
    assert sym.dsr >= 0.95
    assert sym.holdout.cpo.sharpe > max(sym.holdout.baseline.sharpe, sym.holdout.defaults.sharpe)
    assert 2 <= sym.parameters["period"] <= 5 and sym.parameters["mode"] == "long_short"
    # events: every phase in order, one terminal event at the end
    phases = events.phases
    assert phases[0] == "accepted" and phases[-1] == "succeeded" and "failed" not in phases
    order = ["loading_data", "conditions", "labels", "search", "gate", "training", "exporting", "persisted"]
    assert [p for p in dict.fromkeys(phases) if p in order] == order
    assert all(e.job_id == result.job_id for e in events.events)

    engine = make_engine(url)
    with engine.connect() as conn:
        row = read_active(conn, "rsi_reversion", "SYN", "1d")
        active = models.active(conn, "rsi_reversion", "SYN", "1d")
    assert row is not None and row.valid_for == sym.valid_for and row.job_id == body["job_id"]
    assert row.parameters == sym.parameters
    assert math.isclose(row.expected_metric, sym.expected_return, rel_tol=1e-6)
    assert active is not None and str(active.id) == sym.model_version == str(row.model_version)
    assert active.onnx and active.metrics["trained_on"] == "all bars"

    # the stored version is self-contained: re-scored from the price store it recommends what was published
    from ludus.cli.optimize import rescore

    scored = rescore(engine, settings_for(url), "rsi_reversion", "SYN", "1d")
    engine.dispose()
    best, value = scored["ranking"][0]
    assert best == sym.parameters
    assert math.isclose(value, sym.expected_return, rel_tol=1e-4, abs_tol=1e-7)
    assert len(scored["ranking"]) == active.metrics["candidates"]

    # and the CLI shows the same: published row plus the re-scored candidates
    env = {**os.environ, "LUDUS_DATABASE_URL": url, "LUDUS_DEVICE": "cpu", "COLUMNS": "200"}
    shown = subprocess.run([sys.executable, "-m", "ludus.cli.app", "recommend", "--strategy", "rsi_reversion",
                            "--symbol", "syn", "--top", "3"], cwd=REPO, env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert shown.returncode == 0, shown.stderr
    assert f"model version {active.id} re-scored" in shown.stdout
    assert f"period={sym.parameters['period']}" in shown.stdout and "*" in shown.stdout


def test_no_dependence_refuses_the_model_and_publishes_the_baseline(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'flat.db'}"
    write_synthetic_market(url, dependence=False)
    body = synthetic_job()

    result = _run(url, body)

    (sym,) = result.symbols
    assert result.status == "succeeded" and sym.published
    assert "CPO model not active" in sym.reason, sym.reason
    assert sym.expected_return is None
    assert sym.parameters == sym.baseline_parameters
    assert not (sym.improvement >= body["gate"]["min_improvement"] and sym.dsr >= 0.95)
    engine = make_engine(url)
    with engine.connect() as conn:
        row = read_active(conn, "rsi_reversion", "SYN", "1d")
        versions = models.list_versions(conn, "rsi_reversion", "SYN", "1d")
        active = models.active(conn, "rsi_reversion", "SYN", "1d")
    engine.dispose()
    # the baseline is what Constellations trades; the refused model stays a candidate (never active)
    assert row is not None and row.parameters == sym.baseline_parameters and row.model_version is None
    assert row.expected_metric is None
    assert active is None
    assert [v.status for v in versions] == [models.CANDIDATE] and str(versions[0].id) == sym.model_version
    assert counts(url)["parameters"] == 1

"""run_job in CPO mode end to end on a real database: a market whose best parameters depend on the regime gets
the CPO policy published (changed) with an active model that `ludus recommend` re-scores; a market without any
dependence keeps the champion (the defaults, not the in-sample optimum)."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import uuid
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
from ludus.stores import evidence, models
from ludus.stores.parameters import read_active


def _run(url: str, body: dict, events: Events | None = None):
    engine = make_engine(url)
    try:
        with InProcessExecutor() as executor:
            return run_job(
                parse_job(body),
                engine=engine,
                settings=settings_for(url),
                progress=events or Events(),
                executor=executor,
                model_space=SMALL_MODEL_SPACE,
            )
    finally:
        engine.dispose()


def test_regime_dependence_changes_to_the_cpo_policy_and_its_model_is_live(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'syn.db'}"
    write_synthetic_market(url, dependence=True, phi=0.5)
    body = synthetic_job(challengers={"arms": ["cpo"]})
    events = Events()

    result = _run(url, body, events)

    (sym,) = result.symbols
    assert result.status == "succeeded" and sym.published
    assert sym.decision == "changed" and sym.arm == "cpo", sym.reason
    assert sym.reason.startswith("changed: CPO policy earned Sharpe"), sym.reason
    champion, cpo = sym.arms
    assert champion.name == "defaults" and champion.role == "champion" and cpo.role == "challenger"
    assert cpo.passed and cpo.z >= sym.z_threshold and cpo.delta_sharpe >= body["gate"]["min_improvement"]
    assert len(cpo.seed_sharpes) == 3 and len(cpo.window_sharpes) == 3 and cpo.switches_per_year > 0
    # the numbers behind the decision: 32 candidates, the model trials, the baseline's own budget, 1 challenger
    c = sym.configurations
    assert (c.candidates, c.model_trials, c.baseline_trials, c.challengers, c.jobs) == (32, 3, 16, 1, 1)
    assert sym.dsr >= 0.95 and sym.expected_return is not None
    assert 2 <= sym.parameters["period"] <= 5 and sym.parameters["mode"] == "long_short"
    phases = events.phases
    assert phases[0] == "accepted" and phases[-1] == "succeeded" and "failed" not in phases
    order = ["loading_data", "conditions", "labels", "gate", "search", "training", "exporting", "persisted"]
    assert [p for p in dict.fromkeys(phases) if p in order] == order

    engine = make_engine(url)
    with engine.connect() as conn:
        row = read_active(conn, "rsi_reversion", "SYN", "1d")
        active = models.active(conn, "rsi_reversion", "SYN", "1d")
        stored = evidence.load(conn, body["job_id"], "SYN")
    assert row is not None and row.valid_for == sym.valid_for and row.job_id == body["job_id"]
    assert (row.arm, row.decision, row.evidence_bars) == ("cpo", "changed", sym.oos_bars)
    assert row.parameters == sym.parameters
    assert math.isclose(row.expected_metric, sym.expected_return, rel_tol=1e-6)
    assert active is not None and str(active.id) == sym.model_version == str(row.model_version)
    assert active.metrics["trained_on"] == "every usable bar" and active.metrics["seeds"] == [3, 4, 5]
    assert active.metrics["position_inputs"] == ["current", "previous"]
    # the per-arm out-of-sample evidence, retrievable by (job id, symbol): what a report plots
    assert stored is not None and stored.decision == "changed" and stored.chosen_arm == "cpo"
    assert len(stored.timestamps) == sym.oos_bars and [a.name for a in stored.arms] == ["defaults", "cpo"]
    cpo_path = stored.arms[1]
    assert len(cpo_path.returns) == len(cpo_path.positions) == len(cpo_path.choices) == sym.oos_bars
    assert {c for c in cpo_path.choices} <= set(range(len(stored.candidates)))
    assert [w.stop - w.start for w in stored.windows] == [w.bars for w in sym.windows]

    # the stored version is self-contained: re-scored from the price store it recommends what was published
    from ludus.cli.optimize import rescore

    scored = rescore(engine, settings_for(url), "rsi_reversion", "SYN", "1d", held=sym.champion.parameters)
    engine.dispose()
    best, value = scored["ranking"][0]
    assert scored["version"] == active.id and best == sym.parameters
    assert math.isclose(value, sym.expected_return, rel_tol=1e-4, abs_tol=1e-7)
    assert len(scored["ranking"]) == len(active.metrics["candidates"])

    # and the CLI shows the same: published row plus the re-scored candidates
    env = {**os.environ, "LUDUS_DATABASE_URL": url, "LUDUS_DEVICE": "cpu", "COLUMNS": "200"}
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "ludus.cli.app",
            "recommend",
            "--strategy",
            "rsi_reversion",
            "--symbol",
            "syn",
            "--top",
            "3",
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert shown.returncode == 0, shown.stderr
    assert f"model version {active.id} re-scored" in shown.stdout and "changed (cpo)" in shown.stdout
    assert f"period={sym.parameters['period']}" in shown.stdout and "*" in shown.stdout

    # the next job finds the CPO policy live: it is the champion now, refitted and judged like the rest
    nxt = _run(url, synthetic_job(job_id=str(uuid.uuid4()), challengers={"arms": ["defaults"]}))
    (s2,) = nxt.symbols
    assert s2.champion.arm == "cpo" and s2.champion.job_id == body["job_id"]
    assert [a.name for a in s2.arms] == ["cpo", "defaults"] and s2.configurations.jobs == 2


def test_no_dependence_keeps_the_defaults_and_never_publishes_the_in_sample_optimum(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'flat.db'}"
    write_synthetic_market(url, dependence=False)
    body = synthetic_job()

    result = _run(url, body)

    (sym,) = result.symbols
    assert result.status == "succeeded" and sym.published
    assert sym.decision == "kept" and sym.arm == "defaults", sym.reason
    assert sym.reason.startswith("kept: strategy defaults (champion) earned Sharpe"), sym.reason
    assert sym.parameters == sym.default_parameters != sym.baseline_parameters
    assert sym.expected_return is None and not any(a.passed for a in sym.arms)
    engine = make_engine(url)
    with engine.connect() as conn:
        row = read_active(conn, "rsi_reversion", "SYN", "1d")
        versions = models.list_versions(conn, "rsi_reversion", "SYN", "1d")
        active = models.active(conn, "rsi_reversion", "SYN", "1d")
    engine.dispose()
    # the champion is what Constellations trades; the refused model stays a candidate (never active)
    assert row is not None and row.parameters == sym.default_parameters and row.model_version is None
    assert (row.arm, row.decision) == ("defaults", "kept") and row.expected_metric is None
    assert active is None
    assert [v.status for v in versions] == [models.CANDIDATE] and str(versions[0].id) == sym.model_version
    assert versions[0].metrics["trained_on"].startswith("decision rows before ")
    assert counts(url)["parameters"] == 1

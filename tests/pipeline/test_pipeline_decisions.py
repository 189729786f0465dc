"""The three ways the old gate published the wrong row, reproduced on the sample data and fixed; the ledger
counting every job on a key; stale data; the trading calendar behind valid_for."""

from __future__ import annotations

import json
import uuid
from datetime import date

from pipeline_helpers import REPO, SMALL_MODEL_SPACE, Events, counts, settings_for, spx_job

from ludus.contracts.job import parse_job
from ludus.db.engine import make_engine
from ludus.pipeline import run_job
from ludus.search.trial import InProcessExecutor
from ludus.stores import ledger
from ludus.stores.parameters import history, read_active


def _run(url: str, body: dict):
    engine = make_engine(url)
    try:
        return run_job(
            parse_job(body),
            engine=engine,
            settings=settings_for(url),
            progress=Events(),
            executor=InProcessExecutor(),
            model_space=SMALL_MODEL_SPACE,
        )
    finally:
        engine.dispose()


def test_defaults_better_than_the_in_sample_optimum_are_kept(sample_sqlite: str) -> None:
    """trials/jobs/multi_rsi_reversion.json on SPX: the old gate published the unconditional θ (holdout Sharpe
    0.04) although the defaults did 0.69 on the same bars. Now the defaults are the champion and stay unless a
    challenger beats them by z standard errors."""
    body = json.loads((REPO / "trials/jobs/multi_rsi_reversion.json").read_text())
    body.update(
        {
            "JobId": str(uuid.uuid4()),
            "Symbols": ["SPX"],
            "Candidates": 16,
            "Deadline": None,
            "Search": {"Trials": 2, "Sampler": "random", "Seed": 3, "BaselineTrials": 16, "Seeds": 2},
            "Validation": {"Folds": 2, "EmbargoBars": 5, "Windows": 2},
        }
    )

    (sym,) = _run(sample_sqlite, body).symbols

    arms = {a.name: a for a in sym.arms}
    print(f"\n{sym.reason}")
    assert sym.champion.arm == "defaults" and arms["defaults"].role == "champion"
    assert not any(a.passed for a in sym.arms)
    assert sym.decision == "kept" and sym.arm == "defaults" and sym.published, sym.reason
    assert sym.parameters == sym.default_parameters != sym.baseline_parameters
    # the VIX starts in 2014: every arm learns from the same, shorter history, and the result says so
    assert "VIX starts later than SPX: every arm learns from" in sym.reason
    assert sym.history_start >= date(2014, 3, 1)
    engine = make_engine(sample_sqlite)
    with engine.connect() as conn:
        row = read_active(conn, "rsi_reversion", "SPX", "1d")
    engine.dispose()
    assert row.parameters == sym.default_parameters and (row.arm, row.decision) == ("defaults", "kept")


def _fast(holdout: int, **extra) -> dict:
    """sma_cross on SPX, judged against two cheap challengers (no model search)."""
    return spx_job(
        validation={"folds": 2, "embargo_bars": 5, "holdout_bars": holdout, "windows": 2},
        challengers={"arms": ["best_fixed", "rolling"]},
        **extra,
    )


def test_a_weaker_job_cannot_silently_replace_a_published_row_and_the_ledger_counts_every_job(
    sample_sqlite: str,
) -> None:
    strong = _fast(600)
    a = _run(sample_sqlite, strong).symbols[0]
    assert a.published and a.oos_bars == 600

    weak = _fast(250)
    b = _run(sample_sqlite, weak).symbols[0]
    assert b.valid_for == a.valid_for and not b.published
    assert b.reason.startswith(
        f"not published: the row for {a.valid_for} from job {strong['job_id']} rests on "
        f"600 out-of-sample bars, this decision on 250"
    ), b.reason
    engine = make_engine(sample_sqlite)
    with engine.connect() as conn:
        rows = history(conn, "sma_cross", "SPX", "1d")
    assert len(rows) == 1 and rows[0].job_id == strong["job_id"] and rows[0].evidence_bars == 600
    assert b.champion.job_id == strong["job_id"]  # the champion was the stronger job's row

    equal = _fast(600)
    c = _run(sample_sqlite, equal).symbols[0]
    assert c.published
    with engine.connect() as conn:
        rows = history(conn, "sma_cross", "SPX", "1d")
        totals = ledger.totals(conn, "sma_cross", "SPX", "1d")
    engine.dispose()
    assert len(rows) == 1 and rows[0].job_id == equal["job_id"]
    # every job's configurations count, the refused one included; the bar rises with them
    assert (a.configurations.jobs, b.configurations.jobs, c.configurations.jobs) == (1, 2, 3)
    assert c.configurations == totals and totals.candidates == 3 * 24 and totals.challengers == 3 * 2
    assert a.z_threshold < b.z_threshold < c.z_threshold

    again = _run(sample_sqlite, equal).symbols[0]  # a rerun of the same job counts once
    assert again.configurations == c.configurations and again.parameters == c.parameters


def test_a_holiday_is_never_valid_for_and_stale_data_is_flagged_or_refused(sample_sqlite: str) -> None:
    body = {
        "job_id": str(uuid.uuid4()),
        "strategy": "sma_cross",
        "symbols": ["SPX", "GOOG"],
        "mode": "static",
        "lookback": {"bars": 600},
        "search": {"trials": 4, "seed": 1},
        "exchanges": {"GOOG": "XNAS"},
    }
    spx, goog = _run(sample_sqlite, body).symbols
    # SPX ends 2018-12-31, GOOG 2013-03-01 (a Friday): New Year's Day and the weekend are skipped
    assert spx.valid_for == date(2019, 1, 2) and goog.valid_for == date(2013, 3, 4)
    for s in (spx, goog):
        assert s.published and s.stale_sessions > 1000 and "stale data flagged" in s.reason

    before = counts(sample_sqlite)
    refused = _run(
        sample_sqlite, {**body, "job_id": str(uuid.uuid4()), "publish": {"max_stale_sessions": 5, "on_stale": "refuse"}}
    )
    assert not any(s.published for s in refused.symbols)
    assert all(s.reason.startswith("static search:") and "stale data refused" in s.reason for s in refused.symbols)
    assert counts(sample_sqlite)["parameters"] == before["parameters"]


def test_a_static_search_counts_its_trials_in_the_ledger(sample_sqlite: str) -> None:
    """Plain hyperopt tries θ on the key like any search: its trials deflate every later decision there."""
    static = {
        "job_id": str(uuid.uuid4()),
        "strategy": "sma_cross",
        "symbols": ["SPX"],
        "mode": "static",
        "lookback": {"bars": 600},
        "search": {"trials": 5, "seed": 1},
    }
    (sym,) = _run(sample_sqlite, static).symbols
    assert sym.configurations is not None and sym.configurations.baseline_trials == 5
    assert sym.configurations.jobs == 1 and sym.configurations.total == 5
    engine = make_engine(sample_sqlite)
    with engine.connect() as conn:
        assert ledger.totals(conn, "sma_cross", "SPX", "1d").baseline_trials == 5
    (again,) = _run(sample_sqlite, static).symbols  # a rerun of the same job counts once
    assert again.configurations == sym.configurations

    cpo = _fast(250)
    (decided,) = _run(sample_sqlite, cpo).symbols
    with engine.connect() as conn:
        totals = ledger.totals(conn, "sma_cross", "SPX", "1d")
        mine = ledger.totals(conn, "sma_cross", "SPX", "1d", excluding_job=static["job_id"])
    engine.dispose()
    assert decided.configurations == totals and totals.jobs == 2
    assert totals.baseline_trials == mine.baseline_trials + 5 and totals.total == mine.total + 5

"""run_job on the real sample data: a CPO job on the S&P 500 (SQLite and PostgreSQL), idempotent reruns,
resumed searches, static mode, and bad jobs that must fail before writing anything."""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

import optuna
import pytest
from pipeline_helpers import SMALL_MODEL_SPACE, Events, counts, settings_for, spx_job

from ludus.contracts.job import parse_job
from ludus.data.prices import PriceStore
from ludus.db.engine import make_engine
from ludus.errors import InputError
from ludus.pipeline import PHASE_TIMINGS, run_job
from ludus.search.storage import get_storage, study_name
from ludus.search.trial import InProcessExecutor
from ludus.stores import models
from ludus.stores.parameters import history
from ludus.strategies.registry import get_strategy


class CountingExecutor(InProcessExecutor):
    """InProcessExecutor that remembers how many trials each search asked it for."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def run(self, study, trial_fn, n_trials, *args: Any, **kwargs: Any):
        self.asked.append(n_trials)
        return super().run(study, trial_fn, n_trials, *args, **kwargs)


def _run(url: str, body: dict, *, events: Events | None = None, executor=None, resume: bool = True):
    engine = make_engine(url)
    try:
        return run_job(
            parse_job(body),
            engine=engine,
            settings=settings_for(url),
            progress=events or Events(),
            executor=executor or InProcessExecutor(),
            resume=resume,
            model_space=SMALL_MODEL_SPACE,
        )
    finally:
        engine.dispose()


def _next_session(day: date) -> date:
    import exchange_calendars as xcals

    return xcals.get_calendar("XNYS").date_to_session((day + timedelta(days=1)).isoformat(), "next").date()


def _trials(url: str, job_id: str, purpose: str, symbol: str) -> list[optuna.trial.FrozenTrial]:
    study = optuna.load_study(study_name=study_name(job_id, purpose, symbol), storage=get_storage(url))
    return study.get_trials(deepcopy=False)


def test_real_spx_job_is_sane_and_a_rerun_changes_nothing(sample_db: str) -> None:
    """On SQLite and PostgreSQL: a CPO job on real S&P 500 bars, then the same job id again."""
    body = spx_job()
    result = _run(sample_db, body)

    (sym,) = result.symbols
    assert result.status == "succeeded" and sym.published and sym.symbol == "SPX"
    space = get_strategy("sma_cross").space
    assert space.validate(sym.parameters) == sym.parameters  # inside the declared space, constraints hold
    assert sym.parameters["fast"] < sym.parameters["slow"]
    for metrics in (sym.holdout.cpo, sym.holdout.baseline, sym.holdout.defaults):
        assert metrics is not None and math.isfinite(metrics.sharpe) and abs(metrics.sharpe) < 10
        assert 0.0 <= metrics.max_drawdown <= 1.0
    # nothing was published before: the defaults are the champion, every other arm is judged against them
    assert sym.champion.arm == "defaults" and sym.champion.source == "defaults"
    assert math.isclose(sym.improvement, sym.holdout.cpo.sharpe - sym.holdout.defaults.sharpe, abs_tol=1e-5)
    assert 0.0 <= sym.dsr <= sym.psr <= 1.0
    assert sym.decision in ("changed", "kept") and sym.reason.startswith(sym.decision + ": ")
    assert (sym.expected_return is not None) == (sym.arm == "cpo")
    assert sym.oos_bars == 300 and [w.bars for w in sym.windows] == [150, 150]
    assert {a.name for a in sym.arms} == {"defaults", "cpo", "best_fixed", "ensemble", "rolling", "policy_gradient"}
    engine = make_engine(sample_db)
    last_bar = PriceStore(engine).read("SPX", "1d", last_n=1).timestamps[-1].astype("datetime64[D]").item()
    assert sym.valid_for == _next_session(last_bar) == date(2019, 1, 2)  # 2019-01-01 is a holiday
    assert set(PHASE_TIMINGS) <= set(result.timings) and result.timings["total"] > 0
    assert result.timings["label_bar_evals_per_s"] > 0
    with engine.connect() as conn:
        rows = history(conn, "sma_cross", "SPX", "1d")
        versions = models.list_versions(conn, "sma_cross", "SPX", "1d")
    assert len(rows) == 1 and rows[0].parameters == sym.parameters and rows[0].job_id == body["job_id"]
    assert [str(v.id) for v in versions] == [sym.model_version]
    before = counts(sample_db)

    again = _run(sample_db, body)  # redelivery / rerun of the same job id

    (sym2,) = again.symbols
    with engine.connect() as conn:
        rows2 = history(conn, "sma_cross", "SPX", "1d")
        versions2 = models.list_versions(conn, "sma_cross", "SPX", "1d")
    engine.dispose()
    assert sym2.model_version == sym.model_version and [v.id for v in versions2] == [v.id for v in versions]
    assert len(rows2) == 1 and rows2[0].parameters == sym2.parameters == sym.parameters
    assert counts(sample_db) == before  # no twin rows, no new trials: the searches were complete


def _bad(kind: str) -> dict:
    bodies = {
        "unknown symbol": spx_job(symbols=["NOPE"]),
        "unknown condition symbol": spx_job(conditions_from=["VIX", "ZZZ"]),
        "unknown strategy": spx_job(strategy="no_such_strategy"),
        "lookback longer than the history": spx_job(lookback={"bars": 100_000}),
        "lookback too short for folds and holdout": spx_job(lookback={"start": "2018-06-01"}),
        "override outside the declared range": spx_job(overrides={"fast": {"low": 500, "high": 600}}),
        "override of an unknown parameter": spx_job(overrides={"speed": {"value": 3}}),
        "static on too few bars": spx_job(
            mode="static", lookback={"start": "2018-12-01"}, validation={"holdout_bars": 20}
        ),
    }
    return bodies[kind]


FIELDS = {
    "unknown symbol": ("symbol", "NOPE"),
    "unknown condition symbol": ("symbol", "ZZZ"),
    "unknown strategy": ("strategy", "no_such_strategy"),
    "lookback longer than the history": ("lookback.bars", "100000"),
    "lookback too short for folds and holdout": ("lookback", "147"),
    "override outside the declared range": ("overrides.fast", "500"),
    "override of an unknown parameter": ("overrides.speed", "3"),
    "static on too few bars": ("lookback", ""),
}


@pytest.mark.parametrize("kind", list(FIELDS))
def test_bad_jobs_raise_input_error_and_write_nothing(sample_sqlite: str, kind: str) -> None:
    events = Events()
    before = counts(sample_sqlite)

    with pytest.raises(InputError) as info:
        _run(sample_sqlite, _bad(kind), events=events)

    field, value = FIELDS[kind]
    assert info.value.field == field, str(info.value)
    assert value in str(info.value) and info.value.rule
    assert counts(sample_sqlite) == before == {"parameters": 0, "models": 0, "jobs": 0, "studies": 0, "trials": 0}
    assert events.phases[-1] == "failed" and "succeeded" not in events.phases


def test_resume_runs_only_the_missing_trials(sample_sqlite: str) -> None:
    body = spx_job(search={"trials": 2, "seed": 5, "baseline_trials": 4, "seeds": 1})
    first = CountingExecutor()
    _run(sample_sqlite, body, executor=first)
    assert first.asked == [2]
    # a crash mid-search leaves a RUNNING trial behind: it must not count as done
    study = optuna.load_study(study_name=study_name(body["job_id"], "model", "SPX"), storage=get_storage(sample_sqlite))
    study.ask()

    body["search"]["trials"] = 4  # the same job, asked for 4 trials: 2 are finished already
    events = Events()
    second = CountingExecutor()
    result = _run(sample_sqlite, body, events=events, executor=second)

    assert result.status == "succeeded"
    assert second.asked == [2]
    model_trials = _trials(sample_sqlite, body["job_id"], "model", "SPX")
    states = [t.state for t in model_trials]
    assert states.count(optuna.trial.TrialState.FAIL) >= 1  # the interrupted one, marked failed
    assert sum(1 for t in model_trials if not t.user_attrs.get("interrupted")) == 4
    assert any("2 of 4 trials already done" in e.message for e in events.events)
    baseline = [t for t in _trials(sample_sqlite, body["job_id"], "baseline", "SPX") if t.state.is_finished()]
    assert len(baseline) == 4

    fresh = CountingExecutor()
    _run(sample_sqlite, body, executor=fresh, resume=False)  # --fresh: the search starts over
    assert fresh.asked == [4]
    assert len(_trials(sample_sqlite, body["job_id"], "model", "SPX")) == 4


def test_static_mode_publishes_the_best_trial_without_a_model(sample_sqlite: str) -> None:
    body = {
        "job_id": "0b7e9c1a-2f3d-4e5f-9a8b-7c6d5e4f3a2b",
        "strategy": "sma_cross",
        "symbols": ["GOOG"],
        "lookback": {"bars": 1500},
        "mode": "static",
        "search": {"trials": 12, "seed": 11},
        "objective": "sortino",
        "cost_bps": 2.0,
        "overrides": {"fast": {"low": 5, "high": 40}, "mode": {"choices": ["long_flat"]}},
    }

    result = _run(sample_sqlite, body)

    (sym,) = result.symbols
    assert result.mode == "static" and sym.published and sym.model_version is None
    assert 5 <= sym.parameters["fast"] <= 40 and sym.parameters["mode"] == "long_flat"
    assert sym.parameters["fast"] < sym.parameters["slow"]
    assert sym.baseline_parameters == sym.parameters and sym.expected_return is None
    trials = [
        t
        for t in _trials(sample_sqlite, body["job_id"], "static", "GOOG")
        if t.state == optuna.trial.TrialState.COMPLETE
    ]
    assert len(trials) == 12
    best = max(trials, key=lambda t: t.value)
    assert (best.user_attrs.get("params") or best.params) == sym.parameters
    engine = make_engine(sample_sqlite)
    with engine.connect() as conn:
        rows = history(conn, "sma_cross", "GOOG", "1d")
        assert models.list_versions(conn, "sma_cross", "GOOG", "1d") == []
    engine.dispose()
    assert len(rows) == 1 and rows[0].parameters == sym.parameters and rows[0].model_version is None
    assert rows[0].valid_for == sym.valid_for

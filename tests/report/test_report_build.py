"""The report's data, built from what a real job stored: the numbers are the stored ones, the recomputed
curves reproduce the job's own holdout and search figures, and the job's bars are found again after the price
store grew."""

from __future__ import annotations

import math
import re

import numpy as np
import optuna
import pytest
from report_helpers import stored_numbers

from ludus.config import Settings
from ludus.data.bars import Bars
from ludus.data.prices import PriceStore
from ludus.db.engine import make_engine
from ludus.errors import InputError
from ludus.report import report_for_job
from ludus.report.build import flatten_numbers, study_section
from ludus.report.document import CURVE_BUY_AND_HOLD, CURVE_PUBLISHED, Report
from ludus.report.heatmap import heatmap_grid
from ludus.report.records import StudyRecord, UnknownJobError
from ludus.report.render import render_html


def _report(url: str, job_id: str, **kw) -> Report:
    engine = make_engine(url)
    try:
        return report_for_job(engine, Settings(database_url=url, device="cpu"), job_id, **kw)
    finally:
        engine.dispose()


def _metric(panel, curve: str, key: str) -> float:
    (c,) = [c for c in panel.curves if c.name == curve]
    (n,) = [n for n in c.metrics if n.key.endswith(key)]
    return n.value


def test_cpo_report_carries_every_stored_number_and_reproduces_the_holdout(jobs_db) -> None:
    stored = jobs_db["cpo"]["result"]
    (sym,) = stored["symbols"]
    report = _report(jobs_db["url"], stored["job_id"])

    (s,) = report.symbols
    assert report.job.status == "succeeded" and s.problems == []
    # every number of the stored result, exactly, and nothing else (parameter sets are shown as such)
    params = ("parameters", "baseline_parameters", "default_parameters")
    expected = {k: v for k, v in stored_numbers(sym).items() if k.split(".")[0] not in params}
    assert len(expected) > 20, sym
    assert {n.key: n.value for n in s.decision.numbers.rows} == expected
    assert s.decision.reason == sym["reason"]
    assert [s.decision.parameters, s.decision.baseline_parameters, s.decision.default_parameters] == [
        sym[k] for k in params
    ]
    assert s.decision.valid_for == sym["valid_for"]
    # on real SPX the champion (the θ the static job published before) is kept; recomputed on the job's bars
    # over the out-of-sample windows, the published θ's Sharpe is the one the decision stored (same bars, same
    # positions, same cost)
    assert sym["decision"] == "kept" and sym["arm"] == "published", sym["reason"]
    assert sym["parameters"] == jobs_db["static"]["result"]["symbols"][0]["parameters"] != sym["default_parameters"]
    champion = next(a for a in sym["arms"] if a["name"] == sym["arm"])
    assert _metric(s.equity, CURVE_PUBLISHED, "holdout.sharpe") == pytest.approx(champion["sharpe"], rel=1e-5)
    (window,) = s.equity.windows
    assert window.label == f"holdout ({sym['oos_bars']} bars)" and window.end == s.provenance.last
    # provenance: the lookback's bars, ending before the day published for, context series beside them
    p = s.provenance
    assert p.bars == jobs_db["cpo"]["body"]["lookback"]["bars"] and p.last < p.valid_for == sym["valid_for"]
    assert [c.symbol for c in p.context] == ["VIX", "IXIC"] and all(c.bars > 0 for c in p.context)
    # the model search: both studies with their trials, the dashboard linked per study
    purposes = sorted(st.purpose for st in s.search.studies)
    assert purposes == ["baseline", "model_search"]
    search = jobs_db["cpo"]["body"]["search"]
    budget = {"model_search": search["trials"], "baseline": search["baseline_trials"]}
    assert all(st.complete + st.failed + st.pruned == budget[st.purpose] for st in s.search.studies)
    urls = [st.dashboard_url for st in s.search.studies]
    assert all(re.fullmatch(r"http://127\.0\.0\.1:8082/dashboard/studies/\d+", u) for u in urls) and len(set(urls)) == 2
    assert report.job.progress.done == report.job.progress.total == sum(budget.values())
    # the model version this job registered
    assert [m.id for m in s.models if m.job_id == stored["job_id"]] == [int(sym["model_version"])]


def test_static_report_recomputes_the_searched_sharpe(jobs_db) -> None:
    stored = jobs_db["static"]["result"]
    (sym,) = stored["symbols"]
    report = _report(jobs_db["url"], stored["job_id"])
    (s,) = report.symbols
    (study,) = s.search.studies
    assert study.complete == jobs_db["static"]["body"]["search"]["trials"]
    assert study.best_params == sym["parameters"]
    # the study scored θ by its Sharpe over every bar (float32 engine); the report backtests it in float64
    assert _metric(s.equity, CURVE_PUBLISHED, "all.sharpe") == pytest.approx(study.best_value, abs=2e-4)
    assert [w.label for w in s.equity.windows] == ["searched (in-sample)"]
    # a static result has no holdout, improvement or DSR: the configurations its search added to the key's
    # ledger (every θ it tried counts for a later decision there) and how stale the sample data is
    numbers = {n.key: n.value for n in s.decision.numbers.rows}
    assert set(numbers) == {f"configurations.{k}" for k in sym["configurations"]} | {"stale_sessions"}
    assert numbers["configurations.baseline_trials"] == jobs_db["static"]["body"]["search"]["trials"]
    assert numbers["configurations.candidates"] == numbers["configurations.model_trials"] == 0
    # importances were computed (PED-ANOVA) over the parameters that varied
    assert study.importances and set(study.importances) <= set(sym["parameters"])


def test_buy_and_hold_matches_an_independent_computation(jobs_db) -> None:
    body = jobs_db["static"]["body"]
    report = _report(jobs_db["url"], body["job_id"])
    (s,) = report.symbols
    engine = make_engine(jobs_db["url"])
    bars = PriceStore(engine).read("SPX", "1d", end=s.provenance.last + " 23:59:59", last_n=s.provenance.bars)
    engine.dispose()
    cost = body["cost_bps"] * 1e-4
    r = bars.close[1:] / bars.close[:-1] - 1.0
    net = np.r_[-cost, r]
    sharpe = net.mean() / net.std() * math.sqrt(252)
    total = (1 - cost) * bars.close[-1] / bars.close[0] - 1
    assert _metric(s.equity, CURVE_BUY_AND_HOLD, "all.sharpe") == pytest.approx(sharpe, rel=1e-9)
    assert _metric(s.equity, CURVE_BUY_AND_HOLD, "all.total_return") == pytest.approx(total, rel=1e-9)
    equity = next(c for c in s.equity.curves if c.name == CURVE_BUY_AND_HOLD).equity
    assert equity[-1] == pytest.approx(1 + total, abs=1e-6)


def test_the_jobs_bars_are_found_again_after_the_store_grew(jobs_db, tmp_path) -> None:
    import sqlite3

    from ludus.db.engine import prices_sidecar_path

    src = jobs_db["url"].removeprefix("sqlite:///")
    dst = str(tmp_path / "grown.db")
    for a, b in ((src, dst), (prices_sidecar_path(src), prices_sidecar_path(dst))):
        with sqlite3.connect(a) as source, sqlite3.connect(b) as target:
            source.backup(target)  # a consistent copy, whatever the journal holds
    url = f"sqlite:///{dst}"
    before = _report(url, jobs_db["cpo"]["result"]["job_id"])
    engine = make_engine(url)
    store = PriceStore(engine)
    last = store.read("SPX", "1d", last_n=1)
    # 30 new sessions after the job ran
    days = np.arange(np.datetime64("2019-01-02"), np.datetime64("2019-03-01"), dtype="datetime64[D]")
    days = days[np.is_busday(days)][:30].astype("datetime64[ns]")
    close = last.close[-1] * np.cumprod(1 + 0.01 * np.sin(np.arange(len(days))))
    store.write(Bars("SPX", "1d", days, close, close * 1.01, close * 0.99, close, np.full(len(days), 1e9)))
    engine.dispose()
    after = _report(url, jobs_db["cpo"]["result"]["job_id"])
    b, a = before.symbols[0], after.symbols[0]
    assert (a.provenance.first, a.provenance.last, a.provenance.bars) == (
        b.provenance.first,
        b.provenance.last,
        b.provenance.bars,
    )
    assert a.equity.curves == b.equity.curves
    assert a.arms == b.arms and a.problems == b.problems == []  # buy-and-hold on the same out-of-sample bars


def test_report_json_round_trips_and_renders_the_same(jobs_db) -> None:
    report = _report(jobs_db["url"], jobs_db["cpo"]["result"]["job_id"])
    again = Report.from_json(report.to_json())
    assert again == report
    assert render_html(again, plotly_src="plotly.js") == render_html(report, plotly_src="plotly.js")


def test_unknown_job_and_symbol_are_input_errors(jobs_db) -> None:
    with pytest.raises(UnknownJobError, match="job_id=00000000-0000-0000-0000-000000000000: no such job"):
        _report(jobs_db["url"], "00000000-0000-0000-0000-000000000000")
    with pytest.raises(InputError, match=r"symbol=GOOG: job .* ran SPX"):
        _report(jobs_db["url"], jobs_db["cpo"]["result"]["job_id"], symbol="GOOG")
    with pytest.raises(InputError, match="job_id=nope: must be a UUID"):
        _report(jobs_db["url"], "nope")


def test_flatten_numbers_keeps_numbers_and_skips_text_lists_and_nulls() -> None:
    numbers = flatten_numbers({"a": 1, "b": {"c": 2.5, "d": None, "e": "x", "f": [1, 2]}, "g": True})
    assert [(n.key, n.value) for n in numbers] == [("a", 1), ("b.c", 2.5)]


def test_importances_rank_the_parameter_that_decides() -> None:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    rng = np.random.default_rng(0)
    study.optimize(
        lambda t: (
            10 * t.suggest_float("matters", 0, 1)
            + 0.01 * t.suggest_float("noise", 0, 1)
            + 0.001 * rng.standard_normal()
        ),
        n_trials=40,
    )
    record = StudyRecord(
        name="s", study_id=1, symbol="SPX", purpose="model", direction="maximize", user_attrs={}, trials=study.trials
    )
    section = study_section(record)
    assert section.complete == 40 and section.best_value == pytest.approx(study.best_value)
    assert section.importances["matters"] > section.importances.get("noise", 0.0)


def test_heatmap_takes_the_best_over_the_other_parameters() -> None:
    sets = [
        {"fast": 5, "slow": 20, "mode": "a"},
        {"fast": 5, "slow": 20, "mode": "b"},
        {"fast": 10, "slow": 20, "mode": "a"},
        {"fast": 5, "slow": 40, "mode": "a"},
    ]
    grid = heatmap_grid(sets, [0.1, 0.3, -0.2, 0.5], "fast", "slow", "sharpe")
    assert grid.x == [5, 10] and grid.y == [20, 40] and grid.sets_per_cell == 2
    assert grid.z == [[0.3, -0.2], [0.5, None]]
    low = heatmap_grid(sets, [0.1, 0.3, -0.2, 0.5], "fast", "slow", "max_drawdown", lower_is_better=True)
    assert low.z[0][0] == 0.1

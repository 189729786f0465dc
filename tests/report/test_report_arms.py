"""The champion/challenger section of a report, for a real CPO job on the SPX sample whose decision compared
every arm: in headless Chromium every block and plot is there and every number the rule used is the stored
one; built without a browser, the recomputed parts (buy-and-hold, θ switches, costs, per-window standard
errors, the history each arm learned from, the calendar) agree with independent computations on the job's
bars."""

from __future__ import annotations

import json
import math
from itertools import pairwise
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pytest
from report_helpers import BrowserPage

from ludus.config import Settings
from ludus.constants import ARM_CPO, ARM_PUBLISHED, ARM_ROLLING, ARMS, POLICY_ARMS
from ludus.contracts.evidence import DecisionEvidence
from ludus.cpo.bootstrap import sharpe_difference
from ludus.data.bars import Bars
from ludus.data.prices import PriceStore
from ludus.db.engine import make_engine
from ludus.report import report_for_job, write_report
from ludus.report.arms import (
    BLOCK_BY_VOLATILITY,
    BLOCK_BY_YEAR,
    BLOCK_COST_BY_YEAR,
    BLOCK_COSTS,
    BLOCK_DELTA,
    BLOCK_EQUITY,
    BLOCK_LEARNED,
    BLOCK_RULE,
    BLOCK_THETA,
    BLOCK_VERDICT,
    BLOCK_WINDOWS,
    arm_label,
    arms_section,
    theta_per_bar,
)
from ludus.report.document import (
    CURVE_BUY_AND_HOLD,
    PLOT_BREAKDOWN,
    PLOT_DRAWDOWN,
    PLOT_EQUITY,
    PLOT_LINES,
    Report,
)
from ludus.report.render import format_number
from ludus.stores import evidence as evidence_store
from ludus.stores import ledger

BPY = 252.0
# the plots of each block of the section, in page order
SECTION_PLOTS = {
    BLOCK_VERDICT: [],
    BLOCK_RULE: [],
    BLOCK_EQUITY: [PLOT_EQUITY, PLOT_DRAWDOWN],
    BLOCK_WINDOWS: [PLOT_BREAKDOWN],
    BLOCK_DELTA: [PLOT_BREAKDOWN],
    BLOCK_THETA: [PLOT_LINES],
    BLOCK_COSTS: [],
    BLOCK_COST_BY_YEAR: [PLOT_BREAKDOWN],
    BLOCK_BY_YEAR: [PLOT_BREAKDOWN],
    BLOCK_BY_VOLATILITY: [PLOT_BREAKDOWN],
    BLOCK_LEARNED: [],
}


@pytest.fixture(scope="module")
def cpo(jobs_db) -> dict:
    """The CPO job's stored result for SPX, its stored evidence, its report and the job's bars."""
    result = jobs_db["cpo"]["result"]
    engine = make_engine(jobs_db["url"])
    try:
        with engine.connect() as conn:
            ev = evidence_store.load(conn, result["job_id"], "SPX")
            totals = ledger.totals(conn, "sma_cross", "SPX", "1d")
        report = report_for_job(engine, Settings(database_url=jobs_db["url"], device="cpu"), result["job_id"])
        (p,) = [s.provenance for s in report.symbols]
        bars = PriceStore(engine).read("SPX", "1d", end=p.last + " 23:59:59", last_n=p.bars)
    finally:
        engine.dispose()
    assert ev is not None
    (sym,) = result["symbols"]
    return {
        "result": result,
        "sym": sym,
        "evidence": ev,
        "report": report,
        "bars": bars,
        "ledger": totals,
        "body": jobs_db["cpo"]["body"],
    }


def _blocks(report: Report) -> dict:
    (s,) = report.symbols
    return {b.key: b for b in s.arms}


def test_the_section_in_chromium_shows_every_arm_and_the_stored_numbers(cpo, chromium, tmp_path: Path) -> None:
    sym, ev = cpo["sym"], cpo["evidence"]
    html_path, _ = write_report(cpo["report"], tmp_path)
    page = BrowserPage(chromium)
    page.page.goto(html_path.as_uri())
    page.page.wait_for_load_state("load")
    page.page.locator('div.arms[data-symbol="SPX"]').screenshot(path=str(tmp_path / "report-arms.png"))
    page.page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
    assert page.errors == [] and page.blocked == []
    assert (tmp_path / "report-arms.png").stat().st_size > 100_000

    # every block in order, each with its plots drawn, one trace per arm (and buy-and-hold where it belongs)
    blocks = page.page.eval_on_selector_all(
        'div.arms[data-symbol="SPX"] div.block',
        """els => els.map(e => ({
        key: e.dataset.block, plots: [...e.querySelectorAll('div.plot')].map(d => ({kind: d.dataset.plot,
        drawn: !!d.querySelector('.js-plotly-plot .main-svg'),
        traces: d.querySelector('.js-plotly-plot').data.length}))}))""",
    )
    assert [b["key"] for b in blocks] == list(SECTION_PLOTS)
    n_arms = len(ARMS)
    assert [a.name for a in ev.arms] == [ARM_PUBLISHED, *[a for a in ARMS if a != ARM_PUBLISHED]]
    traces = {
        BLOCK_EQUITY: n_arms + 1,
        BLOCK_WINDOWS: n_arms,
        BLOCK_DELTA: n_arms - 1,
        BLOCK_COST_BY_YEAR: n_arms,
        BLOCK_BY_YEAR: n_arms + 1,
        BLOCK_BY_VOLATILITY: n_arms + 1,
    }
    for b in blocks:
        assert [p["kind"] for p in b["plots"]] == SECTION_PLOTS[b["key"]], b
        assert all(p["drawn"] for p in b["plots"]), b
        if b["key"] in traces:
            assert all(p["traces"] == traces[b["key"]] for p in b["plots"]), b

    numbers = {n["key"]: n for n in page.numbers('div.arms[data-symbol="SPX"]')}

    def shown(key: str):
        value = json.loads(numbers[key]["value"])
        assert numbers[key]["text"] == format_number(value)
        return value

    # each arm's Sharpe, ΔSharpe, SE and z: the stored result's, which are the stored evidence's
    for arm in sym["arms"]:
        name = arm["name"]
        stored = next(a for a in ev.arms if a.name == name)
        assert shown(f"arms.{name}.sharpe") == arm["sharpe"] == stored.sharpe
        if arm["role"] == "champion":
            assert name == sym["champion"]["arm"] == ev.champion == ARM_PUBLISHED
            assert f"arms.{name}.delta_sharpe" not in numbers and arm["delta_sharpe"] is None
            continue
        assert shown(f"arms.{name}.delta_sharpe") == arm["delta_sharpe"] == stored.delta_sharpe
        assert shown(f"arms.{name}.delta_se") == arm["delta_se"] == stored.delta_se
        assert shown(f"arms.{name}.z") == arm["z"] == stored.z
        assert shown(f"arms.{name}.sharpe") == shown(f"oos.{name}.sharpe")  # the equity panel's table
    # the deflated threshold and the configurations behind it (the ledger's count, this job included)
    assert shown("decision.z_threshold") == sym["z_threshold"] == ev.z_threshold
    total = sum(
        ev.configurations.model_dump()[k] for k in ("candidates", "model_trials", "baseline_trials", "challengers")
    )
    assert shown("decision.configurations.total") == total == cpo["ledger"].total
    assert f"{total:,} configurations tried on this key" in sym["reason"]
    for k, v in sym["configurations"].items():
        assert shown(f"decision.configurations.{k}") == v
    # changed / kept, in the section and in the decision card; the day the row is for
    verdict = page.page.get_attribute('div.arms[data-symbol="SPX"] [data-key="arms.decision"]', "data-value")
    card = page.page.get_attribute('div.symbol[data-symbol="SPX"] section.decision [data-key="decision"]', "data-value")
    assert json.loads(verdict) == json.loads(card) == sym["decision"] == ev.decision == "kept"
    chosen = page.page.get_attribute('div.arms[data-symbol="SPX"] [data-key="arms.chosen"]', "data-value")
    assert json.loads(chosen) == sym["arm"] == ev.chosen_arm
    for where in ('section.decision [data-key="valid_for"]', 'section.provenance [data-key="provenance.valid_for"]'):
        value = page.page.get_attribute(f'div.symbol[data-symbol="SPX"] {where}', "data-value")
        assert json.loads(value) == sym["valid_for"]
    # the reason sentence, once at the top of the symbol
    assert page.page.text_content('div.symbol[data-symbol="SPX"] p.reason') == sym["reason"]
    # the evaluation windows are marked on the equity plot: one shaded band per stored window
    shapes = page.page.evaluate("""() => document.querySelector(
        'div.block[data-block="arms.equity"] div.plot[data-plot="equity"] .js-plotly-plot').layout.shapes
        .filter(s => s.type === 'rect').map(s => [s.x0, s.x1])""")
    assert shapes == [[w["start"], w["end"]] for w in sym["windows"]]
    page.close()


def test_equity_and_buy_and_hold_on_the_decisions_bars(cpo) -> None:
    sym, ev, bars = cpo["sym"], cpo["evidence"], cpo["bars"]
    panel = _blocks(cpo["report"])[BLOCK_EQUITY]
    assert [c.name for c in panel.curves] == [arm_label(a.name, a.role) for a in ev.arms] + [CURVE_BUY_AND_HOLD]
    assert len(panel.timestamps) == sym["oos_bars"] == len(ev.timestamps)
    by_name = {a["name"]: a for a in sym["arms"]}
    for a, curve in zip(ev.arms, panel.curves[:-1], strict=True):  # the last curve: buy and hold
        # the equity of each stored path ends where its stored total return says
        assert curve.equity[-1] - 1 == pytest.approx(by_name[a.name]["total_return"], abs=2e-5)
        assert min(curve.drawdown) == pytest.approx(-by_name[a.name]["max_drawdown"], abs=2e-5)
    # buy-and-hold, independently: long at every out-of-sample decision from flat, earning the next close
    days = np.asarray(bars.timestamps).astype("datetime64[D]")
    idx = np.searchsorted(days, np.array([t.date() for t in ev.timestamps], dtype="datetime64[D]"))
    r = bars.close[idx + 1] / bars.close[idx] - 1.0
    r[0] -= ev.cost_bps * 1e-4
    bh = panel.curves[-1]
    (sharpe,) = [n.value for n in bh.metrics if n.key == "oos.buy_and_hold.sharpe"]
    assert sharpe == pytest.approx(r.mean() / r.std() * math.sqrt(BPY), rel=1e-9)
    assert bh.equity[-1] == pytest.approx(np.prod(1 + r), abs=1e-6)
    # the windows marked are the stored windows
    assert [(w.start, w.end) for w in panel.windows] == [(w["start"], w["end"]) for w in sym["windows"]]


def test_deltas_per_window_and_overall(cpo) -> None:
    sym, ev = cpo["sym"], cpo["evidence"]
    b = _blocks(cpo["report"])[BLOCK_DELTA]
    champion = ev.champion
    challengers = [a for a in ev.arms if a.name != champion]
    assert list(b.values) == [arm_label(a.name) for a in challengers]
    assert len(b.periods) == len(ev.windows) + 1 and b.periods[-1] == "all windows"
    stored = {a["name"]: a for a in sym["arms"]}
    for a in challengers:
        values, errors = b.values[arm_label(a.name)], b.errors[arm_label(a.name)]
        # overall: the rule's own numbers
        assert (values[-1], errors[-1]) == (stored[a.name]["delta_sharpe"], stored[a.name]["delta_se"])
        for i, w in enumerate(ev.windows):
            assert values[i] == w.sharpes[a.name] - w.sharpes[champion]
            assert errors[i] > 0
    # the report runs the rule's bootstrap: on the whole path it gives back the stored standard errors
    nets = {a.name: np.asarray(a.returns) for a in ev.arms}
    again = sharpe_difference(
        np.stack([nets[a.name] for a in challengers]),
        nets[champion],
        bars_per_year=BPY,
        samples=ev.bootstrap_samples,
        seed=cpo["body"]["search"]["seed"],
    )
    assert again.block_length == pytest.approx(ev.block_length)
    assert again.se == pytest.approx([a.delta_se for a in challengers], rel=1e-3)


def test_what_cpo_chose_and_what_it_cost(cpo) -> None:
    sym, ev = cpo["sym"], cpo["evidence"]
    blocks = _blocks(cpo["report"])
    chart = blocks[BLOCK_THETA]
    cpo_arm = next(a for a in ev.arms if a.name == ARM_CPO)
    thetas = theta_per_bar(ev, cpo_arm)
    assert all(t in ev.candidates for t in thetas)  # CPO holds a candidate at every bar
    switches = sum(1 for x, y in pairwise(thetas) if x != y)
    stored = {a["name"]: a for a in sym["arms"]}
    # the stored switches per year are these switches over the out-of-sample years
    assert switches == round(stored[ARM_CPO]["switches_per_year"] * len(thetas) / BPY)
    assert f"({switches} θ switches over {len(thetas)} bars)" in chart.title
    params = list(ev.candidates[0])
    assert [r.title for r in chart.rows] == [*params, "position"]
    for row, p in zip(chart.rows[:-1], params, strict=True):  # the last row: the position
        assert row.series[0].values == [t[p] for t in thetas]
    assert chart.rows[-1].series[0].values == pytest.approx(cpo_arm.positions)

    costs = {r.label: r.cells for r in blocks[BLOCK_COSTS].rows}
    for a in ev.arms:
        cells = {c.key.split(".")[-1]: c.value for c in costs[arm_label(a.name, a.role)] if c is not None}
        assert cells["turnover"] == stored[a.name]["turnover"]
        # cost drag per year: cost x |position moved|, which is cost x the stored turnover
        assert cells["cost_drag"] == pytest.approx(ev.cost_bps * stored[a.name]["turnover"], rel=1e-5)
        moved = np.abs(np.diff(np.r_[0.0, a.positions]))
        gross = np.asarray(a.returns) + ev.cost_bps * 1e-4 * moved
        assert cells["gross_sharpe"] == pytest.approx(gross.mean() / gross.std() * math.sqrt(BPY), rel=1e-9)
        assert cells["gross_sharpe"] >= cells["sharpe"] - 1e-6  # costs only ever take away
    # per calendar year, the costs add up to the whole path's
    by_year = blocks[BLOCK_COST_BY_YEAR]
    years = len(ev.timestamps) / BPY
    for a in ev.arms:
        total = sum(v for v in by_year.values[arm_label(a.name, a.role)] if v is not None)
        assert total / years == pytest.approx(ev.cost_bps * stored[a.name]["turnover"], rel=1e-4)


def test_sharpe_per_year_and_regime_cover_every_out_of_sample_bar(cpo) -> None:
    ev = cpo["evidence"]
    blocks = _blocks(cpo["report"])
    year, vol = blocks[BLOCK_BY_YEAR], blocks[BLOCK_BY_VOLATILITY]
    names = [arm_label(a.name, a.role) for a in ev.arms] + [CURVE_BUY_AND_HOLD]
    assert list(year.values) == names == list(vol.values)
    assert sum(year.bars) == len(ev.timestamps) == sum(vol.bars)  # 300 bars: all past the 21-bar warm-up
    assert year.periods == sorted({str(t.year) for t in ev.timestamps})
    assert len(vol.periods) == 3 and max(vol.bars) - min(vol.bars) <= 1  # terciles


def test_history_each_arm_learned_from_per_origin(cpo) -> None:
    sym, ev, bars, body = cpo["sym"], cpo["evidence"], cpo["bars"], cpo["body"]
    learned = _blocks(cpo["report"])[BLOCK_LEARNED]
    days = np.asarray(bars.timestamps).astype("datetime64[D]")
    first = int(np.searchsorted(days, np.datetime64(sym["history_start"])))
    embargo = body["validation"]["embargo_bars"]
    rows = {r.label: r.cells for r in learned.rows}
    for i, w in enumerate(sym["windows"]):
        origin = int(np.searchsorted(days, np.datetime64(w["start"])))
        for a in ev.arms:
            cell = rows[arm_label(a.name, a.role)][i]
            if a.name in (ARM_CPO, "best_fixed", "policy_gradient"):
                # every decision row from the first usable one up to the origin minus the embargo
                assert cell.value == origin - embargo - first
                assert cell.detail == f"{sym['history_start']} .. {days[origin - embargo - 1]}"
            elif a.name == ARM_ROLLING:
                assert cell.value == round(BPY)  # the trailing year (challengers.rolling_window_bars)
            else:
                assert a.name not in POLICY_ARMS and cell.value == 0 and cell.detail == "nothing: a fixed rule"


def test_provenance_has_the_real_calendar_the_context_lag_and_the_stale_flag(cpo) -> None:
    sym, bars = cpo["sym"], cpo["bars"]
    (s,) = cpo["report"].symbols
    p = s.provenance
    check = p.calendar_check
    cal = xcals.get_calendar("XNYS", start="2013-01-01", end="2019-12-31")
    sessions = cal.sessions_in_range(p.first, p.last)
    days = set(np.asarray(bars.timestamps).astype("datetime64[D]").astype(str))
    assert (check.exchange, check.timezone, check.sessions) == ("XNYS", "America/New_York", len(sessions))
    assert check.missing_count == len({str(d.date()) for d in sessions} - days)
    # 2018-12-31 was the last bar; 2019-01-01 a holiday: the row is for 2019-01-02
    assert (p.last, check.next_session, check.skipped_days, p.valid_for) == (
        "2018-12-31",
        "2019-01-02",
        ["2019-01-01"],
        sym["valid_for"],
    )
    # the sample's VIX and NASDAQ carry dates only, like the S&P 500: nothing proves they were known at the
    # decision, so the pipeline lagged both one bar
    assert {c.symbol: c.lag_bars for c in p.context} == {"VIX": 1, "IXIC": 1}
    assert p.history_start == sym["history_start"]
    # the sample ends in 2018: stale, flagged (published all the same), as the reason says
    assert (p.stale_sessions, p.stale, p.on_stale) == (sym["stale_sessions"], True, "flag")
    assert sym["published"] and "stale data flagged" in sym["reason"]


def test_seed_spread_is_the_stored_seeds(cpo) -> None:
    sym = cpo["sym"]
    (s,) = cpo["report"].symbols
    spread = s.search.seed_spread
    arm = next(a for a in sym["arms"] if a["name"] == ARM_CPO)
    seeds = [cpo["body"]["search"]["seed"] + i for i in range(cpo["body"]["search"]["seeds"])]
    assert {n.key: n.value for n in spread.rows if n.key.startswith("seeds.") and n.key.endswith(".sharpe")} == {
        f"seeds.{seed}.sharpe": v for seed, v in zip(seeds, arm["seed_sharpes"], strict=True)
    }
    (width,) = [n.value for n in spread.rows if n.key == "seeds.spread"]
    assert width == max(arm["seed_sharpes"]) - min(arm["seed_sharpes"]) > 0


def test_older_evidence_and_rewritten_bars_are_said_not_hidden(cpo) -> None:
    ev, sym, bars = cpo["evidence"], cpo["sym"], cpo["bars"]
    # evidence stored before the training spans were recorded still loads and renders
    raw = ev.to_dict()
    for w in raw["windows"]:
        del w["learned"]
    old = DecisionEvidence.model_validate(raw)
    section = arms_section(old, sym, bars, cpo["body"], BPY)
    (learned,) = [b for b in section.blocks if b.key == BLOCK_LEARNED]
    assert section.problems == [] and "predates" in learned.note
    assert all(c is None for r in learned.rows for c in r.cells)
    # a price history rewritten since the job ran: the paths no longer replay, buy-and-hold is left out
    close = np.array(bars.close, dtype=np.float64)
    day = np.datetime64(sym["windows"][-1]["start"], "D")
    at = int(np.searchsorted(np.asarray(bars.timestamps).astype("datetime64[D]"), day))
    close[at + 1 :] *= 1.02
    changed = Bars(bars.symbol, bars.interval, bars.timestamps, bars.open, bars.high, bars.low, close, bars.volume)
    section = arms_section(ev, sym, changed, cpo["body"], BPY)
    assert len(section.problems) == 1 and "do not reproduce the stored paths" in section.problems[0]
    (panel,) = [b for b in section.blocks if b.key == BLOCK_EQUITY]
    assert CURVE_BUY_AND_HOLD not in [c.name for c in panel.curves]
    assert BLOCK_BY_VOLATILITY not in [b.key for b in section.blocks]
    # without the bars the stored evidence is shown all the same
    section = arms_section(ev, sym, None, cpo["body"], BPY)
    assert [b.key for b in section.blocks] == [k for k in SECTION_PLOTS if k != BLOCK_BY_VOLATILITY]

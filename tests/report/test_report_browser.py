"""`ludus report` for a real job, opened in headless Chromium with the network cut off: the page loads without
an error, every plot is drawn, and every number it prints is the job's stored number."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from report_helpers import BrowserPage, stored_numbers

from ludus.config import get_settings
from ludus.report.document import (
    CURVE_PUBLISHED,
    PLOT_BREAKDOWN,
    PLOT_DRAWDOWN,
    PLOT_EQUITY,
    PLOT_HISTORY,
    PLOT_IMPORTANCE,
    PLOT_LINES,
)
from ludus.report.render import format_number
from tests.helpers import cli


@pytest.fixture
def ludus_cli(jobs_db, monkeypatch, capsys):
    """Run ``ludus ARGS...`` in-process against the jobs database; returns (exit code, stdout, stderr)."""
    yield cli.in_process(monkeypatch, capsys, jobs_db["url"])
    get_settings.cache_clear()


def _lookup(data: dict, dotted: str):
    for part in dotted.split("."):
        data = data[part]
    return data


def test_cpo_report_in_chromium_shows_the_stored_result(jobs_db, ludus_cli, chromium, tmp_path: Path) -> None:
    stored = jobs_db["cpo"]["result"]
    (sym,) = stored["symbols"]
    code, out, err = ludus_cli("report", stored["job_id"], "--out", str(tmp_path / "reports"))
    assert code == 0, err
    html_path = tmp_path / "reports" / f"{stored['job_id']}.html"
    data = json.loads((tmp_path / "reports" / f"{stored['job_id']}.json").read_text())
    assert f"wrote {html_path}" in out and data["job"]["job_id"] == stored["job_id"]

    page = BrowserPage(chromium)
    page.page.goto(html_path.as_uri())
    page.page.wait_for_load_state("load")
    page.page.screenshot(path=str(tmp_path / "report.png"), full_page=True)

    assert page.errors == [] and page.blocked == []  # self-contained: nothing fetched, nothing failed
    plots = page.plots()
    kinds = [p["kind"] for p in plots]
    # the champion/challenger section (8 plots, tests/report/test_report_arms.py looks at them one by one);
    # then the published θ's equity and drawdown vs buy-and-hold, per-year and per-volatility Sharpe, two
    # studies' history and importances (model search and baseline)
    arms = [
        PLOT_EQUITY,
        PLOT_DRAWDOWN,
        PLOT_BREAKDOWN,
        PLOT_BREAKDOWN,
        PLOT_LINES,
        PLOT_BREAKDOWN,
        PLOT_BREAKDOWN,
        PLOT_BREAKDOWN,
    ]
    assert sorted(kinds) == sorted(
        [
            *arms,
            PLOT_EQUITY,
            PLOT_DRAWDOWN,
            PLOT_BREAKDOWN,
            PLOT_BREAKDOWN,
            PLOT_HISTORY,
            PLOT_HISTORY,
            PLOT_IMPORTANCE,
            PLOT_IMPORTANCE,
        ]
    )
    assert all(p["drawn"] and p["traces"] > 0 and p["symbol"] == "SPX" for p in plots), plots
    assert (tmp_path / "report.png").stat().st_size > 50_000

    # the decision as stored: the reason sentence, and each number of the result, exact in data-value and
    # printed as format_number prints it
    reason = page.page.text_content('div.symbol[data-symbol="SPX"] p.reason')
    assert reason == sym["reason"]
    params = ("parameters", "baseline_parameters", "default_parameters")
    expected = {k: v for k, v in stored_numbers(sym).items() if k.split(".")[0] not in params}
    shown = {n["key"]: n for n in page.numbers('div.symbol[data-symbol="SPX"] section.decision')}
    assert set(shown) == set(expected)
    for key, value in expected.items():
        assert json.loads(shown[key]["value"]) == value == _lookup(sym, key)
        assert shown[key]["text"] == format_number(value)
    # the published parameters and the day they are for
    decision = page.page.text_content('div.symbol[data-symbol="SPX"] section.decision')
    assert ", ".join(f"{k}={v}" for k, v in sym["parameters"].items()) in decision
    assert sym["valid_for"] in decision
    # the out-of-sample windows the decision judged, recomputed for the published θ (the kept champion), are
    # printed equal to the stored Sharpe of that arm
    key = f"{CURVE_PUBLISHED.replace(' ', '_')}.holdout.sharpe"
    holdout = {n["key"]: n for n in page.numbers('div.symbol[data-symbol="SPX"]')}[key]
    published_arm = next(a for a in sym["arms"] if a["name"] == sym["arm"])
    assert holdout["text"] == format_number(published_arm["sharpe"])
    # the optuna-dashboard link of every study
    links = page.page.eval_on_selector_all("a.dashboard", "els => els.map(e => e.href)")
    assert len(links) == 3 and all(link.startswith("http://127.0.0.1:8082/dashboard") for link in links)
    page.close()


def test_sweep_heatmap_opens_in_chromium(jobs_db, ludus_cli, chromium, tmp_path: Path) -> None:
    target = tmp_path / "heat.html"
    code, out, err = ludus_cli(
        "sweep",
        "--strategy",
        "sma_cross",
        "--symbol",
        "SPX",
        "--start",
        "2012-01-01",
        "--samples",
        "300",
        "--seed",
        "1",
        "--plot",
        str(target),
        "--json",
    )
    assert code == 0, err
    best = json.loads(out)["top"][0]
    page = BrowserPage(chromium)
    page.page.goto(target.as_uri())
    page.page.wait_for_load_state("load")
    page.page.screenshot(path=str(tmp_path / "heatmap.png"))
    assert page.errors == [] and page.blocked == []
    (plot,) = page.plots()
    assert plot["kind"] == "heatmap" and plot["drawn"]
    # the heatmap's best cell is the sweep's best set (the other parameter maximized over)
    z = page.page.evaluate("() => document.querySelector('div.plot .js-plotly-plot').data[0].z")
    assert max(v for row in z for v in row if v is not None) == pytest.approx(best["sharpe"], rel=1e-6)
    page.close()

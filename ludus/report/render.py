"""A report (:class:`ludus.report.document.Report`) as one HTML page: Plotly figures and tables of numbers.

The page needs no network: Plotly's JavaScript is inlined once (or, in the web view, loaded from the view's
own ``/static/plotly.min.js``). Every number is printed with :func:`format_number` and carries its exact value in
``data-value`` (JSON) and its origin in ``data-key``, so a reader - or a test - can check the page against the
stored result. Every plot is a ``<div class="plot" data-plot=KIND>``.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Sequence
from typing import Any

from ludus.constants import ARM_LABELS, DECISION_CHANGED, DECISION_KEPT
from ludus.errors import LudusError
from ludus.report.document import (
    CHAMPION_SUFFIX,
    CURVE_BUY_AND_HOLD,
    PLOT_BREAKDOWN,
    PLOT_DRAWDOWN,
    PLOT_EQUITY,
    PLOT_HEATMAP,
    PLOT_HISTORY,
    PLOT_IMPORTANCE,
    PLOT_LINES,
    ArmBlock,
    Breakdown,
    EquityPanel,
    LineChart,
    Matrix,
    Number,
    Report,
    StudySection,
    SymbolReport,
    Table,
    Verdict,
)
from ludus.stores.jobs import FAILED, REJECTED, RUNNING, SUCCEEDED

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}
COLORS = ("#1f77b4", "#ff7f0e", "#d62728", "#2ca02c", "#9467bd", "#17becf", "#8c564b", "#e377c2", "#bcbd22")

STYLE = (
    """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;background:#f6f7f9}
header,main,footer{max-width:1180px;margin:0 auto;padding:0 20px}
header{padding-top:18px}
h1{font-size:1.45rem;margin:.2rem 0}h2{font-size:1.2rem;margin:1.6rem 0 .6rem;border-bottom:1px solid #d0d4da}
h3{font-size:1.02rem;margin:1.1rem 0 .4rem}
section.card{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:10px 16px 14px;margin:12px 0}
table{border-collapse:collapse;font-size:.9rem;margin:.3rem 0}
th,td{padding:3px 10px;border-bottom:1px solid #eceef1;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.muted{color:#5d6670;font-size:.88rem}.reason{font-size:1.02rem;font-weight:500}
.status{display:inline-block;padding:1px 8px;border-radius:10px;background:#e4e7eb;font-size:.85rem}
.problem{background:#fff4e5;border:1px solid #f0c36d;padding:6px 10px;border-radius:4px}
.grid2{display:grid;grid-template-columns:1fr 1fr;gap:12px}
section.card{overflow-x:auto}
.plot{min-height:320px}
code,pre{font-size:.85rem;background:#f0f2f4;padding:1px 4px;border-radius:3px}
pre{padding:8px;overflow:auto}
nav a{margin-right:14px}
.badge{display:inline-block;padding:2px 10px;border-radius:4px;font-weight:600;letter-spacing:.02em}
.badge.kept{background:#e4e7eb}.badge.changed{background:#d3f2dc}
.badge.stale{background:#fff0c2}.badge.fresh{background:#d3f2dc}.badge.static{background:#e8eaf6}
.verdict .reason{margin:.5rem 0}
table.matrix td,table.matrix th{white-space:nowrap}
.detail{display:block;color:#5d6670;font-size:.78rem}
.muted.small{font-size:.8rem}
"""
    + "".join(f".decision-tag.{d}{{font-weight:600}}" for d in (DECISION_CHANGED, DECISION_KEPT))
    + """
"""
    + "".join(
        f".status.{status}{{background:{color}}}"
        for status, color in ((SUCCEEDED, "#d3f2dc"), (FAILED, "#f8d7da"), (REJECTED, "#f8d7da"), (RUNNING, "#fff0c2"))
    )
)


class PlotlyMissingError(LudusError):
    """Plotly is not installed (it comes with the ``report`` extra)."""

    def __init__(self) -> None:
        super().__init__("plotly is not installed: the report needs the 'report' extra (pip install 'ludus[report]')")


def plotly_js() -> str:
    """Plotly's JavaScript bundle (about 4.8 MB), as shipped by the installed plotly package."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError:
        raise PlotlyMissingError() from None
    return get_plotlyjs()


def format_number(value: float | None) -> str:
    """How the page prints a number: integers as such, large values with 1 decimal, the rest with 4."""
    if value is None:
        return "–"
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return f"{int(value):,}"
    return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4f}"


# --- the page ---------------------------------------------------------------------------------------------


def render_html(report: Report, *, plotly_src: str | None = None, nav: Sequence[tuple[str, str]] = ()) -> str:
    """The report as an HTML page. ``plotly_src``: a URL for Plotly's script instead of inlining it;
    ``nav``: (label, href) links shown above the title (the web view's way back)."""
    page = _Page()
    job = report.job
    title = f"Ludus report: {job.strategy or 'job'} {job.interval or ''} — {job.job_id}"
    body = [f"<header>{_nav(nav)}<h1>{_e(title)}</h1>{_job_header(report)}</header><main>"]
    for sym in report.symbols:
        body.append(_symbol(page, sym, report))
    if not report.symbols:
        body.append('<section class="card"><p class="muted">This job names no symbol.</p></section>')
    if job.timings is not None:
        body.append(f'<h2>Timings</h2><section class="card">{_table(job.timings)}</section>')
    body.append(
        f'<h2>Job message</h2><section class="card"><details><summary>payload</summary>'
        f"<pre>{_e(json.dumps(job.payload, indent=2, default=str))}</pre></details></section>"
    )
    body.append(
        f'</main><footer><p class="muted">generated {_e(report.generated_at)} by <code>ludus report'
        f"</code>; the same data is in the JSON file beside this page.</p></footer>"
    )
    script = (
        f'<script src="{_e(plotly_src)}"></script>'
        if plotly_src
        else f"<script>{plotly_js()}</script>"
        if page.plots
        else ""
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style>{script}'
        f'</head><body data-job-id="{_e(job.job_id)}" data-status="{_e(job.status)}">'
        f"{''.join(body)}</body></html>"
    )


def _nav(nav: Sequence[tuple[str, str]]) -> str:
    return f"<nav>{''.join(f'<a href={_q(href)}>{_e(label)}</a>' for label, href in nav)}</nav>" if nav else ""


def _job_header(report: Report) -> str:
    job = report.job
    p = job.progress
    rows = [
        ("status", f'<span class="status {_e(job.status)}" id="job-status">{_e(job.status)}</span>'),
        ("mode", _e(job.mode or "–")),
        ("attempts", _e(job.attempts)),
        ("created", _e(job.created_at or "–")),
        ("started", _e(job.started_at or "–")),
        ("finished", _e(job.finished_at or "–")),
        (
            "progress",
            (
                f'<progress max="{max(p.total, 1)}" value="{p.done}"></progress> '
                f'<span id="job-progress">{p.done}/{p.total} trials</span> '
                f'<span class="muted">{_e("; ".join(p.detail))}</span>'
            ),
        ),
    ]
    if job.error:
        rows.append(("error", f'<span class="problem">{_e(job.error)}</span>'))
    if report.dashboard is not None:
        link = (
            f"<code>{_e(report.dashboard.command)}</code> then open "
            f'<a class="dashboard" href={_q(report.dashboard.url)}>{_e(report.dashboard.url)}</a>'
        )
        rows.append(("optuna-dashboard", link))
    return "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _symbol(page: _Page, sym: SymbolReport, report: Report) -> str:
    out = [f'<div class="symbol" data-symbol="{_e(sym.symbol)}"><h2 id="symbol-{_e(sym.symbol)}">{_e(sym.symbol)}</h2>']
    if sym.problems:
        out.append('<div class="problem"><ul>' + "".join(f"<li>{_e(p)}</li>" for p in sym.problems) + "</ul></div>")
    out.append(_decision(sym, report))
    out.append(f'<div class="arms" data-symbol="{_e(sym.symbol)}"><h3>Champion and challengers</h3>')
    if sym.arms:
        out.extend(_block(page, block, sym.symbol) for block in sym.arms)
    elif sym.decision is not None and sym.decision.decision is None:
        out.append(
            '<section class="card"><p class="muted">No champion/challenger decision: this job searched θ '
            "in sample (a static search).</p></section>"
        )
    else:
        out.append(
            '<section class="card"><p class="muted">This job stored no per-arm out-of-sample evidence; '
            "the decision's numbers above are all it recorded.</p></section>"
        )
    out.append("</div>")
    if sym.equity is not None:
        out.append(f"<h3>{_e(sym.equity.title)}</h3>{_equity(page, sym.equity, sym.symbol)}")
    for b in sym.breakdowns:
        out.append(f"<h3>{_e(b.title)}</h3>{_breakdown(page, b, sym.symbol)}")
    out.append(_search(page, sym))
    out.append(_provenance(sym))
    out.append(_models(sym, report.job.job_id))
    out.append("</div>")
    return "".join(out)


def _decision(sym: SymbolReport, report: Report) -> str:
    d = sym.decision
    if d is None:
        return (
            f'<section class="card decision"><p class="reason">No decision yet: the job is '
            f"{_e(report.job.status)}.</p></section>"
        )
    verdict = {True: "published", False: "not published", None: "–"}[d.published]
    rows = [("outcome", f'<b id="published-{_e(sym.symbol)}">{verdict}</b>')]
    if d.decision is not None:
        arm = ARM_LABELS.get(d.arm or "", d.arm or "–")
        rows.append(
            (
                "decision",
                (
                    f'<span class="badge {_e(d.decision)}" id="decision-{_e(sym.symbol)}" '
                    f'data-key="decision" data-value={_q(json.dumps(d.decision))}>{_e(d.decision)}'
                    f"</span> the row carries the θ of the {_e(arm)}"
                ),
            )
        )
    rows += [
        ("parameters", _params(d.parameters)),
        ("baseline θ", _params(d.baseline_parameters)),
        ("defaults", _params(d.default_parameters)),
        (
            "valid for",
            (f'<span data-key="valid_for" data-value={_q(json.dumps(d.valid_for))}>{_e(d.valid_for or "–")}</span>'),
        ),
        ("model version", _e(d.model_version or "–")),
    ]
    if d.published_row:
        rows.append(("live row", _e(d.published_row)))
    head = "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
    return (
        f'<section class="card decision"><p class="reason" data-key="reason">{_e(d.reason)}</p>{head}'
        f"<details open><summary>{_e(d.numbers.title)}</summary>{_table(d.numbers)}</details></section>"
    )


def _search(page: _Page, sym: SymbolReport) -> str:
    s = sym.search
    out = ['<h3>Model search</h3><section class="card">']
    if s.note:
        out.append(f'<p class="muted">{_e(s.note)}</p>')
    if s.seed_spread is not None:
        out.append(_table(s.seed_spread))
    for study in s.studies:
        out.append(_study(page, study, sym.symbol))
    out.append("</section>")
    return "".join(out)


def _study(page: _Page, study: StudySection, symbol: str) -> str:
    link = (
        f' — <a class="dashboard" href={_q(study.dashboard_url)}>open in optuna-dashboard</a>'
        if study.dashboard_url
        else ""
    )
    summary = (
        f"<p><b>{_e(study.purpose)}</b> <code>{_e(study.name)}</code>{link}<br>"
        f'<span class="muted">{study.complete} complete, {study.failed} failed, {study.pruned} pruned; '
        f"best value {_num(Number(key=f'{study.name}.best_value', label='best', value=study.best_value))} "
        f"with {_params(study.best_params)}</span></p>"
    )
    history = page.plot(PLOT_HISTORY, symbol, _history_figure(study)) if study.trials else ""
    if study.importances:
        importance = page.plot(PLOT_IMPORTANCE, symbol, _importance_figure(study))
    else:
        importance = f'<p class="muted">{_e(study.importance_note)}</p>'
    return f'{summary}<div class="grid2"><div>{history}</div><div>{importance}</div></div>'


def _provenance(sym: SymbolReport) -> str:
    p = sym.provenance
    if p is None:
        return ""
    context = []
    for c in p.context:
        lag = (
            ""
            if c.lag_bars is None
            else "; lagged one bar (its timestamps do not prove it was known at the decision)"
            if c.lag_bars
            else "; used at the same bar (stamped before the decision)"
        )
        limits = "; starts later than the symbol: every arm's history begins with it" if c.limits_history else ""
        context.append(
            f'<span class="context" data-symbol="{_e(c.symbol)}">{_e(c.symbol)}: {c.bars:,} bars '
            f"{_e(c.first)} .. {_e(c.last)}{_e(lag)}{_e(limits)}</span>"
        )
    rows = [
        ("bars", _num(Number(key="provenance.bars", label="bars", value=p.bars))),
        ("first bar", _e(p.first or "–")),
        ("last bar", _e(p.last or "–")),
        ("interval", _e(p.interval)),
        ("lookback", _e(json.dumps(p.lookback))),
        (
            "history learned from",
            _e(p.history_start or "–") + ' <span class="muted">(the first decision row '
            "with every condition known)</span>"
            if p.history_start
            else "–",
        ),
        ("context series", "<br>".join(context) or "none"),
        ("exchange calendar", _e(p.calendar) + _calendar(p)),
    ]
    rows.append(
        (
            "valid for",
            f'<span data-key="provenance.valid_for" data-value={_q(json.dumps(p.valid_for))}>'
            f"{_e(p.valid_for or '–')}</span>" + _next_session(p),
        )
    )
    if p.stale_sessions is not None:
        flag = (
            ""
            if p.stale is None
            else f' <span class="badge {"stale" if p.stale else "fresh"}" id="stale-{_e(p.symbol)}" '
            f"data-value={_q(json.dumps(p.stale))}>"
            f"{'stale: ' + (p.on_stale or 'flag') + 'ged' if p.stale else 'fresh'}</span>"
        )
        limit = f" (allowed: {p.max_stale_sessions})" if p.max_stale_sessions is not None else ""
        rows.append(
            (
                "data age",
                _num(Number(key="provenance.stale_sessions", label="sessions", value=p.stale_sessions))
                + f" sessions between the last bar and the run{_e(limit)}{flag}",
            )
        )
    table = "<table>" + "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"
    return (
        f'<h3>Data provenance</h3><section class="card provenance">{table}<p class="muted">{_e(p.note)}</p></section>'
    )


def _calendar(p: Any) -> str:
    c = p.calendar_check
    if c is None:
        return ""
    parts = [f"{c.sessions:,} sessions from the first to the last bar"]
    if p.interval.endswith("d"):
        parts.append(
            "no session without a bar"
            if not c.missing_count
            else f"{c.missing_count} session(s) without a bar: {', '.join(c.missing_sessions)}"
            + (" …" if c.missing_count > len(c.missing_sessions) else "")
        )
    if c.off_session_count:
        parts.append(
            f"{c.off_session_count} bar(s) on a day the exchange was closed: "
            f"{', '.join(c.off_session_bars)}" + (" …" if c.off_session_count > len(c.off_session_bars) else "")
        )
    return f'<br><span class="muted">{_e("; ".join(parts))}</span>'


def _next_session(p: Any) -> str:
    c = p.calendar_check
    if c is None or c.next_session is None:
        return ""
    text = f"the next {c.exchange} session after the last bar is {c.next_session}"
    if c.skipped_days:
        text += f" ({', '.join(c.skipped_days)}: no session)"
    if p.valid_for and p.valid_for != c.next_session:
        text += "; the stored valid_for differs from it"
    return f' <span class="muted">{_e(text)}</span>'


def _models(sym: SymbolReport, job_id: str) -> str:
    if not sym.models:
        return ""
    rows = []
    for v in sym.models:
        numbers = ", ".join(f"{_e(n.label)} {_num(n)}" for n in v.numbers)
        mine = " (this job)" if v.job_id == job_id else ""
        rows.append(
            f"<tr><td>{v.id}{mine}</td><td>{_e(v.status)}</td><td>{_e(v.created_at or '–')}</td>"
            f"<td>{_e(v.trained_on or '–')}</td><td class='muted'>{numbers}</td></tr>"
        )
    return (
        '<h3>Model versions of this key</h3><section class="card"><table><tr><th>version</th><th>status</th>'
        "<th>created</th><th>trained on</th><th>numbers</th></tr>" + "".join(rows) + "</table></section>"
    )


# --- blocks -----------------------------------------------------------------------------------------------


def _block(page: _Page, block: ArmBlock, symbol: str) -> str:
    if isinstance(block, Verdict):
        inner = _verdict(block)
    elif isinstance(block, EquityPanel):
        inner = f"<h3>{_e(block.title)}</h3>{_equity(page, block, symbol)}"
    elif isinstance(block, Breakdown):
        inner = f"<h3>{_e(block.title)}</h3>{_breakdown(page, block, symbol)}"
    elif isinstance(block, LineChart):
        inner = f"<h3>{_e(block.title)}</h3>{_line_chart(page, block, symbol)}"
    elif isinstance(block, Matrix):
        inner = f'<h3>{_e(block.title)}</h3><section class="card">{_matrix(block)}</section>'
    else:
        inner = f'<section class="card"><b>{_e(block.title)}</b>{_table(block)}</section>'
    return f'<div class="block" data-block="{_e(block.key)}">{inner}</div>'


def _verdict(v: Verdict) -> str:
    champion = ARM_LABELS.get(v.champion, v.champion)
    chosen = ARM_LABELS.get(v.chosen, v.chosen)
    source = {"published": "what was published for this key", "defaults": "nothing was published for this key"}
    head = (
        f'<p><span class="badge {_e(v.decision)}" data-key="arms.decision" '
        f"data-value={_q(json.dumps(v.decision))}>{_e(v.decision)}</span> "
        f"champion: <b>{_e(champion)}</b> ({_params(v.champion_parameters)}"
        + (f"; {_e(source.get(v.champion_source or '', v.champion_source or ''))}" if v.champion_source else "")
        + f'); published: <b data-key="arms.chosen" data-value={_q(json.dumps(v.chosen))}>{_e(chosen)}</b></p>'
    )
    numbers = (
        '<table class="numbers">'
        + "".join(f"<tr><th>{_e(n.label)}</th>{_num_cell(n)}</tr>" for n in v.numbers)
        + "</table>"
    )
    # the reason sentence is the decision card's, just above
    return f'<section class="card verdict">{head}{numbers}<p class="muted">{_e(v.note)}</p></section>'


def _matrix(m: Matrix) -> str:
    head = "<tr><th></th>" + "".join(f"<th>{_e(c)}</th>" for c in m.columns) + "</tr>"
    rows = []
    for r in m.rows:
        cells = "".join(
            _num_cell(c)
            if isinstance(c, Number)
            else f"<td>{_e(c)}</td>"
            if c is not None
            else "<td class='num'>–</td>"
            for c in r.cells
        )
        rows.append(f"<tr><th>{_e(r.label)}</th>{cells}</tr>")
    note = f'<p class="muted">{_e(m.note)}</p>' if m.note else ""
    return f'<table class="matrix">{head}{"".join(rows)}</table>{note}'


def _line_chart(page: _Page, chart: LineChart, symbol: str) -> str:
    plot = page.plot(PLOT_LINES, symbol, _line_chart_figure(page, chart))
    return f'<section class="card">{plot}<p class="muted">{_e(chart.note)}</p></section>'


def _equity(page: _Page, panel: EquityPanel, symbol: str) -> str:
    equity = page.plot(PLOT_EQUITY, symbol, _lines_figure(page, panel, "equity", "equity (start = 1)"))
    drawdown = page.plot(PLOT_DRAWDOWN, symbol, _lines_figure(page, panel, "drawdown", "drawdown"))
    return (
        f'<section class="card">{equity}{drawdown}<p class="muted">{_e(panel.note)}</p>'
        f"{_metrics_matrix(panel)}</section>"
    )


def _metrics_matrix(panel: EquityPanel) -> str:
    labels = list(dict.fromkeys(n.label for c in panel.curves for n in c.metrics))
    head = "<tr><th>metric</th>" + "".join(f"<th>{_e(c.name)}</th>" for c in panel.curves) + "</tr>"
    rows = []
    for label in labels:
        cells = []
        for c in panel.curves:
            n = next((m for m in c.metrics if m.label == label), None)
            cells.append(_num_cell(n) if n is not None else "<td></td>")
        rows.append(f"<tr><th>{_e(label)}</th>{''.join(cells)}</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _breakdown(page: _Page, b: Breakdown, symbol: str) -> str:
    if not b.periods:
        return f'<section class="card"><p class="muted">{_e(b.note)}</p></section>'
    plot = page.plot(PLOT_BREAKDOWN, symbol, _breakdown_figure(page, b))
    head = "<tr><th>period</th><th>bars</th>" + "".join(f"<th>{_e(k)}</th>" for k in b.values) + "</tr>"
    rows = []
    for i, period in enumerate(b.periods):
        cells = "".join(_breakdown_cell(b, name, i, period) for name in b.values)
        rows.append(f"<tr><th>{_e(period)}</th><td class='num'>{b.bars[i]}</td>{cells}</tr>")
    return (
        f'<section class="card">{plot}<p class="muted">{_e(b.note)}</p>'
        f"<details><summary>table</summary><table>{head}{''.join(rows)}</table></details></section>"
    )


def _breakdown_cell(b: Breakdown, name: str, i: int, period: str) -> str:
    key = f"{b.key or b.metric}.{name}.{period}"
    value = Number(key=key, label=period, value=b.values[name][i])
    errors = b.errors.get(name)
    if not errors or errors[i] is None:
        return _num_cell(value)
    se = Number(key=f"{key}.se", label=f"{period} SE", value=errors[i])
    return f"<td class='num'>{_num(value)} ± {_num(se)}</td>"


def _table(table: Table) -> str:
    """Plain rows; numbers keyed ``group.column.row`` (``holdout.cpo.sharpe``) become one matrix per group."""
    groups: dict[str, dict[str, dict[str, Number]]] = {}
    plain = []
    for n in table.rows:
        parts = n.key.split(".")
        if len(parts) == 3:
            groups.setdefault(parts[0], {}).setdefault(parts[1], {})[parts[2]] = n
        else:
            plain.append(n)
    html_ = []
    for group, columns in groups.items():
        leaves = list(dict.fromkeys(leaf for col in columns.values() for leaf in col))
        head = f"<tr><th>{_e(group)}</th>" + "".join(f"<th>{_e(c)}</th>" for c in columns) + "</tr>"
        body = "".join(
            f"<tr><th>{_e(leaf)}</th>"
            + "".join(_num_cell(col[leaf]) if leaf in col else "<td></td>" for col in columns.values())
            + "</tr>"
            for leaf in leaves
        )
        html_.append(f'<table class="numbers">{head}{body}</table>')
    if plain:
        html_.append(
            '<table class="numbers">'
            + "".join(f"<tr><th>{_e(n.label)}</th>{_num_cell(n)}</tr>" for n in plain)
            + "</table>"
        )
    note = f'<p class="muted">{_e(table.note)}</p>' if table.note else ""
    return "".join(html_) + note


def _num_cell(n: Number) -> str:
    return f"<td class='num'>{_num(n)}</td>"


def _num(n: Number) -> str:
    unit = f" {_e(n.unit)}" if n.unit else ""
    detail = f"<span class='detail'>{_e(n.detail)}</span>" if n.detail else ""
    return (
        f"<span class='number' data-key={_q(n.key)} data-value={_q(json.dumps(n.value))}>"
        f"{_e(format_number(n.value))}</span>{unit}{detail}"
    )


# --- figures ----------------------------------------------------------------------------------------------


class _Page:
    """Numbers the page's plot divs and turns figures into HTML (without Plotly's script)."""

    def __init__(self) -> None:
        self.plots = 0
        self._colors: dict[str, str] = {}

    def color(self, name: str) -> str:
        """One color per policy name on the whole page, so an arm looks the same in every plot."""
        if name == CURVE_BUY_AND_HOLD:
            return "#3d3d3d"
        if name not in self._colors:
            self._colors[name] = COLORS[len(self._colors) % len(COLORS)]
        return self._colors[name]

    def plot(self, kind: str, symbol: str, figure: Any) -> str:
        self.plots += 1
        div_id = f"plot-{self.plots}"
        inner = figure.to_html(full_html=False, include_plotlyjs=False, div_id=div_id, config=PLOTLY_CONFIG)
        return f'<div class="plot" data-plot="{_e(kind)}" data-symbol="{_e(symbol)}">{inner}</div>'


def _go() -> Any:
    try:
        import plotly.graph_objects as go
    except ImportError:
        raise PlotlyMissingError() from None
    return go


def _layout(fig: Any, title: str, ytitle: str, height: int = 340) -> Any:
    fig.update_layout(
        title={"text": title, "font": {"size": 14}},
        height=height,
        template="plotly_white",
        margin={"l": 60, "r": 20, "t": 40, "b": 40},
        yaxis_title=ytitle,
        legend={"orientation": "h", "y": -0.15},
    )
    return fig


def _line_style(page: _Page, name: str) -> dict[str, Any]:
    heavy = name.endswith(CHAMPION_SUFFIX)
    return {
        "color": page.color(name),
        "width": 2.6 if heavy else 1.5,
        "dash": "dash" if name == CURVE_BUY_AND_HOLD else "solid",
    }


def _lines_figure(page: _Page, panel: EquityPanel, field: str, ytitle: str) -> Any:
    go = _go()
    fig = go.Figure()
    fill = field == "drawdown" and len(panel.curves) <= 2  # filled areas of many curves hide each other
    for curve in panel.curves:
        fig.add_trace(
            go.Scatter(
                x=panel.timestamps,
                y=getattr(curve, field),
                mode="lines",
                name=curve.name,
                line=_line_style(page, curve.name),
                fill="tozeroy" if fill else None,
            )
        )
    _mark_windows(fig, panel.windows)
    if field == "drawdown":
        fig.update_yaxes(tickformat=".0%")
    return _layout(fig, ytitle, ytitle, height=380 if len(panel.curves) > 4 else 340)


def _mark_windows(fig: Any, windows: Sequence[Any], *, labels: bool = True, **where: Any) -> None:
    # adjacent windows alternate their shade, so each stays visible; a line marks each origin
    for i, w in enumerate(windows):
        text = {"annotation_text": w.label, "annotation_position": "top left"} if labels else {}
        fig.add_vrect(
            x0=w.start,
            x1=w.end,
            fillcolor="#f2c94c" if i % 2 == 0 else "#56ccf2",
            opacity=0.12,
            line_width=0,
            **text,
            **where,
        )
        if len(windows) > 1:
            fig.add_vline(x=w.start, line_width=1, line_dash="dot", line_color="#8a8f98", **where)


def _line_chart_figure(page: _Page, chart: LineChart) -> Any:
    from plotly.subplots import make_subplots

    go = _go()
    n = max(1, len(chart.rows))
    fig = make_subplots(
        rows=n, cols=1, shared_xaxes=True, vertical_spacing=0.05, subplot_titles=[r.title for r in chart.rows]
    )
    shown: set[str] = set()
    for i, row in enumerate(chart.rows, start=1):
        for j, series in enumerate(row.series):
            style = {**_line_style(page, series.name), "shape": "hv"}
            if j > 0:
                style["dash"] = "dot"  # the first series (CPO) is the subject; the others are references
            fig.add_trace(
                go.Scatter(
                    x=chart.timestamps,
                    y=series.values,
                    mode="lines",
                    name=series.name,
                    legendgroup=series.name,
                    showlegend=series.name not in shown,
                    line=style,
                ),
                row=i,
                col=1,
            )
            shown.add(series.name)
        _mark_windows(fig, chart.windows, labels=i == 1, row=i, col=1)
    fig.update_layout(
        title={"text": chart.title, "font": {"size": 14}},
        height=150 * n + 110,
        template="plotly_white",
        margin={"l": 70, "r": 20, "t": 70, "b": 40},
        legend={"orientation": "h", "y": -0.06},
    )
    return fig


def _breakdown_figure(page: _Page, b: Breakdown) -> Any:
    go = _go()
    bars = []
    for name, vals in b.values.items():
        errors = b.errors.get(name)
        error_y = (
            {
                "type": "data",
                "array": [0 if e is None else e for e in errors],
                "visible": True,
                "color": "#3d3d3d",
                "thickness": 1.2,
            }
            if errors
            else None
        )
        bars.append(go.Bar(x=b.periods, y=vals, name=name, marker_color=page.color(name), error_y=error_y))
    fig = go.Figure(bars)
    fig.update_layout(barmode="group")
    return _layout(fig, b.title, b.metric, height=340 if len(b.values) > 4 else 300)


def _history_figure(study: StudySection) -> Any:
    go = _go()
    done = [t for t in study.trials if t.value is not None]
    best: list[float] = []  # the best value so far, trial by trial
    for value in [t.value for t in done if t.value is not None]:  # every trial of done (said for the type checker)
        better = not best or (value > best[-1] if study.direction == "maximize" else value < best[-1])
        best.append(value if better else best[-1])
    fig = go.Figure(
        [
            go.Scatter(
                x=[t.number for t in done],
                y=[t.value for t in done],
                mode="markers",
                name="trial value",
                marker={"color": COLORS[0]},
                text=[_params_plain(t.params) for t in done],
                hovertemplate="trial %{x}: %{y:.4f}<br>%{text}<extra></extra>",
            ),
            go.Scatter(
                x=[t.number for t in done],
                y=best,
                mode="lines",
                name="best so far",
                line={"shape": "hv", "color": COLORS[2]},
            ),
        ]
    )
    fig.update_xaxes(title="trial")
    return _layout(fig, f"optimization history ({study.purpose})", "objective", height=300)


def _importance_figure(study: StudySection) -> Any:
    go = _go()
    items = sorted((study.importances or {}).items(), key=lambda kv: kv[1])
    fig = go.Figure(go.Bar(x=[v for _, v in items], y=[k for k, _ in items], orientation="h", marker_color=COLORS[3]))
    return _layout(fig, f"parameter importances ({study.purpose})", "", height=300)


def heatmap_page(
    title: str,
    x_name: str,
    y_name: str,
    x: Sequence[Any],
    y: Sequence[Any],
    z: Sequence[Sequence[float | None]],
    metric: str,
    note: str = "",
) -> str:
    """A self-contained page with one heatmap of ``metric`` over two parameters (``ludus sweep --plot``)."""
    go = _go()
    page = _Page()
    fig = go.Figure(
        go.Heatmap(
            x=list(x),
            y=list(y),
            z=[list(row) for row in z],
            colorscale="RdBu",
            zmid=0 if metric in ("sharpe", "sortino", "total_return", "cagr", "calmar") else None,
            colorbar={"title": metric},
            hovertemplate=f"{x_name}=%{{x}}<br>{y_name}=%{{y}}<br>{metric}=%{{z:.4f}}<extra></extra>",
        )
    )
    fig.update_xaxes(title=x_name)
    fig.update_yaxes(title=y_name)
    plot = page.plot(PLOT_HEATMAP, "", _layout(fig, title, y_name, height=560))
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style><script>{plotly_js()}</script></head><body><main><h1>{_e(title)}</h1>"
        f'<section class="card">{plot}<p class="muted">{_e(note)}</p></section></main></body></html>'
    )


# --- small helpers ----------------------------------------------------------------------------------------


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _q(value: Any) -> str:
    return f'"{_e(value)}"'


def _params(params: dict[str, Any] | None) -> str:
    return _e(_params_plain(params)) if params else "–"


def _params_plain(params: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (params or {}).items())


def iter_numbers(report: Report) -> Iterable[Number]:
    """Every Number the page of ``report`` prints in a table (tests compare them with the page)."""
    for sym in report.symbols:
        if sym.decision is not None:
            yield from sym.decision.numbers.rows
        if sym.equity is not None:
            for c in sym.equity.curves:
                yield from c.metrics
        for block in sym.arms:
            yield from block_numbers(block)


def block_numbers(block: ArmBlock) -> Iterable[Number]:
    """The Numbers one block of the champion/challenger section prints (not its plots' points)."""
    if isinstance(block, Verdict):
        yield from block.numbers
    elif isinstance(block, Matrix):
        yield from (c for r in block.rows for c in r.cells if isinstance(c, Number))
    elif isinstance(block, EquityPanel):
        yield from (n for c in block.curves for n in c.metrics)
    elif isinstance(block, Table):
        yield from block.rows

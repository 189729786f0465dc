"""HTML of the web view's list pages (the job pages are ``ludus.report.render``'s)."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from ludus.constants import ARM_LABELS
from ludus.report.document import Dashboard, Progress
from ludus.report.render import STYLE
from ludus.stores.jobs import STATUSES, JobRecord
from ludus.stores.models import ModelVersion
from ludus.stores.published import PublishedEntry

Url = Callable[[str], str]


@dataclass(frozen=True)
class JobRow:
    """One line of the jobs page (and of ``/api/jobs``)."""

    job_id: str
    status: str
    strategy: str | None
    symbols: list[str]
    interval: str | None
    mode: str | None
    attempts: int
    created_at: str
    finished_at: str | None
    progress_done: int | None
    progress_total: int | None
    error: str | None
    #: per symbol of a finished job: its decision (changed/kept), "static" for a search without one
    decisions: dict[str, str]

    @classmethod
    def of(cls, record: JobRecord, progress: Progress | None) -> JobRow:
        p = record.payload or {}
        decisions = {
            str(s.get("symbol")): str(s.get("decision") or "static")
            for s in (record.result or {}).get("symbols") or []
            if isinstance(s, dict)
        }
        return cls(
            job_id=record.job_id,
            status=record.status,
            strategy=p.get("strategy"),
            symbols=[str(s) for s in p.get("symbols") or []],
            interval=p.get("interval"),
            mode=p.get("mode"),
            attempts=record.attempts,
            created_at=record.created_at.isoformat(timespec="seconds"),
            finished_at=record.finished_at.isoformat(timespec="seconds") if record.finished_at else None,
            progress_done=None if progress is None else progress.done,
            progress_total=None if progress is None else progress.total,
            error=record.error,
            decisions=decisions,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def jobs_page(rows: list[JobRow], status: str | None, url: Url, dashboard: Dashboard) -> str:
    filters = " ".join(f'<a href="{_e(url("/"))}?status={s}">{s}</a>' for s in STATUSES)
    lines = []
    for r in rows:
        if r.progress_total is not None:
            progress = (
                f'<progress max="{max(r.progress_total, 1)}" value="{r.progress_done}"></progress> '
                f'<span class="progress">{r.progress_done}/{r.progress_total} trials</span>'
            )
        else:
            progress = "done" if r.error is None else f'<span class="muted">{_e(r.error[:120])}</span>'
        lines.append(
            f'<tr class="job" data-job-id="{_e(r.job_id)}" data-status="{_e(r.status)}">'
            f'<td><a class="report" href="{_e(url(f"/jobs/{r.job_id}"))}">{_e(r.job_id)}</a></td>'
            f'<td><span class="status {_e(r.status)}">{_e(r.status)}</span></td><td>{_e(r.strategy or "–")}</td>'
            f"<td>{_e(', '.join(r.symbols))}</td><td>{_e(r.interval or '–')}</td><td>{_e(r.mode or '–')}</td>"
            f'<td>{progress}</td><td class="decision">{_decisions(r.decisions)}</td><td>{r.attempts}</td>'
            f"<td>{_e(r.created_at)}</td><td>{_e(r.finished_at or '–')}</td></tr>"
        )
    table = (
        "<table><tr><th>job</th><th>status</th><th>strategy</th><th>symbols</th><th>interval</th><th>mode</th>"
        "<th>progress</th><th>decision</th><th>attempts</th><th>created</th><th>finished</th></tr>"
        + "".join(lines)
        + "</table>"
        if lines
        else '<p class="muted">No job yet.</p>'
    )
    shown = f" ({_e(status)})" if status else ""
    body = (
        f'<p class="muted">filter: <a href="{_e(url("/"))}">all</a> {filters}</p>'
        f'<section class="card">{table}</section>'
        f'<p class="muted">The Optuna studies of these jobs open in optuna-dashboard: '
        f'<code>{_e(dashboard.command)}</code>, then <a class="dashboard" href="{_e(dashboard.url)}">'
        f"{_e(dashboard.url)}</a>.</p>"
    )
    return _page(f"Ludus jobs{shown}", body, url)


def params_page(history: dict[tuple[str, str, str], list[PublishedEntry]], url: Url) -> str:
    parts = []
    for (strategy, symbol, interval), entries in history.items():
        lines = "".join(
            f'<tr class="param" data-valid-for="{_e(e.row.valid_for)}"><td>{_e(e.row.valid_for)}</td>'
            f"<td>{_e(_params(e.row.parameters))}</td>"
            f"<td>{_badge(e.row.decision)} {_e(ARM_LABELS.get(e.row.arm or '', e.row.arm or ''))}</td>"
            f'<td class="num">{_e(e.row.evidence_bars if e.row.evidence_bars is not None else "–")}</td>'
            f'<td class="num">{_e(_fmt(e.row.expected_metric))}</td>'
            f"<td>{_e(e.row.model_version if e.row.model_version is not None else '–')}</td>"
            f"<td>{_job_link(e.row.job_id, url)}</td>"
            f'<td class="muted">{_e(((e.decision or {}).get("reason") or "")[:240])}</td></tr>'
            for e in entries
        )
        parts.append(
            f'<h2>{_e(strategy)} {_e(symbol)} {_e(interval)}</h2><section class="card"><table>'
            "<tr><th>valid for</th><th>parameters</th><th>decision</th><th>evidence bars</th>"
            "<th>expected return</th><th>model version</th><th>job</th><th>why</th></tr>"
            f"{lines or '<tr><td>nothing published</td></tr>'}</table></section>"
        )
    return _page(
        "Published parameters (OptimizedParameters)",
        "".join(parts) or '<p class="muted">Nothing published yet.</p>',
        url,
    )


def models_page(versions: dict[tuple[str, str, str], list[ModelVersion]], referenced: set[int], url: Url) -> str:
    parts = []
    for (strategy, symbol, interval), rows in versions.items():
        if not rows:
            continue
        lines = "".join(
            f'<tr><td>{v.id}</td><td><span class="status {_e(v.status)}">{_e(v.status)}</span></td>'
            f"<td>{'yes' if v.id in referenced else '–'}</td>"
            f"<td>{_badge((v.metrics or {}).get('decision'))}</td>"
            f"<td>{_e(v.created_at.isoformat(timespec='seconds') if v.created_at else '–')}</td>"
            f"<td>{_e((v.metrics or {}).get('trained_on', '–'))}</td><td>{_job_link(v.job_id, url)}</td></tr>"
            for v in rows
        )
        parts.append(
            f'<h2>{_e(strategy)} {_e(symbol)} {_e(interval)}</h2><section class="card"><table>'
            "<tr><th>version</th><th>status</th><th>in a published row</th><th>decision</th>"
            "<th>created</th><th>trained on</th><th>job</th></tr>"
            f"{lines}</table></section>"
        )
    return _page("Model versions", "".join(parts) or '<p class="muted">No model version yet.</p>', url)


def _page(title: str, body: str, url: Url) -> str:
    nav = (
        f'<nav><a href="{_e(url("/"))}">jobs</a><a href="{_e(url("/params"))}">parameters</a>'
        f'<a href="{_e(url("/models"))}">models</a></nav>'
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
        f"<style>{STYLE}</style></head><body><header>{nav}<h1>{_e(title)}</h1></header>"
        f"<main>{body}</main></body></html>"
    )


def _badge(decision: str | None) -> str:
    return f'<span class="badge {_e(decision)}">{_e(decision)}</span>' if decision else "–"


def _decisions(decisions: dict[str, str]) -> str:
    return (
        " ".join(
            f'<span class="badge {_e(d)}" data-symbol="{_e(s)}" data-decision="{_e(d)}">{_e(s)}: {_e(d)}</span>'
            for s, d in decisions.items()
        )
        or "–"
    )


def _job_link(job_id: str | None, url: Url) -> str:
    return f'<a href="{_e(url(f"/jobs/{job_id}"))}">{_e(job_id[:8])}…</a>' if job_id else "–"


def _params(params: dict[str, Any] | None) -> str:
    return ", ".join(f"{k}={v}" for k, v in (params or {}).items()) or "–"


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:+.5f}"


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)

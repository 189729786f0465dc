"""Reports a trader reads before trusting a parameter: ``ludus report``, ``sweep --plot``, the web view's pages.

Above the stores and the pipeline, below the CLI and the web view. Three steps, each its own module:
``records.load_records`` reads what is stored about a job, ``build.build_report`` turns it into data
(:mod:`ludus.report.document`, JSON-serializable) without touching a database, ``render.render_html`` turns the
data into one self-contained HTML page. ``arms`` builds the champion/challenger section from the decision's
stored evidence, ``periods`` the per-year and per-volatility-regime breakdowns both sections use.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ludus.config import Settings
    from ludus.report.document import Report


def report_for_job(
    engine: Engine, settings: Settings, job_id: object, *, symbol: str | None = None, dashboard_url: str | None = None
) -> Report:
    """Load the job's records and build its report."""
    from ludus.report.build import build_report
    from ludus.report.records import load_records

    return build_report(load_records(engine, settings, job_id, symbol=symbol), dashboard_url=dashboard_url)


def write_report(report: Report, out_dir: Path, *, symbol: str | None = None) -> tuple[Path, Path]:
    """Write ``<job id>[-<SYMBOL>].html`` and the same data as ``.json`` into ``out_dir``; returns both paths."""
    from ludus.report.render import render_html

    out_dir.mkdir(parents=True, exist_ok=True)
    stem = report.job.job_id + (f"-{symbol.upper()}" if symbol else "")
    html_path, json_path = out_dir / f"{stem}.html", out_dir / f"{stem}.json"
    html_path.write_text(render_html(report), encoding="utf-8")
    json_path.write_text(report.to_json() + "\n", encoding="utf-8")
    return html_path, json_path

"""`ludus report JOB_ID` (an HTML page and its JSON per job) and `ludus serve` (the read-only web view)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ludus.cli.common import console
from ludus.constants import DEFAULT_WEB_PORT

DashboardOpt = Annotated[
    str | None,
    typer.Option(
        "--dashboard-url", help="where optuna-dashboard serves this database (links); default http://127.0.0.1:8082"
    ),
]


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command(
        "report", help="Write a job's report: one self-contained HTML page (plots, numbers) and the same data as JSON."
    )(report_command)
    app.command(
        "serve",
        help="Serve the read-only web view: jobs, their progress and reports, published parameters, model versions.",
    )(serve_command)


def report_command(
    job_id: Annotated[str, typer.Argument(help="the job id (a UUID)")],
    symbol: Annotated[str | None, typer.Option("--symbol", help="only this symbol of the job")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="directory for <job id>.html and <job id>.json")] = Path(
        "reports"
    ),
    dashboard_url: DashboardOpt = None,
) -> None:
    from ludus.config import get_settings
    from ludus.db.engine import make_engine
    from ludus.report import report_for_job, write_report

    settings = get_settings()
    engine = make_engine(settings.database_url)
    try:
        report = report_for_job(engine, settings, job_id, symbol=symbol, dashboard_url=dashboard_url)
        html_path, json_path = write_report(report, out, symbol=symbol)
    finally:
        engine.dispose()
    for sym in report.symbols:
        for problem in sym.problems:
            console.print(f"[yellow]warning:[/] {sym.symbol}: {problem}", highlight=False, soft_wrap=True)
    console.print(f"job {report.job.job_id} ({report.job.status}): {len(report.symbols)} symbol(s)", highlight=False)
    console.print(f"wrote {html_path}", highlight=False, soft_wrap=True)
    console.print(f"wrote {json_path}", highlight=False, soft_wrap=True)


def serve_command(
    host: Annotated[
        str,
        typer.Option(
            "--host", help="bind address; keep 127.0.0.1 unless a reverse proxy with authentication is in front"
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port (0: any free port)")] = DEFAULT_WEB_PORT,
    dashboard_url: DashboardOpt = None,
) -> None:
    from ludus.config import get_settings
    from ludus.db.engine import make_engine
    from ludus.web.app import WebView
    from ludus.web.server import make_web_server

    settings = get_settings()
    engine = make_engine(settings.database_url)
    server = make_web_server(WebView(engine, settings, dashboard_url=dashboard_url), host, port)
    console.print(
        f"serving the Ludus web view on http://{host}:{server.server_port}/ (read-only; Ctrl-C stops)",
        highlight=False,
        soft_wrap=True,
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        engine.dispose()

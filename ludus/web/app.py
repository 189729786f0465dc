"""The read-only web view: jobs with status and progress, published parameters, model versions, job reports.

``WebView`` knows nothing about servers: ``respond(method, target)`` maps a request to a :class:`Response`,
and the object is also a WSGI application. ``ludus serve`` runs it on wsgiref (``ludus.web.server``); any
other HTTP server mounts it with one call per request (``view.respond("GET", path)``), under a ``prefix``.
It only reads: every page is a SELECT through the stores, the Optuna storage and the report builder.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from sqlalchemy.engine import Engine

from ludus.config import Settings
from ludus.errors import InputError, LudusError
from ludus.report.records import UnknownJobError
from ludus.web import pages

HTML = "text/html; charset=utf-8"
JSON = "application/json"
JS = "text/javascript; charset=utf-8"
MAX_JOBS = 200
PARAMS_PER_KEY = 10  # published rows shown per key on /params (newest trading days)
MAX_MODEL_VERSIONS = 500  # model versions listed on /models (newest first)
PLOTLY_PATH = "/static/plotly.min.js"
_JOB_PATH = re.compile(r"^/jobs/([0-9A-Fa-f-]{36})(\.json)?$")


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def reason(self) -> str:
        from http import HTTPStatus

        return HTTPStatus(self.status).phrase


class WebView:
    """Pages over one Ludus database. ``prefix``: the path it is mounted under (``""`` or ``"/ludus"``)."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        *,
        prefix: str = "",
        dashboard_url: str | None = None,
        max_jobs: int = MAX_JOBS,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.prefix = prefix.rstrip("/")
        self.dashboard_url = dashboard_url
        self.max_jobs = max_jobs
        self._plotly: bytes | None = None
        self._routes: dict[str, Callable[[dict[str, list[str]]], Response]] = {
            "/": self.jobs_page,
            "/params": self.params_page,
            "/models": self.models_page,
            "/api/jobs": self.jobs_json,
            PLOTLY_PATH: self.plotly_js,
        }

    # --- dispatch ---------------------------------------------------------------------------------------

    def handles(self, target: str) -> bool:
        """Whether ``target`` (a request path) lies under this view's prefix."""
        path = urlsplit(target).path
        return not self.prefix or path == self.prefix or path.startswith(self.prefix + "/")

    def respond(self, method: str, target: str) -> Response:
        """The response to ``method target`` (target: path and query, as in the request line)."""
        if method not in ("GET", "HEAD"):
            return _text(405, "read-only: GET only\n", {"Allow": "GET, HEAD"})
        parts = urlsplit(target)
        path = parts.path
        if self.prefix:
            if not self.handles(path):
                return _text(404, "not found\n")
            path = path[len(self.prefix) :] or "/"
        query = parse_qs(parts.query)
        try:
            route = self._routes.get(path)
            if route is not None:
                response = route(query)
            elif (m := _JOB_PATH.match(path)) is not None:
                response = self.job_report(m.group(1), as_json=bool(m.group(2)), query=query)
            else:
                response = _text(404, "not found\n")
        except UnknownJobError as exc:
            response = _text(404, f"{exc}\n")
        except InputError as exc:
            response = _text(400, f"{exc}\n")
        except LudusError as exc:  # the database is unreachable or busy, plotly is missing, ...
            response = _text(503, f"{exc}\n")
        if method == "HEAD":
            return Response(response.status, response.content_type, b"", response.headers)
        return response

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        """WSGI."""
        target = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        r = self.respond(environ.get("REQUEST_METHOD", "GET"), target)
        headers = [("Content-Type", r.content_type), ("Content-Length", str(len(r.body))), *r.headers.items()]
        start_response(f"{r.status} {r.reason}", headers)
        return [r.body]

    def url(self, path: str) -> str:
        return f"{self.prefix}{path}"

    # --- pages ------------------------------------------------------------------------------------------

    def jobs_page(self, query: dict[str, list[str]]) -> Response:
        status = _one(query, "status")
        rows = self._job_rows(status)
        return _html(pages.jobs_page(rows, status, self.url, self.dashboard()))

    def jobs_json(self, query: dict[str, list[str]]) -> Response:
        rows = self._job_rows(_one(query, "status"))
        return Response(200, JSON, json.dumps([r.to_dict() for r in rows], indent=1).encode())

    def params_page(self, query: dict[str, list[str]]) -> Response:
        from ludus.stores.published import published_history, published_keys

        with self.engine.connect() as conn:
            history = {
                k: published_history(conn, *k, limit=PARAMS_PER_KEY) for k in published_keys(conn, limit=self.max_jobs)
            }
        return _html(pages.params_page(history, self.url))

    def models_page(self, query: dict[str, list[str]]) -> Response:
        from ludus.stores import models
        from ludus.stores.published import referenced_model_versions

        with self.engine.connect() as conn:
            versions = models.find_versions(conn, limit=MAX_MODEL_VERSIONS)
            referenced = referenced_model_versions(conn)
        by_key: dict[tuple[str, str, str], list[models.ModelVersion]] = {}
        for v in versions:  # newest first, so keys come in the order of their newest version
            by_key.setdefault((v.strategy, v.symbol, v.interval), []).append(v)
        return _html(pages.models_page(by_key, referenced, self.url))

    def job_report(self, job_id: str, *, as_json: bool, query: dict[str, list[str]]) -> Response:
        from ludus.report import report_for_job
        from ludus.report.render import render_html

        report = report_for_job(
            self.engine, self.settings, job_id, symbol=_one(query, "symbol"), dashboard_url=self.dashboard_url
        )
        if as_json:
            return Response(200, JSON, report.to_json().encode())
        nav = [
            ("← jobs", self.url("/")),
            ("parameters", self.url("/params")),
            ("models", self.url("/models")),
            ("JSON", self.url(f"/jobs/{report.job.job_id}.json")),
        ]
        return _html(render_html(report, plotly_src=self.url(PLOTLY_PATH), nav=nav))

    def plotly_js(self, query: dict[str, list[str]]) -> Response:
        from ludus.report.render import plotly_js

        if self._plotly is None:
            self._plotly = plotly_js().encode()
        return Response(200, JS, self._plotly, {"Cache-Control": "public, max-age=86400"})

    # --- reading ----------------------------------------------------------------------------------------

    def _job_rows(self, status: str | None) -> list[pages.JobRow]:
        from ludus.report.build import progress
        from ludus.report.records import studies_by_job
        from ludus.stores import jobs

        if status is not None and status not in jobs.STATUSES:
            raise InputError("status", status, f"must be one of {', '.join(jobs.STATUSES)}")
        with self.engine.connect() as conn:
            records = jobs.list_jobs(conn, status=status, limit=self.max_jobs)
        # only unfinished jobs need their trials counted; a finished job's progress is its status
        live = [r.job_id for r in records if not r.finished]
        studies = studies_by_job(self.settings.database_url, self.engine, live) if live else {}
        return [
            pages.JobRow.of(r, progress(r.payload or {}, studies.get(r.job_id, [])) if not r.finished else None)
            for r in records
        ]

    def dashboard(self) -> Any:
        from ludus.config import mask_url
        from ludus.report.build import dashboard

        return dashboard(mask_url(self.settings.database_url), self.dashboard_url)


def _one(query: dict[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[-1] if values else None


def _html(text: str) -> Response:
    return Response(200, HTML, text.encode("utf-8"))


def _text(status: int, text: str, headers: dict[str, str] | None = None) -> Response:
    return Response(status, "text/plain; charset=utf-8", text.encode("utf-8"), headers or {})

"""Real jobs for the report and web tests: the sample data, a tiny CPO job and a static job on SPX, recorded in
the jobs table the way ``ludus optimize`` records them; and headless Chromium pages that fail on any error."""

from __future__ import annotations

import sys
import threading
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "pipeline"))  # the pipeline tests' databases and small model space

from pipeline_helpers import SMALL_MODEL_SPACE, Events, settings_for, spx_job

from ludus.contracts.job import parse_job
from ludus.db.engine import make_engine
from ludus.pipeline import run_job
from ludus.search.trial import InProcessExecutor
from ludus.stores import jobs
from ludus.stores.unit import transaction

STATIC_TRIALS = 40


def cpo_job_body() -> dict:
    """CPO of sma_cross on the last 1,200 SPX bars: 24 candidates, 3 model and 3 baseline trials (seconds)."""
    return spx_job()


def static_job_body(trials: int = STATIC_TRIALS, symbol: str = "SPX") -> dict:
    return {
        **spx_job(),
        "mode": "static",
        "symbols": [symbol],
        "conditions_from": [],
        "search": {"trials": trials, "seed": 5},
    }


def run_recorded(url: str, body: dict, progress: Any = None, owner: str | None = None) -> dict:
    """Run ``body`` with run_job and keep its record in the jobs table; returns the stored result.

    Without ``owner`` the record is written after the run (as ``ludus optimize`` does); with it the job is
    accepted and claimed first (as a worker does), so it is ``running`` while the pipeline works.
    """
    job = parse_job(body)
    engine = make_engine(url)
    try:
        if owner is not None:
            with transaction(engine) as conn:
                jobs.accept(conn, job.job_id, job.payload())
                assert jobs.claim(conn, job.job_id, owner, lease_s=600)
        with InProcessExecutor() as executor:
            result = run_job(
                job,
                engine=engine,
                settings=settings_for(url),
                progress=progress or Events(),
                executor=executor,
                model_space=SMALL_MODEL_SPACE,
                owner=owner,
            )
        if owner is None:
            with transaction(engine) as conn:
                jobs.accept(conn, job.job_id, job.payload())
                jobs.finish(conn, job.job_id, None, jobs.SUCCEEDED, result.to_dict())
        with engine.connect() as conn:
            record = jobs.get(conn, job.job_id)
    finally:
        engine.dispose()
    assert record is not None and record.status == jobs.SUCCEEDED and record.result is not None
    return record.result


class PausedJob:
    """A static job run by a worker-like owner in a thread, held still once ``pause_at`` trials are done.

    The hold is the pipeline's own progress callback waiting: the job is really running (its record claimed,
    its study half full) while the test looks at it. ``release()`` lets it finish.
    """

    def __init__(self, url: str, pause_at: int = 16, trials: int = STATIC_TRIALS, symbol: str = "IXIC") -> None:
        self.url = url
        self.body = static_job_body(trials, symbol)
        self.job_id = self.body["job_id"]
        self.pause_at = pause_at
        self.paused = threading.Event()
        self._go = threading.Event()
        self.result: dict | None = None
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="paused-job", daemon=True)

    def _progress(self, event: Any) -> None:
        if not self._go.is_set() and event.phase == "search" and (event.step or 0) >= self.pause_at:
            self.paused.set()
            self._go.wait(timeout=300)

    def _run(self) -> None:
        try:
            self.result = run_recorded(
                self.url, self.body, progress=self._progress, owner=f"test-worker-{uuid.uuid4().hex[:6]}"
            )
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self.error = exc
            self.paused.set()

    def start(self) -> PausedJob:
        self._thread.start()
        assert self.paused.wait(timeout=300), "the job never reached its pause point"
        if self.error is not None:
            raise self.error
        return self

    def release(self) -> dict:
        self._go.set()
        self._thread.join(timeout=300)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def stored_numbers(data: dict, prefix: str = "") -> dict[str, float]:
    """Every numeric leaf of a stored result dict, keyed by dotted path (independent of ludus.report)."""
    out: dict[str, float] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(stored_numbers(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = value
    return out


class BrowserPage:
    """A Chromium page that records console errors, page errors and every request leaving ``allowed``."""

    def __init__(self, browser: Any, allowed: tuple[str, ...] = ("file://",)) -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 900})
        self.errors: list[str] = []
        self.blocked: list[str] = []
        self.page.on(
            "console",
            lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type in ("error", "warning") else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

        def route(r: Any) -> None:
            if r.request.url.startswith(allowed) or r.request.url.startswith("data:"):
                r.continue_()
            else:
                self.blocked.append(r.request.url)
                r.abort()

        self.page.route("**/*", route)

    def plots(self) -> list[dict[str, Any]]:
        """Every plot container: its kind, symbol and whether Plotly drew it (an SVG with traces)."""
        return self.page.evaluate("""() => [...document.querySelectorAll('div.plot')].map(d => ({
            kind: d.dataset.plot, symbol: d.dataset.symbol,
            drawn: !!d.querySelector('.js-plotly-plot .main-svg'),
            traces: d.querySelectorAll('.js-plotly-plot .trace, .js-plotly-plot .hm').length}))""")

    def numbers(self, scope: str = "body") -> list[dict[str, str]]:
        return self.page.evaluate(
            """(scope) => [...document.querySelectorAll(scope + ' span.number')].map(s => ({
            key: s.dataset.key, value: s.dataset.value, text: s.textContent}))""",
            scope,
        )

    def close(self) -> None:
        self.page.close()

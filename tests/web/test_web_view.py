"""The read-only web view on a real server: jobs with status and progress (a job really running, held at a
known trial count, and a finished one), parameters and model versions per key, each job's report; and a
browser clicking from the job list to a report."""

from __future__ import annotations

import html
import json
import re
import urllib.error
import urllib.request

import pytest
from report_helpers import BrowserPage, PausedJob

from ludus.web.app import WebView


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers.get("Content-Type", ""), exc.read().decode()


def _job_row(page: str, job_id: str) -> str:
    match = re.search(rf'<tr class="job" data-job-id="{job_id}".*?</tr>', page)
    assert match, page
    return match.group(0)


def test_running_and_finished_jobs_with_their_progress(web_db, served) -> None:
    base, _view = served
    finished = web_db["finished"]["result"]
    paused = PausedJob(web_db["url"], pause_at=16, trials=40).start()
    try:
        status, ctype, page = _get(f"{base}/")
        assert status == 200 and ctype.startswith("text/html")
        running = _job_row(page, paused.job_id)
        assert 'data-status="running"' in running and "16/40 trials" in running and "data-decision" not in running
        done = _job_row(page, finished["job_id"])
        # a finished CPO job shows its decision per symbol, as stored
        (sym,) = finished["symbols"]
        assert 'data-status="succeeded"' in done
        assert f'data-symbol="SPX" data-decision="{sym["decision"]}"' in done and sym["decision"] == "kept"
        # the machine-readable list says the same
        _, ctype, body = _get(f"{base}/api/jobs?status=running")
        rows = json.loads(body)
        assert ctype == "application/json" and [r["job_id"] for r in rows] == [paused.job_id]
        assert (rows[0]["progress_done"], rows[0]["progress_total"], rows[0]["decisions"]) == (16, 40, {})
        every = {r["job_id"]: r for r in json.loads(_get(f"{base}/api/jobs")[2])}
        assert every[finished["job_id"]]["decisions"] == {"SPX": finished["symbols"][0]["decision"]}
        # the running job's report: no decision yet, the search so far
        status, _, report = _get(f"{base}/jobs/{paused.job_id}")
        assert status == 200 and 'data-status="running"' in report and "No decision yet" in report
        assert '<span id="job-progress">16/40 trials</span>' in report
        data = json.loads(_get(f"{base}/jobs/{paused.job_id}.json")[2])
        assert data["job"]["status"] == "running" and data["symbols"][0]["decision"] is None
        assert data["symbols"][0]["search"]["studies"][0]["complete"] == 16
    finally:
        result = paused.release()
    # finished now: the same pages say so, with the decision (a static search decides nothing: "static")
    row = _job_row(_get(f"{base}/")[2], paused.job_id)
    assert 'data-status="succeeded"' in row and 'data-symbol="IXIC" data-decision="static"' in row
    data = json.loads(_get(f"{base}/jobs/{paused.job_id}.json")[2])
    assert data["job"]["status"] == "succeeded"
    assert data["symbols"][0]["decision"]["reason"] == result["symbols"][0]["reason"]


def test_parameters_models_and_errors(web_db, served) -> None:
    # (the running-job test published for IXIC: a key of its own, so the SPX row is the finished job's)
    base, _view = served
    finished = web_db["finished"]["result"]
    (sym,) = finished["symbols"]
    status, _, params = _get(f"{base}/params")
    assert status == 200 and "sma_cross SPX 1d" in params
    # the key's rows from the stores' listing (published_keys, published_history): the finished job's row,
    # its decision and arm, the reason of the job that wrote it
    row = re.search(
        rf'<h2>sma_cross SPX 1d</h2>.*?<tr class="param" data-valid-for="{sym["valid_for"]}">(.*?)</tr>', params
    ).group(1)
    assert ", ".join(f"{k}={v}" for k, v in sym["parameters"].items()) in row
    assert '<span class="badge kept">kept</span> strategy defaults' in row and sym["arm"] == "defaults"
    assert f'<td class="num">{sym["oos_bars"]}</td>' in row and finished["job_id"][:8] in row
    assert html.escape(sym["reason"][:60]) in row
    status, _, models = _get(f"{base}/models")
    assert status == 200 and f"<td>{sym['model_version']}</td>" in models
    version = re.search(rf"<tr><td>{sym['model_version']}</td>(.*?)</tr>", models).group(1)
    assert '<span class="badge kept">kept</span>' in version and finished["job_id"][:8] in version
    assert _get(f"{base}/jobs/00000000-0000-0000-0000-000000000000")[0] == 404
    assert _get(f"{base}/jobs/{finished['job_id']}?symbol=GOOG")[0] == 400
    status, _, text = _get(f"{base}/?status=bogus")
    assert status == 400 and "status=bogus: must be one of" in text
    assert _get(f"{base}/nothing-here")[0] == 404
    req = urllib.request.Request(f"{base}/", method="POST", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(req, timeout=30)
    assert info.value.code == 405
    _, ctype, js = _get(f"{base}/static/plotly.min.js")
    assert ctype.startswith("text/javascript") and len(js) > 1_000_000


def test_mounted_under_a_prefix(web_db) -> None:
    from ludus.config import Settings
    from ludus.db.engine import make_engine

    engine = make_engine(web_db["url"])
    view = WebView(engine, Settings(database_url=web_db["url"], device="cpu"), prefix="/ludus")
    try:
        job_id = web_db["finished"]["result"]["job_id"]
        assert not view.handles("/metrics") and view.handles("/ludus/jobs/x")
        page = view.respond("GET", "/ludus/")
        assert page.status == 200 and f'href="/ludus/jobs/{job_id}"' in page.body.decode()
        report = view.respond("GET", f"/ludus/jobs/{job_id}").body.decode()
        assert '<script src="/ludus/static/plotly.min.js">' in report
        assert view.respond("GET", "/jobs/").status == 404
        assert view.respond("HEAD", "/ludus/").body == b""
    finally:
        engine.dispose()


def test_browser_clicks_from_the_job_list_to_a_report(web_db, served, chromium, tmp_path) -> None:
    base, _view = served
    finished = web_db["finished"]["result"]
    page = BrowserPage(chromium, allowed=(base,))
    page.page.goto(f"{base}/")
    page.page.click(f'tr[data-job-id="{finished["job_id"]}"] a.report')
    page.page.wait_for_url(f"{base}/jobs/{finished['job_id']}")
    page.page.wait_for_load_state("load")
    page.page.screenshot(path=str(tmp_path / "web-report.png"), full_page=True)
    assert page.errors == [] and page.blocked == []
    plots = page.plots()
    assert len(plots) >= 6 and all(p["drawn"] for p in plots), plots
    assert page.page.text_content("#job-status") == "succeeded"
    assert page.page.text_content('div.symbol[data-symbol="SPX"] p.reason') == finished["symbols"][0]["reason"]
    # and back to the list
    page.page.click("nav a:has-text('jobs')")
    page.page.wait_for_url(f"{base}/")
    assert page.page.locator("tr.job").count() >= 1
    page.close()


def test_ludus_serve_answers_until_stopped(web_db) -> None:
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    ludus = Path(sys.executable).with_name("ludus")
    env = {**os.environ, "LUDUS_DATABASE_URL": web_db["url"], "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [str(ludus), "serve", "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, (line, proc.stderr.read() if proc.poll() is not None else "")
        status, _, page = _get(f"http://127.0.0.1:{match.group(1)}/")
        assert status == 200 and web_db["finished"]["result"]["job_id"] in page
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    code = subprocess.run(
        [str(ludus), "serve", "--port", "70000"], env=env, capture_output=True, text=True, check=False
    )
    assert code.returncode == 2 and "port=70000: must be in 0..65535" in code.stderr


def test_optuna_dashboard_reads_the_jobs_studies(web_db) -> None:
    """What the README tells users to run: optuna-dashboard on Ludus' database lists the job's studies."""
    import threading
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    from optuna_dashboard import wsgi

    from ludus.search.storage import get_storage

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:
            pass

    server = make_server("127.0.0.1", 0, wsgi(get_storage(web_db["url"])), handler_class=Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        status, _, body = _get(f"http://127.0.0.1:{server.server_port}/api/studies")
    finally:
        server.shutdown()
        server.server_close()
    job_id = web_db["finished"]["result"]["job_id"]
    names = {s["study_name"] for s in json.loads(body)["study_summaries"]}
    assert status == 200 and {f"ludus-{job_id}-SPX-model", f"ludus-{job_id}-SPX-baseline"} <= names

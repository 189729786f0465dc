"""Fixtures of the web view tests: a database with the sample data and a finished job, the view served on a
free local port."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "report"))

from report_helpers import cpo_job_body, run_recorded


@pytest.fixture(autouse=True)
def _few_threads(one_torch_thread):
    yield


@pytest.fixture(scope="module")
def web_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    import torch

    from ludus.search.storage import dispose_storage
    from tests.helpers.databases import migrate_and_load_sample

    torch.set_num_threads(1)
    url = f"sqlite:///{tmp_path_factory.mktemp('web') / 'ludus.db'}"
    migrate_and_load_sample(url)
    body = cpo_job_body()
    yield {"url": url, "finished": {"body": body, "result": run_recorded(url, body)}}
    dispose_storage(url)


@pytest.fixture
def served(web_db) -> Iterator[tuple[str, object]]:
    """(base URL, WebView) of the view on 127.0.0.1 and a free port, stopped after the test."""
    from ludus.config import Settings
    from ludus.db.engine import make_engine
    from ludus.web.app import WebView
    from ludus.web.server import make_web_server

    engine = make_engine(web_db["url"])
    view = WebView(engine, Settings(database_url=web_db["url"], device="cpu"))
    server = make_web_server(view, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, name="web-view", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", view
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
        engine.dispose()

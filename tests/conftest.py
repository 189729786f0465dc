"""Fixtures shared by every test package.

Servers: PostgreSQL and RabbitMQ are real. When one is unreachable the tests that need it FAIL (never skip):
a skipped test would hide a broken feature.
Ray: one local instance per test session (``ray_local``); multi-node tests build their own cluster and
shut it down, and the next ``ray_local`` user starts a fresh local one.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")

REPO_ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get("LUDUS_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
RABBITMQ_URL = os.environ.get("LUDUS_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")


def _reachable(host: str, port: int, timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def require_server(name: str, host: str, port: int) -> None:
    """Fail (never skip) when a server the test needs is down."""
    if not _reachable(host, port):
        pytest.fail(f"{name} is not reachable at {host}:{port}; start it (see .ci/run) - this test must not skip")


# --- markers -----------------------------------------------------------------------------------------
# A test that uses a server's fixture carries that server's marker, so `make test-fast` (-m "not postgres and
# not rabbitmq and not ray and not slow") selects what runs without them. The PostgreSQL half of the
# `db_url` parametrization is marked per parameter; its SQLite half stays fast.
FIXTURE_MARKERS = {
    "postgres_url": "postgres",
    "amqp_url": "rabbitmq",
    "ray_local": "ray",
    "ray_cluster": "ray",
    "ray_pool": "ray",
    "ray_metric_names": "ray",
}
# End to end (whole jobs, `ludus` subprocesses, a browser, built wheels and images): `slow`, left to `make test`.
SLOW_PATHS = (
    "tests/cli/",
    "tests/pipeline/",
    "tests/report/",
    "tests/web/",
    "tests/packaging/",
    "tests/deploy/test_images.py",
    "tests/data/test_data_cli.py",
    "tests/cpo/test_cpo_real_data.py",
    "tests/cpo/test_cpo_synthetic.py",
)  # the last: whole decisions on synthetic markets
# parameter values that select a server (the `db_url` and executor-contract parametrizations)
PARAM_MARKERS = {"postgresql": "postgres", "ray": "ray"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(item.path).relative_to(REPO_ROOT).as_posix().startswith(SLOW_PATHS):
            item.add_marker("slow")
        fixtures = set(getattr(item, "fixturenames", ()))
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in fixtures:
                item.add_marker(marker)
        callspec = getattr(item, "callspec", None)
        for value in callspec.params.values() if callspec is not None else ():
            if isinstance(value, str) and value in PARAM_MARKERS:
                item.add_marker(PARAM_MARKERS[value])


# --- databases ---------------------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ludus.db'}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    require_server("PostgreSQL", "127.0.0.1", 5432)
    import sqlalchemy as sa

    name = f"ludus_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The same test on SQLite and on the real PostgreSQL (the Optuna way)."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "postgres_url")


# --- broker ------------------------------------------------------------------------------------------


@pytest.fixture
def amqp_url() -> str:
    require_server("RabbitMQ", "127.0.0.1", 5672)
    return RABBITMQ_URL


@pytest.fixture
def unique_name() -> str:
    """A short unique token for queue, exchange and study names of one test."""
    return uuid.uuid4().hex[:10]


# --- ray ---------------------------------------------------------------------------------------------


def ensure_local_ray():
    """Start (or reuse) the session's local Ray; replaces a connection to a test cluster."""
    import ray

    if ray.is_initialized():
        ctx = ray.get_runtime_context()
        if getattr(ctx, "gcs_address", None) and os.environ.get("LUDUS_TEST_RAY_CLUSTER") == ctx.gcs_address:
            ray.shutdown()
        else:
            return ray
    # address="local": never join another process' Ray through /tmp/ray/ray_current_cluster
    ray.init(
        address="local",
        num_cpus=4,
        num_gpus=0,
        include_dashboard=False,
        log_to_driver=False,
        namespace="ludus-tests",
        ignore_reinit_error=True,
    )
    return ray


@pytest.fixture
def ray_local():
    """The session's local Ray instance (started once, reused by every test that asks)."""
    return ensure_local_ray()


@pytest.fixture(scope="session")
def sample_bars():
    """Real S&P 500 daily bars (arch.data.sp500), as ludus.data.bars.Bars."""
    from tests.helpers.databases import spx_bars

    return spx_bars()


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test: two cores shared by many processes, where more threads only add
    contention for the tiny models of the tests."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# --- browser -----------------------------------------------------------------------------------------

CHROMIUM = os.environ.get("LUDUS_TEST_CHROMIUM", "/usr/bin/chromium")
# Debian's Chromium, headless, nothing reaching out (updates, sync, QUIC); never `playwright install`.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="session")
def chromium() -> Iterator[object]:
    """Headless Chromium driven by Playwright. Fails (never skips) when Chromium is not installed."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: apt-get install -y chromium chromium-driver "
            "(.ci/run does) - the browser tests must not skip"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()

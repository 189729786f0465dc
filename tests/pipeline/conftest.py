"""Fixtures of the pipeline tests (helpers live in pipeline_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pipeline_helpers import copy_sqlite

from tests.helpers.databases import migrate_and_load_sample


@pytest.fixture(autouse=True)
def _few_threads(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def sample_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with the sample data, built once and copied per test (loading takes seconds)."""
    path = tmp_path_factory.mktemp("template") / "sample.db"
    migrate_and_load_sample(f"sqlite:///{path}")
    return path


@pytest.fixture
def sample_sqlite(sample_template: Path, tmp_path: Path) -> str:
    """A fresh SQLite database of this test's own, migrated, with the sample data."""
    return copy_sqlite(sample_template, tmp_path / "ludus.db")


@pytest.fixture
def sample_db(db_url: str, sample_template: Path, tmp_path: Path) -> Iterator[str]:
    """``sample_sqlite`` on SQLite, a fresh PostgreSQL database loaded the same way on PostgreSQL."""
    from ludus.search.storage import dispose_storage

    url = copy_sqlite(sample_template, tmp_path / "ludus.db") if db_url.startswith("sqlite") else db_url
    if url is db_url:
        migrate_and_load_sample(url)
    yield url
    dispose_storage(url)  # Optuna's pooled connections, before the PostgreSQL database is dropped

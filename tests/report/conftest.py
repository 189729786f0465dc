"""Fixtures of the report tests: one database with the sample data and two real finished jobs: a static search
on SPX (it publishes its θ), then a CPO job on the same key, whose champion is that published θ and whose
decision therefore compares every arm (the published θ, CPO, the unconditional best θ, the defaults, the
equal-weight ensemble, the rolling re-optimization, the policy-gradient tuner)."""

from __future__ import annotations

from pathlib import Path

import pytest
from report_helpers import cpo_job_body, run_recorded, static_job_body


@pytest.fixture(autouse=True)
def _few_threads(one_torch_thread):
    yield


@pytest.fixture(scope="session")
def jobs_db(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A migrated SQLite database with the sample data, a finished static job and, after it, a finished CPO job."""
    import torch

    from ludus.search.storage import dispose_storage
    from tests.helpers.databases import migrate_and_load_sample

    torch.set_num_threads(1)
    path: Path = tmp_path_factory.mktemp("report") / "ludus.db"
    url = f"sqlite:///{path}"
    migrate_and_load_sample(url)
    cpo, static = cpo_job_body(), static_job_body()
    out: dict = {"url": url, "static": {"body": static, "result": run_recorded(url, static)}}
    out["cpo"] = {"body": cpo, "result": run_recorded(url, cpo)}
    yield out
    dispose_storage(url)

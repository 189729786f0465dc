"""A job id names one job in `ludus optimize` too: a known id with another payload is refused before anything
runs (it used to resume the other job's searches and print their result)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from ludus.contracts.job import parse_job
from ludus.data.prices import PriceStore
from ludus.data.sample import load_sample
from ludus.db.engine import make_engine
from ludus.db.migrate import upgrade
from ludus.stores import jobs
from ludus.stores.unit import transaction

REPO = Path(__file__).resolve().parents[2]


def test_a_known_job_id_with_another_payload_exits_2_and_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ids.db'}"
    upgrade(url)
    first = {
        "job_id": str(uuid.uuid4()),
        "strategy": "sma_cross",
        "symbols": ["SPX"],
        "mode": "static",
        "search": {"trials": 2, "seed": 1},
    }
    engine = make_engine(url)
    load_sample(PriceStore(engine))  # the job passes every other check: only its id is wrong
    with transaction(engine) as conn:  # what a first run (or a worker) left behind
        jobs.accept(conn, first["job_id"], parse_job(first).payload())
    second = {**first, "search": {"trials": 5, "seed": 1}}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(second))
    env = {**os.environ, "LUDUS_DATABASE_URL": url, "LUDUS_DEVICE": "cpu", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "ludus.cli.app", "optimize", str(path), "--no-ray"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    said = " ".join((done.stdout + done.stderr).split())
    assert f"job_id={first['job_id']}" in said and "different payload" in said and "new job_id" in said
    assert "Traceback" not in done.stderr
    with transaction(engine) as conn:
        assert jobs.get(conn, first["job_id"]).payload["search"]["trials"] == 2
    engine.dispose()

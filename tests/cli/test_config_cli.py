"""`ludus config` and every credential form a URL can carry: masked wherever a URL is shown."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ludus.config import mask_url

REPO = Path(__file__).resolve().parents[2]

CASES = [
    ("postgresql+psycopg://ludus:hunter2@db:5432/ludus", "postgresql+psycopg://ludus:***@db:5432/ludus"),
    (
        "postgresql+psycopg://ludus@db/ludus?password=hunter2&sslmode=require",
        "postgresql+psycopg://ludus@db/ludus?password=***&sslmode=require",
    ),
    ("postgresql://db/ludus?user=ludus&sslpassword=hunter2", "postgresql://db/ludus?user=ludus&sslpassword=***"),
    (
        "mssql+pyodbc://sa:hunter2@sql/delphi?driver=ODBC+Driver+18+for+SQL+Server",
        "mssql+pyodbc://sa:***@sql/delphi?driver=ODBC+Driver+18+for+SQL+Server",
    ),
    (
        "mssql+pyodbc:///?odbc_connect=DRIVER%3D%7BODBC%7D%3BSERVER%3Dsql%3BUID%3Dsa%3BPWD%3Dhunter2",
        "mssql+pyodbc:///?odbc_connect=DRIVER={ODBC};SERVER=sql;UID=sa;PWD=***",
    ),
    ("amqp://guest:hunter2@rabbit:5672/%2F", "amqp://guest:***@rabbit:5672/%2F"),
    (
        "amqps://ludus:p%40ss@rabbit/vh?heartbeat=30&auth_mechanism=external",
        "amqps://ludus:***@rabbit/vh?heartbeat=30&auth_mechanism=external",
    ),
    ("amqp://rabbit?token=hunter2", "amqp://rabbit?token=***"),
    ("sqlite:///ludus.db", "sqlite:///ludus.db"),
    ("ray://head:10001", "ray://head:10001"),
]


@pytest.mark.parametrize(("url", "masked"), CASES)
def test_mask_url_hides_every_credential_and_keeps_the_rest(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    assert "hunter2" not in mask_url(url)


def test_ludus_config_prints_no_secret(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "LUDUS_DATABASE_URL": "postgresql+psycopg://ludus@db/ludus?password=hunter2",
        "LUDUS_AMQP_URL": "amqp://guest:hunter2@rabbit:5672/%2F",
        "LUDUS_RAY_ADDRESS": "ray://admin:hunter2@head:10001",
    }
    done = subprocess.run(
        [sys.executable, "-m", "ludus.cli.app", "config"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    assert "password=***" in done.stdout and "guest:***@rabbit" in done.stdout and "admin:***@head" in done.stdout

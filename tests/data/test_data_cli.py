"""`ludus data load-sample|import|list` as a user runs them (a real subprocess, real database)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

GOOD = "Date,Open,High,Low,Close,Volume\n2020-01-02,10,11,9.5,10.5,1000\n2020-01-03,10.5,10.9,10.1,10.2,1200\n"


def _ludus(url: str, *args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LUDUS_DATABASE_URL": url, "COLUMNS": "120"}
    env.pop("LUDUS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "ludus.cli.app", "data", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _assert_one_line_error(proc: subprocess.CompletedProcess, *fragments: str) -> None:
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_load_sample_then_list(db_url: str, tmp_path: Path) -> None:
    proc = _ludus(db_url, "load-sample", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "loaded SPX_1d: 5031 bars" in proc.stdout and "loaded VIX_1d" in proc.stdout
    listing = _ludus(db_url, "list", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    for row in ("SPX", "IXIC", "VIX", "GOOG", "1999-01-04", "2018-12-31", "5,031"):
        assert row in listing.stdout
    for header in ("symbol", "interval", "first bar", "last bar", "rows"):
        assert header in listing.stdout


def test_import_good_bad_and_hostile(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    (tmp_path / "good.csv").write_text(GOOD)
    (tmp_path / "bad.csv").write_text(GOOD + "2020-01-06,10,9,9.5,10.5,5\n")
    empty = _ludus(url, "list", cwd=tmp_path)
    assert empty.returncode == 0 and "no price tables yet" in empty.stdout

    ok = _ludus(url, "import", "good.csv", "--symbol", "abc", "--interval", "1d", cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "imported 2 bars into Prices.ABC_1d" in ok.stdout

    bad = _ludus(url, "import", "bad.csv", "--symbol", "XYZ", cwd=tmp_path)
    _assert_one_line_error(bad, "bad.csv line 4", "2020-01-06", "High must be >= max(Open, Close)")
    hostile = _ludus(url, "import", "good.csv", "--symbol", "SPX; DROP TABLE x", cwd=tmp_path)
    _assert_one_line_error(hostile, "symbol", "SPX; DROP TABLE x")
    missing = _ludus(url, "import", "nope.csv", "--symbol", "ABC", cwd=tmp_path)
    _assert_one_line_error(missing, "nope.csv", "cannot be read")

    listing = _ludus(url, "list", cwd=tmp_path)
    assert "ABC" in listing.stdout and "XYZ" not in listing.stdout and "SPX" not in listing.stdout


@pytest.mark.parametrize("args", [["import", "good.csv"], ["frobnicate"]])
def test_usage_errors_exit_nonzero_without_traceback(tmp_path: Path, args: list[str]) -> None:
    proc = _ludus(f"sqlite:///{tmp_path / 'u.db'}", *args, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr

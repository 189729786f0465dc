"""Two ways to run `ludus`: in-process (fast; exit code, stdout, stderr) and as a subprocess (what a user runs)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
Run = Callable[..., tuple[int, str, str]]


def in_process(monkeypatch: Any, capsys: Any, url: str) -> Run:
    """``run(*args) -> (exit code, stdout, stderr)`` of ``ludus ARGS...`` in this process against ``url``.
    Clears the cached settings on the way in; call ``get_settings.cache_clear()`` after the test."""
    from ludus.cli.app import main
    from ludus.config import get_settings

    monkeypatch.setenv("LUDUS_DATABASE_URL", url)
    monkeypatch.delenv("LUDUS_DEBUG", raising=False)
    get_settings.cache_clear()

    def run(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["ludus", *args])
        code = 0
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def subprocess_run(
    url: str, *args: str, stdin: str | None = None, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m ludus.cli.app ARGS...`` against ``url`` on the CPU, one thread, wide tables."""
    full = {
        **os.environ,
        "LUDUS_DATABASE_URL": url,
        "LUDUS_DEVICE": "cpu",
        "COLUMNS": "200",
        "OMP_NUM_THREADS": "1",
        **(env or {}),
    }
    full.pop("LUDUS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "ludus.cli.app", *args],
        cwd=REPO,
        env=full,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )

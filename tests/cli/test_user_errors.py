"""Every error a user can cause is one line `error: field=value: rule` and exit 2, never a traceback or an
`internal error` (the cases a new user ran into)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def ludus(*args: str, tmp: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, "LUDUS_DATABASE_URL": f"sqlite:///{tmp / 'u.db'}", "COLUMNS": "200", **env}
    full.pop("LUDUS_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "ludus.cli.app", *args],
        cwd=tmp,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def one_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "internal error" not in lines[0] and "Traceback" not in done.stderr
    return lines[0]


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("config",), {"LUDUS_DEVICE": "gpu"}, "error: LUDUS_DEVICE=gpu: must be 'auto', 'cpu' or 'cuda'"),
        (
            ("config",),
            {"LUDUS_HTTP_PORT": "99999"},
            "error: LUDUS_HTTP_PORT=99999: must be less than or equal to 65535",
        ),
        (("worker", "--no-ray", "--http-port", "70000"), {}, "error: http_port=70000: must be between 0 and 65535"),
        (("schema", "--out", "/proc/x"), {}, "error: out=/proc/x: cannot write"),
        (
            ("sweep", "-s", "sma_cross", "--symbol", "SPX", "--samples", "1e20"),
            {},
            "error: --samples=1e20: must be a valid integer",
        ),
        (
            ("sweep", "-s", "sma_cross", "--symbol", "SPX", "--samples", "100000000000000000000"),
            {},
            "error: samples=100000000000000000000: must be <= 10,000,000",
        ),
        (("recommend", "--symbol", "SPX"), {}, "error: --strategy: required (see `ludus recommend --help`)"),
        (("jobs", "list", "--since", "yesterday"), {}, "error: since=yesterday: must be an ISO date/time"),
        (("models", "activate", "1"), {}, "error: --reason: required"),
        (
            ("schedule", "list", "--file", "/nonexistent/schedule.yaml"),
            {},
            "error: schedule_file=/nonexistent/schedule.yaml: cannot be read",
        ),
        (("frobnicate",), {}, "error: No such command 'frobnicate'"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(tmp_path: Path, args, env, expected) -> None:
    line = one_line(ludus(*args, tmp=tmp_path, **env))
    assert line.startswith(expected), line


def test_an_http_port_in_use_is_refused_before_the_worker_starts(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        line = one_line(
            ludus(
                "worker",
                "--no-ray",
                "--http-port",
                str(port),
                tmp=tmp_path,
                LUDUS_HTTP_HOST="127.0.0.1",
                LUDUS_AMQP_URL="amqp://guest:guest@127.0.0.1:1/%2F",
            )
        )
    finally:
        holder.close()
    assert line.startswith(f"error: http_port={port}: cannot listen on 127.0.0.1:{port}"), line

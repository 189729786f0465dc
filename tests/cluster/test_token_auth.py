"""Ray token authentication as both overlays turn it on (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN from a Secret):
the dashboard and job API answer 401 without the token, 403 with another one, and work with it.

A real Ray head with its dashboard, in a child process (its own Ray, ended when the test closes its stdin).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request

import pytest

pytestmark = pytest.mark.ray

HEAD = textwrap.dedent("""
    import sys, ray
    ctx = ray.init(address="local", num_cpus=1, include_dashboard=True, dashboard_host="127.0.0.1",
                   dashboard_port=int(sys.argv[1]), log_to_driver=False)
    print("ready", flush=True)
    sys.stdin.read()
    ray.shutdown()
""")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, token: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_dashboard_api_answers_401_without_the_token():
    token = secrets.token_hex(24)
    port = _free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token, "OMP_NUM_THREADS": "1"}
    head = subprocess.Popen(
        [sys.executable, "-c", HEAD, str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        assert head.stdout.readline().strip() == "ready"
        deadline = time.monotonic() + 120
        while True:  # the dashboard's public health check answers once its modules are up
            try:
                if _get(f"{base}/api/gcs_healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the Ray dashboard never came up"
            time.sleep(0.5)
        assert _get(f"{base}/api/version")[0] == 401
        assert _get(f"{base}/api/jobs/")[0] == 401  # the job API: `ray job submit` needs the token too
        assert _get(f"{base}/api/version", token="not-" + token)[0] == 403
        status, body = _get(f"{base}/api/version", token=token)
        assert status == 200
        import ray

        assert json.loads(body)["ray_version"] == ray.__version__
    finally:
        head.stdin.close()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()

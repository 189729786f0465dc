"""Renders the kustomize overlays once per session (kubectl kustomize; no cluster needed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
OVERLAYS = ("kuberay", "keda")


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        pytest.fail("kubectl is required for the deploy tests (it renders the kustomize overlays)")
    return path


def render(overlay: str) -> list[dict]:
    out = subprocess.run(
        [kubectl(), "kustomize", str(REPO / "k8s" / "overlays" / overlay)], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    return {o: render(o) for o in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def overlay_docs(request, rendered) -> tuple[str, list[dict]]:
    return request.param, rendered[request.param]

"""Fixtures of the CPO tests (helpers live in cpo_synth.py)."""

from __future__ import annotations

import pytest
from cpo_synth import SignMomentum


@pytest.fixture(scope="session")
def strategy() -> SignMomentum:
    return SignMomentum()


@pytest.fixture(autouse=True)
def _few_threads(one_torch_thread):
    yield

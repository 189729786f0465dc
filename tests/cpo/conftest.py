"""Fixtures of the CPO tests (helpers live in cpo_synth.py)."""

from __future__ import annotations

import pytest
import torch
from cpo_synth import SignMomentum


@pytest.fixture(scope="session")
def strategy() -> SignMomentum:
    return SignMomentum()


@pytest.fixture(autouse=True)
def _few_threads():
    # two cores shared by many processes: more threads only add contention for these tiny models
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

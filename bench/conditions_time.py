"""Wall time of the condition features on the sample's SPX with VIX and IXIC as context (what the test suite
used to assert; a test asserts behaviour, a benchmark measures time). Last line: ``conditions_s=<s>``."""

from __future__ import annotations

import os
import time

import torch

from ludus.data.conditions import compute_conditions
from ludus.data.sample import sample_bars


def main() -> None:
    spx, context = sample_bars("SPX"), {"VIX": sample_bars("VIX"), "IXIC": sample_bars("IXIC")}
    compute_conditions(spx, context)  # warm-up: imports, numba/scipy first calls
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        compute_conditions(spx, context)
        runs.append(time.perf_counter() - started)
    load = os.getloadavg()[0]
    print(f"{len(spx):,} bars, 2 context series; load {load:.2f}, torch threads {torch.get_num_threads()}")
    print(f"runs (s): {', '.join(f'{r:.3f}' for r in runs)}")
    print(f"conditions_s={min(runs):.4f}")


if __name__ == "__main__":
    main()

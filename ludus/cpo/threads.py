"""How many threads torch may use in this process: the cores the process owns (its CPU affinity), not the
machine's core count, so a process pinned to a share of a node (a container's cpuset, `taskset`, a Ray
worker) never oversubscribes it."""

from __future__ import annotations

import os


def owned_cores() -> int:
    """The CPUs this process may run on (``os.sched_getaffinity``; the CPU count where that is unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # macOS has no sched_getaffinity
        return max(1, os.cpu_count() or 1)


def pin_torch_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads to ``n`` (default: :func:`owned_cores`); returns the count set."""
    import torch

    n = max(1, int(n if n is not None else owned_cores()))
    torch.set_num_threads(n)
    return n


__all__ = ["owned_cores", "pin_torch_threads"]

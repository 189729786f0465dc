"""Head-side helpers of ``ludus head``: join the Ray cluster, describe its nodes, feed Ludus' gauges.

The queue consumer itself lives above this layer (ludus.worker); ``ludus head`` (ludus.cli.cluster) wires the
two together, so this module never imports the worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ludus.cluster import metrics
from ludus.cluster.dispatch import connect
from ludus.cluster.placement import cluster_nodes
from ludus.config import Settings


def connect_head(settings: Settings, address: str | None = None) -> Settings:
    """Connect this process to the Ray cluster it runs in (``"auto"``: the local head) and return settings
    whose ``ray_address`` says so, for the executors the worker creates per job."""
    target = address or settings.ray_address or "auto"
    connect(settings, address=target)
    return settings.model_copy(update={"ray_address": target})


def describe_nodes() -> list[dict[str, Any]]:
    """One row per alive node: id, architecture (or None when unmarked), CPUs, GPUs, how it is marked."""
    rows = []
    for node in cluster_nodes():
        marks = [m for m, ok in (("resource", node.arch_by_resource), ("label", node.arch_by_label)) if ok]
        rows.append(
            {
                "node_id": node.node_id,
                "arch": node.arch,
                "cpus": node.cpus,
                "gpus": node.gpus,
                "marked_by": "+".join(marks) or "-",
            }
        )
    return rows


class GaugeFeeder:
    """Sets the ``ludus_jobs_running`` and ``ludus_backlog`` Ray gauges every ``interval_s`` from callables."""

    def __init__(self, jobs_running: Callable[[], int], backlog: Callable[[], int], interval_s: float = 5.0) -> None:
        self._jobs = jobs_running
        self._backlog = backlog
        self._interval = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="ludus-ray-gauges", daemon=True)

    def start(self) -> GaugeFeeder:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                metrics.set_jobs_running(self._jobs())
                metrics.set_backlog(self._backlog())
            except Exception:  # noqa: BLE001 - a gauge is never worth a crash of the head
                pass
            self._stop.wait(self._interval)

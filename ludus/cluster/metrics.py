"""Ludus' custom Ray metrics (``ray.util.metrics``), shown by the Ray dashboard's Grafana and exported on each
node's metrics port for Prometheus (Ray prefixes the names with ``ray_``).

- ``ludus_trials_completed`` / ``ludus_trials_failed`` / ``ludus_trials_pruned`` (counters; job, arch)
- ``ludus_trial_retries`` (counter; trials re-run because their actor or node died)
- ``ludus_trial_duration_seconds`` (histogram; job, arch)
- ``ludus_bar_evals_per_second`` (gauge; job) — set by whoever knows the bars x candidates of a backtest
- ``ludus_jobs_running`` (gauge), ``ludus_backlog`` (gauge; jobs waiting in the queue)

Every function is a no-op while Ray is not initialized, so library code may call them unconditionally.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_metrics: dict[str, Any] = {}

DURATION_BOUNDARIES = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 3600]


def _ready() -> bool:
    try:
        import ray

        return ray.is_initialized()
    except ImportError:  # pragma: no cover
        return False


def _safe(fn):
    """Metrics must never break a job: a failing export is dropped."""

    def wrapper(*args: Any, **kwargs: Any) -> None:
        if not _ready():
            return
        try:
            fn(*args, **kwargs)
        except Exception:  # noqa: BLE001 - metrics never break a trial or a job
            pass

    wrapper.__doc__ = fn.__doc__
    wrapper.__name__ = fn.__name__
    return wrapper


def _get(name: str) -> Any:
    with _lock:
        metric = _metrics.get(name)
        if metric is not None:
            return metric
        from ray.util.metrics import Counter, Gauge, Histogram

        job_arch = ("job_id", "arch")
        factories = {
            "completed": lambda: Counter("ludus_trials_completed", "Trials finished with a value", job_arch),
            "failed": lambda: Counter("ludus_trials_failed", "Trials failed (objective error, NaN)", job_arch),
            "pruned": lambda: Counter("ludus_trials_pruned", "Trials stopped early by the pruner", job_arch),
            "retries": lambda: Counter("ludus_trial_retries", "Trials re-run after their actor or node died", job_arch),
            "duration": lambda: Histogram(
                "ludus_trial_duration_seconds", "Wall time of one trial on its actor", DURATION_BOUNDARIES, job_arch
            ),
            "bar_evals": lambda: Gauge(
                "ludus_bar_evals_per_second", "Backtest throughput: bars x candidates evaluated per second", ("job_id",)
            ),
            "jobs": lambda: Gauge("ludus_jobs_running", "Jobs running on this head", ()),
            "backlog": lambda: Gauge("ludus_backlog", "Jobs waiting in the queue", ()),
        }
        metric = factories[name]()
        _metrics[name] = metric
        return metric


def _tags(job_id: str, arch: str | None) -> dict[str, str]:
    return {"job_id": str(job_id), "arch": str(arch or "unknown")}


@_safe
def trial_finished(job_id: str, arch: str | None, state: str, duration_s: float) -> None:
    """Count one finished trial (state: complete, fail, pruned) and record its duration."""
    key = {"complete": "completed", "fail": "failed", "pruned": "pruned"}.get(state.lower())
    if key is not None:
        _get(key).inc(1, tags=_tags(job_id, arch))
    _get("duration").observe(max(0.0, float(duration_s)), tags=_tags(job_id, arch))


@_safe
def trial_retried(job_id: str, arch: str | None) -> None:
    _get("retries").inc(1, tags=_tags(job_id, arch))


@_safe
def set_bar_evals_per_second(job_id: str, value: float) -> None:
    _get("bar_evals").set(float(value), tags={"job_id": str(job_id)})


@_safe
def set_jobs_running(value: int) -> None:
    _get("jobs").set(int(value))


@_safe
def set_backlog(value: int) -> None:
    _get("backlog").set(int(value))

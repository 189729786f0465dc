"""Publishing a job's outcome: parameters, model versions and the job record in ONE transaction.

Idempotent by the job id: running the same job again updates the same OptimizedParameters rows (one per
strategy, symbol, interval and trading day) and reuses the model versions this job registered.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Connection, Engine

from ludus.contracts.job import OptimizationJob
from ludus.contracts.results import JobResult
from ludus.stores import jobs as job_store
from ludus.stores import models as model_store
from ludus.stores.parameters import ParameterRow, upsert_parameters
from ludus.stores.unit import transaction


def persist(engine: Engine, job: OptimizationJob, works: list[Any],
            build_result: Callable[[dict[str, int]], JobResult], owner: str | None = None) -> JobResult:
    """Write every symbol's outcome and finish the job record (when there is one) atomically.

    ``build_result(versions)`` makes the JobResult once the model version ids are known; it is stored on the
    job record by ``jobs.finish`` in the same transaction. ``owner``: the worker holding the job's lease
    (a lost lease rolls everything back); without one, only a job nobody claimed is finished here.
    """
    job_id = str(job.job_id)
    with transaction(engine) as conn:
        versions: dict[str, int] = {}
        for w in works:
            if w.onnx is not None:
                versions[w.symbol] = _model_version(conn, job, w)
        rows = [
            ParameterRow(strategy=job.strategy, symbol=w.symbol, interval=job.interval, valid_for=w.valid_for,
                         parameters=_plain(w.parameters), expected_metric=w.expected_return,
                         baseline_parameters=_plain(w.baseline) if w.baseline is not None else None,
                         model_version=versions.get(w.symbol) if w.gate is not None and w.gate.active else None,
                         job_id=job_id)
            for w in works if w.published
        ]
        upsert_parameters(conn, rows)
        result = build_result(versions)
        _finish_job(conn, job_id, owner, result)
    return result


def _model_version(conn: Connection, job: OptimizationJob, w: Any) -> int:
    status = model_store.ACTIVE if w.gate.active else model_store.CANDIDATE
    job_id = str(job.job_id)
    for existing in model_store.list_versions(conn, job.strategy, w.symbol, job.interval):
        if existing.job_id == job_id and existing.id is not None:
            # this job ran before (redelivery, rerun): keep its version instead of registering a twin
            if existing.status != status:
                model_store.set_status(conn, existing.id, status)
            return int(existing.id)
    version = model_store.ModelVersion(strategy=job.strategy, symbol=w.symbol, interval=job.interval,
                                       job_id=job_id, metrics=w.model_metrics, onnx=w.onnx, status=status)
    return model_store.register(conn, version)


def _finish_job(conn: Connection, job_id: str, owner: str | None, result: JobResult) -> None:
    record = job_store.get(conn, job_id)
    if record is None:
        return
    if owner is not None:
        job_store.finish(conn, job_id, owner, "succeeded", result.to_dict())
    elif record.status == "accepted" and record.lease_owner is None:
        job_store.finish(conn, job_id, None, "succeeded", result.to_dict())


def _plain(params: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        out[key] = value.item() if hasattr(value, "item") else value
    return out

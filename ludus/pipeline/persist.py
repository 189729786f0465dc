"""Publishing a job's outcome: per symbol, as each finishes, its parameters, model version, ledger entry and
decision evidence in ONE transaction; at the end the job record with the job's one result.

Idempotent by the job id: running the same job again updates the same OptimizedParameters rows (one per
strategy, symbol, interval and trading day), the same ledger and evidence rows, and reuses the model versions
this job registered (a job retried after a crash rewrites the symbols it already published identically). A
row another job published for the same key and day is replaced only by a decision
resting on at least as many out-of-sample bars; otherwise this job's symbol is not published and its result
says why (never a silent overwrite by a weaker job).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Connection, Engine

from ludus.contracts.job import OptimizationJob
from ludus.contracts.results import JobResult
from ludus.stores import evidence as evidence_store
from ludus.stores import jobs as job_store
from ludus.stores import ledger
from ludus.stores import models as model_store
from ludus.stores.parameters import ParameterRow, read_active, upsert_parameters
from ludus.stores.unit import transaction
from ludus.vocabulary import JOB_ACCEPTED, JOB_SUCCEEDED

if TYPE_CHECKING:
    from ludus.pipeline.run import SymbolWork


def persist_symbol(engine: Engine, job: OptimizationJob, w: SymbolWork, owner: str | None = None) -> int | None:
    """Write one finished symbol's outcome atomically (the symbols of a job are published as each one
    finishes); returns the model version registered for it (None: no CPO model).

    In one transaction: the stronger-row check, the model version, the OptimizedParameters row, retiring
    an active model the row no longer comes from, the ledger entry (tried, whether published or not) and
    the decision evidence. ``owner``: the worker holding the job's lease; a worker that lost it writes nothing
    (LeaseLostError rolls the transaction back), as at the job's end.
    """
    job_id = str(job.job_id)
    with transaction(engine) as conn:
        if owner is not None:
            _check_lease(conn, job_id, owner)
        if w.published:
            _keep_stronger_row(conn, job, w)
        version = _model_version(conn, job, w) if w.onnx is not None else None
        if w.published:
            upsert_parameters(
                conn,
                [
                    ParameterRow(
                        strategy=job.strategy,
                        symbol=w.symbol,
                        interval=job.interval,
                        valid_for=w.valid_for,
                        parameters=_plain(w.parameters),
                        expected_metric=w.expected_return,
                        baseline_parameters=_plain(w.baseline) if w.baseline is not None else None,
                        model_version=version if w.model_active else None,
                        job_id=job_id,
                        arm=w.arm,
                        decision=None if w.decision is None else w.decision.outcome,
                        evidence_bars=w.evidence_bars,
                    )
                ],
            )
            if not w.model_active:
                _retire_active_model(conn, job, w.symbol)
        if w.ledger is not None:
            ledger.record(conn, w.ledger)
        if w.evidence is not None:
            evidence_store.save(conn, w.evidence)
    return version


def finish_job(engine: Engine, job: OptimizationJob, result: JobResult, owner: str | None = None) -> None:
    """Finish the job record with its one result (when there is a record). ``owner``: the worker holding the
    job's lease (a lost lease raises LeaseLostError); without one, only a job nobody claimed is finished."""
    with transaction(engine) as conn:
        _finish_job(conn, str(job.job_id), owner, result)


def _keep_stronger_row(conn: Connection, job: OptimizationJob, w: SymbolWork) -> None:
    """Leave another job's row for the same key and day alone when it rests on more evidence than ``w``."""
    existing = read_active(conn, job.strategy, w.symbol, job.interval, w.valid_for)
    if existing is None or existing.job_id == str(job.job_id):
        return
    theirs, ours = existing.evidence_bars or 0, w.evidence_bars or 0
    if theirs > ours:
        w.published = False
        w.reason = (
            f"not published: the row for {w.valid_for} from job {existing.job_id} rests on {theirs:,} "
            f"out-of-sample bars, this decision on {ours:,} (a row is only replaced by at least as much "
            f"evidence); {w.reason}"
        )


def _model_version(conn: Connection, job: OptimizationJob, w: SymbolWork) -> int:
    status = model_store.ACTIVE if w.model_active else model_store.CANDIDATE
    job_id = str(job.job_id)
    card = w.card.to_dict() if w.card is not None else None
    for existing in model_store.list_versions(conn, job.strategy, w.symbol, job.interval):
        if existing.job_id == job_id and existing.id is not None:
            # this job ran before (redelivery, rerun): keep its version instead of registering a twin
            if existing.status != status:
                model_store.set_status(conn, existing.id, status)
            return int(existing.id)
    version = model_store.ModelVersion(
        strategy=job.strategy,
        symbol=w.symbol,
        interval=job.interval,
        job_id=job_id,
        metrics=card,
        onnx=w.onnx,
        status=status,
    )
    return model_store.register(conn, version)


def _retire_active_model(conn: Connection, job: OptimizationJob, symbol: str) -> None:
    """The live row no longer comes from a CPO model: no version of the key may stay active."""
    current = model_store.active(conn, job.strategy, symbol, job.interval)
    if current is not None and current.id is not None:
        model_store.set_status(conn, current.id, model_store.RETIRED)


def _check_lease(conn: Connection, job_id: str, owner: str) -> None:
    record = job_store.get(conn, job_id)
    if record is not None and (record.status != job_store.RUNNING or record.lease_owner != owner):
        raise job_store.LeaseLostError(
            f"job {job_id} is no longer held by {owner} (status {record.status}, "
            f"lease owner {record.lease_owner}); nothing published"
        )


def _finish_job(conn: Connection, job_id: str, owner: str | None, result: JobResult) -> None:
    record = job_store.get(conn, job_id)
    if record is None:
        return
    if owner is not None:
        job_store.finish(conn, job_id, owner, JOB_SUCCEEDED, result.to_dict())
    elif record.status == JOB_ACCEPTED and record.lease_owner is None:
        job_store.finish(conn, job_id, None, JOB_SUCCEEDED, result.to_dict())


def _plain(params: dict[str, Any] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in (params or {}).items():
        out[key] = value.item() if hasattr(value, "item") else value
    return out

"""Retention: inactive model versions and finished jobs' Optuna studies older than a setting are deleted.

Never deleted: the active version of a key; a version any published OptimizedParameters row names; the
studies of a job that is not finished (a worker may resume it) or that published the live row of a key.
``ludus models prune`` runs it; the scheduler runs it on the schedule file's retention slot.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.engine import Engine

from ludus.db.engine import make_engine
from ludus.db.schema import utcnow
from ludus.search.storage import delete_study, ludus_studies
from ludus.stores import jobs as job_store
from ludus.stores import models as model_store
from ludus.stores.published import live_job_ids, referenced_model_versions
from ludus.stores.unit import transaction


@dataclass
class PruneReport:
    """What was deleted (or, in a dry run, would be) and what was kept among the old ones, with why."""

    dry_run: bool
    model_versions: list[int] = field(default_factory=list)
    kept_versions: dict[int, str] = field(default_factory=dict)
    studies: list[str] = field(default_factory=list)
    kept_studies: dict[str, str] = field(default_factory=dict)


def prune(
    url: str,
    *,
    models_older_than: timedelta | None,
    studies_older_than: timedelta | None,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PruneReport:
    """Delete what retention allows in the database at ``url`` (None: leave that kind alone); returns the
    report."""
    engine = make_engine(url)
    now = now or utcnow()
    report = PruneReport(dry_run=dry_run)
    if models_older_than is not None:
        with transaction(engine) as conn:
            protected = referenced_model_versions(conn)
            for version in model_store.inactive_before(conn, now - models_older_than):
                if version.id is None:  # a row read back always has its id
                    continue
                if version.id in protected:
                    report.kept_versions[int(version.id)] = "a published row names it"
                else:
                    report.model_versions.append(int(version.id))
            if not dry_run:
                model_store.delete_versions(conn, report.model_versions)
    if studies_older_than is not None:
        _prune_studies(url, engine, now - studies_older_than, report)
    return report


def _prune_studies(url: str, engine: Engine, cutoff: datetime, report: PruneReport) -> None:
    studies = ludus_studies(url)
    if not studies:
        return
    with transaction(engine) as conn:
        live = live_job_ids(conn)
        records = {s.job_id: job_store.get(conn, s.job_id) for s in studies if s.job_id}
    for study in studies:
        record = records.get(study.job_id) if study.job_id else None
        if record is not None and not record.finished:
            report.kept_studies[study.name] = f"its job is {record.status}"
            continue
        if study.job_id in live:
            report.kept_studies[study.name] = "its job published a live row"
            continue
        since = record.finished_at if record is not None and record.finished_at else study.started
        if since is None or since >= cutoff:
            continue  # recent (or no trial ever started): not a candidate
        report.studies.append(study.name)
    if not report.dry_run:
        for name in report.studies:
            delete_study(url, name)

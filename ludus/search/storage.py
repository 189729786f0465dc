"""Optuna studies in the Ludus database, named deterministically so an interrupted job resumes its search.

``optuna-dashboard <database url>`` opens them: every study carries the job id, strategy, symbol and purpose
as user attributes, every failed trial its reason.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal
from uuid import UUID

import optuna
from optuna.trial import TrialState

from ludus.constants import OPTUNA_STUDY_PREFIX
from ludus.search.trial import FAIL_REASON_ATTR

INTERRUPTED_ATTR = "interrupted"
INTERRUPTED_REASON = "left RUNNING by an interrupted run; marked failed when the job resumed"

_storages: dict[str, optuna.storages.RDBStorage] = {}
_lock = threading.Lock()

optuna.logging.set_verbosity(optuna.logging.WARNING)


def get_storage(url: str) -> optuna.storages.RDBStorage:
    """The Optuna RDBStorage on ``url`` (one per URL and process).

    The compatibility check is skipped because Ludus' own migrations live in the same database (the way
    optuna-dashboard opens storages too).
    """
    with _lock:
        storage = _storages.get(url)
        if storage is None:
            kwargs: dict[str, Any] = {"pool_pre_ping": True}
            if url.startswith("sqlite"):
                # Ludus and Optuna write the same file; wait for the other writer instead of failing.
                kwargs = {"connect_args": {"timeout": 60}}
            storage = optuna.storages.RDBStorage(url, engine_kwargs=kwargs, skip_compatibility_check=True)
            _storages[url] = storage
        return storage


def dispose_storage(url: str) -> None:
    """Close the pooled connections of a storage (tests dropping their database)."""
    with _lock:
        storage = _storages.pop(url, None)
    if storage is not None:
        storage.remove_session()
        storage.engine.dispose()


def study_name(job_id: UUID | str, purpose: str, symbol: str | None = None) -> str:
    """``ludus-<job id>-<SYMBOL|all>-<purpose>``: the same job always finds the same study."""
    return f"{OPTUNA_STUDY_PREFIX}-{job_id}-{symbol or 'all'}-{purpose}"


def open_study(
    storage: optuna.storages.BaseStorage | str,
    name: str,
    *,
    direction: Literal["minimize", "maximize"] = "maximize",
    sampler: optuna.samplers.BaseSampler | None = None,
    pruner: optuna.pruners.BasePruner | None = None,
    user_attrs: dict[str, Any] | None = None,
    resume: bool = True,
) -> optuna.Study:
    """Create or (``resume``) reload a study; trials a crash left RUNNING are marked FAIL with a reason.

    With ``resume=False`` an existing study of that name is deleted first: the search starts over.
    """
    if isinstance(storage, str):
        storage = get_storage(storage)
    if not resume:
        try:
            optuna.delete_study(study_name=name, storage=storage)
        except KeyError:
            pass
    study = optuna.create_study(
        storage=storage, study_name=name, direction=direction, sampler=sampler, pruner=pruner, load_if_exists=True
    )
    for key, value in (user_attrs or {}).items():
        study.set_user_attr(key, value)
    fail_interrupted(study)
    return study


def fail_interrupted(study: optuna.Study) -> int:
    """Mark every RUNNING (or WAITING) trial FAIL: nobody runs them anymore. Returns how many."""
    storage = study._storage
    count = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING, TrialState.WAITING)):
        try:
            storage.set_trial_user_attr(trial._trial_id, FAIL_REASON_ATTR, INTERRUPTED_REASON)
            storage.set_trial_user_attr(trial._trial_id, INTERRUPTED_ATTR, True)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
            count += 1
        except RuntimeError:
            # finished by someone else in the meantime
            continue
    return count


def finished_trials(study: optuna.Study) -> int:
    """Trials that count towards the job's ``search.trials``: every finished one except interrupted ones."""
    done = 0
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.RUNNING or trial.state == TrialState.WAITING:
            continue
        if trial.state == TrialState.FAIL and trial.user_attrs.get(INTERRUPTED_ATTR):
            continue
        done += 1
    return done


def missing_trials(study: optuna.Study, target: int) -> int:
    """How many trials a (resumed) search still has to run to reach ``target``."""
    return max(0, int(target) - finished_trials(study))


def completed_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))


def best_trial(study: optuna.Study) -> optuna.trial.FrozenTrial | None:
    """The best COMPLETE trial, or None when there is none."""
    done = completed_trials(study)
    if not done:
        return None
    maximize = study.direction == optuna.study.StudyDirection.MAXIMIZE

    def value(t: optuna.trial.FrozenTrial) -> float:
        return float(t.value) if t.value is not None else float("nan")

    return (max if maximize else min)(done, key=value)


def failure_summary(study: optuna.Study, limit: int = 3) -> str:
    """The distinct reasons trials failed, for an error message."""
    reasons: list[str] = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        reason = str(trial.user_attrs.get(FAIL_REASON_ATTR, "unknown"))
        if reason not in reasons:
            reasons.append(reason)
    return "; ".join(reasons[:limit]) or "no trial ran"


@dataclass(frozen=True)
class StudyInfo:
    """A Ludus study in the storage: its name, the job it belongs to and when its first trial started."""

    name: str
    job_id: str | None
    started: datetime | None  # timezone-aware UTC (Optuna stores naive local time)
    n_trials: int


def ludus_studies(url: str) -> list[StudyInfo]:
    """Every study named by :func:`study_name` in the database at ``url`` (none when Optuna never ran there)."""
    import sqlalchemy as sa

    from ludus.db.engine import make_engine

    if "studies" not in sa.inspect(make_engine(url)).get_table_names():
        return []  # opening the storage would create Optuna's tables just to find nothing
    out = []
    for s in optuna.get_all_study_summaries(get_storage(url), include_best_trial=False):
        if not s.study_name.startswith(f"{OPTUNA_STUDY_PREFIX}-"):
            continue
        job_id = s.user_attrs.get("job_id") or _job_id_of(s.study_name)
        started = s.datetime_start.astimezone(timezone.utc) if s.datetime_start is not None else None
        out.append(StudyInfo(s.study_name, str(job_id) if job_id else None, started, int(s.n_trials)))
    return out


def delete_study(url: str, name: str) -> bool:
    """Delete a study and its trials; False when it was gone already."""
    try:
        optuna.delete_study(study_name=name, storage=get_storage(url))
    except KeyError:
        return False
    return True


def _job_id_of(name: str) -> str | None:
    candidate = name[len(OPTUNA_STUDY_PREFIX) + 1 :][:36]
    try:
        return str(UUID(candidate))
    except ValueError:
        return None

"""What a trial sees (TrialContext), what runs trials (Executor), and the in-process executor.

A search is split in two so that trials can run somewhere else than the study: the driver asks the study for a
trial and lets the objective *suggest* its parameters there (``objective.suggest(optuna_trial) -> dict``); the
objective itself (``objective(ctx) -> float``) only sees a :class:`TrialContext` with those parameters, so a
Ray actor can run it without touching the study. ``ask_trial`` and ``tell_trial`` are the two halves every
executor shares, so failures, pruning and user attributes are recorded the same way everywhere.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import optuna
from optuna.trial import FrozenTrial, TrialState

T = TypeVar("T")
R = TypeVar("R")

#: user attribute holding why a trial failed (shown by optuna-dashboard)
FAIL_REASON_ATTR = "fail_reason"


@runtime_checkable
class TrialContext(Protocol):
    """One trial as the objective sees it."""

    params: dict[str, Any]
    number: int

    def report(self, value: float, step: int) -> None:
        """Intermediate objective value after ``step`` (e.g. after each validation fold)."""

    def should_prune(self) -> bool:
        """True when the pruner wants this trial stopped (then raise :class:`TrialPruned`)."""


TrialFunction = Callable[[TrialContext], float]
#: called after each finished trial (complete, pruned or failed), like an Optuna callback
TrialCallback = Callable[[optuna.Study, FrozenTrial], None]

TrialPruned = optuna.TrialPruned


class TrialFailed(Exception):
    """Raised by an objective for a trial that cannot produce a value (e.g. training diverged).

    The trial is recorded as FAIL with the message as its reason; the search goes on.
    """


@runtime_checkable
class Executor(Protocol):
    """Runs trials of a study and maps plain functions over items (label chunks)."""

    def run(self, study: optuna.Study, trial_fn: TrialFunction, n_trials: int,
            timeout_s: float | None, on_trial_done: TrialCallback | None) -> None:
        """Run ``n_trials`` new trials of ``study`` (fewer if ``timeout_s`` runs out)."""

    def map(self, fn: Callable[[T], R], items: list[T]) -> list[R]:
        """``[fn(x) for x in items]``, possibly in parallel; order kept."""

    def close(self) -> None:
        """Release workers."""


def suggest_params(trial_fn: TrialFunction, trial: optuna.Trial) -> dict[str, Any]:
    """The parameters of a trial: the objective's ``suggest(trial)`` when it has one, else none."""
    suggest = getattr(trial_fn, "suggest", None)
    return dict(suggest(trial)) if suggest is not None else {}


def ask_trial(study: optuna.Study, trial_fn: TrialFunction) -> tuple[optuna.Trial, dict[str, Any]]:
    """Ask the study for a new trial and suggest its parameters (driver side)."""
    trial = study.ask()
    try:
        params = suggest_params(trial_fn, trial)
    except Exception as exc:
        tell_trial(study, trial, TrialOutcome.failed(f"suggest failed: {type(exc).__name__}: {exc}"))
        raise
    trial.set_user_attr("params", _jsonable(params))
    return trial, params


@dataclass
class TrialOutcome:
    """How one trial ended; ``state`` is COMPLETE, PRUNED or FAIL."""

    state: TrialState
    value: float | None = None
    reason: str | None = None
    duration_s: float = 0.0
    intermediate: list[tuple[int, float]] = field(default_factory=list)

    @classmethod
    def failed(cls, reason: str, duration_s: float = 0.0) -> TrialOutcome:
        return cls(TrialState.FAIL, None, reason, duration_s)


def evaluate(trial_fn: TrialFunction, ctx: TrialContext) -> TrialOutcome:
    """Run the objective on a context and classify the ending; never raises for trial-level problems."""
    start = time.perf_counter()
    try:
        value = float(trial_fn(ctx))
    except optuna.TrialPruned as exc:
        return TrialOutcome(TrialState.PRUNED, None, str(exc) or "pruned", time.perf_counter() - start)
    except TrialFailed as exc:
        return TrialOutcome.failed(str(exc), time.perf_counter() - start)
    except Exception as exc:  # noqa: BLE001 - recorded on the trial (below)
        # A bug or a numerical blow-up in one trial must not stop the job; the reason stays on the trial.
        tb = traceback.extract_tb(exc.__traceback__)
        where = f" at {tb[-1].filename.rsplit('/', 1)[-1]}:{tb[-1].lineno}" if tb else ""
        return TrialOutcome.failed(f"{type(exc).__name__}: {exc}{where}", time.perf_counter() - start)
    if not math.isfinite(value):
        return TrialOutcome.failed(f"objective is not finite ({value})", time.perf_counter() - start)
    return TrialOutcome(TrialState.COMPLETE, value, None, time.perf_counter() - start)


def tell_trial(study: optuna.Study, trial: optuna.Trial, outcome: TrialOutcome) -> FrozenTrial:
    """Record an outcome on the study (driver side) and return the finished trial."""
    if outcome.reason and outcome.state != TrialState.COMPLETE:
        trial.set_user_attr(FAIL_REASON_ATTR if outcome.state == TrialState.FAIL else "prune_reason",
                            outcome.reason[:1000])
    trial.set_user_attr("duration_s", round(outcome.duration_s, 4))
    values = outcome.value if outcome.state == TrialState.COMPLETE else None
    return study.tell(trial, values, state=outcome.state, skip_if_finished=True)


class OptunaTrialContext:
    """A TrialContext backed by a live ``optuna.Trial`` (in-process: report/prune go to the study)."""

    def __init__(self, trial: optuna.Trial, params: dict[str, Any]) -> None:
        self._trial = trial
        self.params = params
        self.number = trial.number

    def report(self, value: float, step: int) -> None:
        if math.isfinite(value):
            self._trial.report(float(value), step)

    def should_prune(self) -> bool:
        return self._trial.should_prune()

    def set_user_attr(self, key: str, value: Any) -> None:
        """Optional extra of a context: a value optuna-dashboard shows on the trial."""
        self._trial.set_user_attr(key, value)


class InProcessExecutor:
    """Trials one after the other in this process (tests, ``--no-ray``); ``map`` is a plain map."""

    def run(self, study: optuna.Study, trial_fn: TrialFunction, n_trials: int,
            timeout_s: float | None, on_trial_done: TrialCallback | None = None) -> None:
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for _ in range(max(0, n_trials)):
            if deadline is not None and time.monotonic() >= deadline:
                break
            trial, params = ask_trial(study, trial_fn)
            outcome = evaluate(trial_fn, OptunaTrialContext(trial, params))
            frozen = tell_trial(study, trial, outcome)
            if on_trial_done is not None:
                on_trial_done(study, frozen)

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        return [fn(item) for item in items]

    def close(self) -> None:
        return None

    def __enter__(self) -> InProcessExecutor:  # noqa: PYI034 - not subclassed
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if hasattr(value, "item"):
            value = value.item()
        out[key] = value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
    return out

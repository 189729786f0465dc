"""What a trial sees (TrialContext), the executor contract (BaseExecutor), and the in-process executors.

A search is split in two so that trials can run somewhere else than the study: the driver asks the study for a
trial and lets the objective *suggest* its parameters there (``objective.suggest(optuna_trial) -> dict``); the
objective itself (``objective(ctx) -> float``) only sees a :class:`TrialContext` with those parameters, so a
Ray actor can run it without touching the study. ``ask_trial`` and ``tell_trial`` are the two halves every
executor shares, so failures, pruning and user attributes are recorded the same way everywhere, and
:class:`TrialBudget` is the one place that counts trials against a run's budget and decides to give up.

Executors: :class:`InProcessExecutor` (one trial after the other), :class:`BatchedExecutor` (a batch of trials
per vectorized backtest) and ``ludus.cluster.dispatch.RayExecutor`` (trials on Ray actors); all keep the
invariants written on :class:`BaseExecutor`.
"""

from __future__ import annotations

import logging
import math
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

import optuna
from optuna.trial import FrozenTrial, TrialState

from ludus.errors import LudusError

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Self

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

#: user attribute holding why a trial failed (shown by optuna-dashboard)
FAIL_REASON_ATTR = "fail_reason"
#: user attribute holding why a trial was pruned
PRUNE_REASON_ATTR = "prune_reason"


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

    The trial is recorded as FAIL with the message as its reason; the search goes on (up to the give-up rules
    of :class:`BaseExecutor`).
    """


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
        trial.set_user_attr(
            FAIL_REASON_ATTR if outcome.state == TrialState.FAIL else PRUNE_REASON_ATTR, outcome.reason[:1000]
        )
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


# --- the executor contract ------------------------------------------------------------------------------


class GiveUp(str, Enum):
    """Why :meth:`BaseExecutor.run` stopped with :class:`TooManyFailedTrials`."""

    MAX_FAILURES = "max_failures"  # the failures of this call reached max_failures
    NOTHING_WORKED = "nothing_worked"  # the first NOTHING_WORKED_AFTER trials of this call all failed


#: a run gives up when this many of its trials failed and none completed or was pruned
NOTHING_WORKED_AFTER = 5


def default_max_failures(n_trials: int) -> int:
    """The give-up threshold of a run of ``n_trials`` when the executor sets none."""
    return max(NOTHING_WORKED_AFTER, int(n_trials) // 2)


class TooManyFailedTrials(LudusError):
    """A run gave up: the objective fails systematically.

    ``rule`` says which limit was hit, ``failed``/``finished`` count this run's trials, ``reasons`` are the
    distinct fail reasons in the order they first appeared (the message names the first three).
    """

    def __init__(self, rule: GiveUp, failed: int, finished: int, reasons: list[str], limit: int) -> None:
        self.rule = rule
        self.failed = failed
        self.finished = finished
        self.reasons = list(reasons)
        self.limit = limit
        why = f"max_failures={limit} reached" if rule == GiveUp.MAX_FAILURES else f"the first {limit} all failed"
        super().__init__(
            f"{failed} of {finished} trials failed ({why}) - stopping the search; reasons: "
            + "; ".join(self.reasons[:3])
        )


class ExecutorClosedError(LudusError):
    """``run`` or ``map`` on an executor after its ``close()``."""


def abandon_trial(study: optuna.Study, trial: optuna.Trial, why: str) -> None:
    """Finish a started trial as FAIL with ``why``, unless it is finished already (then it keeps its ending)."""
    try:
        if study._storage.get_trial(trial._trial_id).state.is_finished():
            return
        tell_trial(study, trial, TrialOutcome.failed(why))
    except Exception:  # storage gone too: open_study marks leftovers FAIL when the job resumes
        log.exception("could not mark trial %s failed", trial.number)


class TrialBudget:
    """One ``run`` call's bookkeeping; every executor uses it, so the contract's arithmetic has one home.

    :meth:`ask` starts a trial (never more than ``n_trials``, none once the deadline passed), :meth:`told`
    counts a finished one, calls the callback and gives up when the failures say so. Leaving the ``with`` block
    finishes every started trial not yet told as FAIL with why the search stopped.
    """

    def __init__(
        self,
        study: optuna.Study,
        n_trials: int,
        timeout_s: float | None,
        max_failures: int | None,
        on_trial_done: TrialCallback | None,
    ) -> None:
        self.study = study
        self.n_trials = max(0, int(n_trials))
        self.deadline = None if timeout_s is None else time.monotonic() + max(0.0, float(timeout_s))
        limit = default_max_failures(self.n_trials) if max_failures is None else int(max_failures)
        if limit < 1:
            raise ValueError(f"max_failures={max_failures}: must be >= 1")
        self.max_failures = limit
        self.on_trial_done = on_trial_done
        self.started = 0
        self.finished = 0
        self.failed = 0
        self.reasons: list[str] = []
        self._pending: dict[int, optuna.Trial] = {}  # number -> started and not told yet

    def seconds_left(self) -> float | None:
        """Until the deadline (0 once passed); None without a timeout."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())

    def may_start(self, wanted: int = 1) -> int:
        """How many of ``wanted`` new trials may start now."""
        if self.deadline is not None and time.monotonic() >= self.deadline:
            return 0
        return max(0, min(int(wanted), self.n_trials - self.started))

    def ask(self, trial_fn: TrialFunction) -> tuple[optuna.Trial, dict[str, Any]]:
        """Start one trial of the budget: ask the study and suggest its parameters."""
        if self.started >= self.n_trials:
            raise RuntimeError(f"all {self.n_trials} trials of this run were started already")
        trial, params = ask_trial(self.study, trial_fn)
        self.started += 1
        self._pending[trial.number] = trial
        return trial, params

    def told(self, frozen: FrozenTrial) -> None:
        """A started trial was told its ending: count it, call back, give up when the failures say so."""
        if self._pending.pop(frozen.number, None) is None:
            raise RuntimeError(f"trial {frozen.number} was not started by this run or was told twice")
        self.finished += 1
        if frozen.state == TrialState.FAIL:
            self.failed += 1
            reason = str(frozen.user_attrs.get(FAIL_REASON_ATTR, "unknown"))
            if reason not in self.reasons:
                self.reasons.append(reason)
        if self.on_trial_done is not None:
            self.on_trial_done(self.study, frozen)
        if self.failed >= NOTHING_WORKED_AFTER and self.failed == self.finished:
            raise TooManyFailedTrials(
                GiveUp.NOTHING_WORKED, self.failed, self.finished, self.reasons, NOTHING_WORKED_AFTER
            )
        if self.failed >= self.max_failures:
            raise TooManyFailedTrials(GiveUp.MAX_FAILURES, self.failed, self.finished, self.reasons, self.max_failures)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._pending:
            why = f"search stopped: {type(exc).__name__}: {exc}" if exc is not None else "search stopped"
            for trial in self._pending.values():
                abandon_trial(self.study, trial, why)
            self._pending.clear()


class BaseExecutor(ABC):
    """Runs the trials of an Optuna study, and maps plain functions over items (label chunks).

    Every executor keeps these invariants (``tests/search/test_executor_contract.py`` checks each one on the
    in-process, the batched and the Ray executor):

    ``run(study, trial_fn, n_trials, timeout_s=None, on_trial_done=None)``

    1. Budget: the call starts at most ``n_trials`` new trials (``n_trials <= 0``: none, and no worker starts)
       and returns only once every trial it started is finished - COMPLETE, PRUNED or FAIL. Without a timeout
       or a give-up, exactly ``n_trials`` new trials finish. A FAIL counts towards ``n_trials`` like any other
       ending (a configuration was tried, as in ``study.optimize``), so ``storage.missing_trials`` is exact.
    2. Resume: trials already in the study are never re-run and do not count, so ``run(study, fn,
       missing_trials(study, target))`` completes an interrupted search; enqueued (WAITING) trials go first.
    3. Endings: a finite value is COMPLETE; ``TrialPruned`` is PRUNED with ``prune_reason`` (never a failure);
       ``TrialFailed``, any other exception or a non-finite value is FAIL with ``fail_reason``, and the search
       goes on. Pruners are asked where the executor can (a vectorized batch cannot be pruned): pruning saves
       time, it never decides correctness.
    4. Give-up: :class:`TooManyFailedTrials` (its ``rule``, counts and distinct ``reasons``) when this call's
       failures reach ``max_failures`` (:attr:`max_failures`, default :func:`default_max_failures`;
       ``GiveUp.MAX_FAILURES``), or when its first ``NOTHING_WORKED_AFTER`` finished trials all failed
       (``GiveUp.NOTHING_WORKED``). Below both limits ``run`` returns, even when no trial completed (a run of
       three trials that all failed): the caller looks at the study.
    5. Lost workers: a trial whose worker (actor, node) died has not ended: the same Optuna trial (number,
       parameters) runs again on another worker, up to the executor's ``max_attempts``, recording
       ``retries`` and ``retry_reasons``; then it is FAIL (its worker died every time). An in-process worker is
       the caller itself: when it dies, ``open_study`` marks the trial FAIL (interrupted, not counted) on resume.
    6. Nothing stays RUNNING: when ``run`` stops early (give-up, an exception from the callback or from
       ``suggest``, Ctrl-C) every trial it started is finished before the error propagates: a trial already
       told keeps its ending, the others are FAIL with ``search stopped: <why>``.
    7. Timeout: counted from the start of the call; once it passed no trial starts (``timeout_s=0``: none),
       trials already started finish and count. ``None``: no limit.
    8. Callback: ``on_trial_done(study, frozen_trial)`` runs in the caller's thread once per trial this call
       told (COMPLETE, PRUNED and FAIL), after the trial is stored, in the order they were told, until the run
       stops (6): none runs after the stopping error, so the trials finished with or after it get none. An
       exception from the callback stops the run (6) and propagates.

    ``map(fn, items)`` is ``[fn(x) for x in items]`` in the items' order wherever each ran (``[]`` for no items,
    no worker started). An exception from ``fn`` propagates as an instance of its own type (one item's, when
    several fail); an item whose worker died runs again elsewhere. After ``run`` or ``map`` raised, the
    executor serves the next call.

    ``close()`` releases the workers; calling it again does nothing; afterwards ``run`` and ``map`` raise
    :class:`ExecutorClosedError`. ``with executor:`` closes on exit.
    """

    #: give-up threshold of each run (None: default_max_failures(n_trials)); class defaults, so that a
    #: subclass need not call __init__
    max_failures: int | None = None
    _closed: bool = False

    @abstractmethod
    def run(
        self,
        study: optuna.Study,
        trial_fn: TrialFunction,
        n_trials: int,
        timeout_s: float | None = None,
        on_trial_done: TrialCallback | None = None,
    ) -> None:
        """Run ``n_trials`` new trials of ``study`` (see the class doc for what is guaranteed)."""

    @abstractmethod
    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """``[fn(x) for x in items]``, possibly in parallel; order kept."""

    def close(self) -> None:
        """Release the workers (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._release()

    @property
    def closed(self) -> bool:
        return self._closed

    def _release(self) -> None:  # noqa: B027 - an optional hook, not an abstract method
        """What :meth:`close` frees, once (workers, actors); nothing by default."""

    def _check_open(self) -> None:
        if self._closed:
            raise ExecutorClosedError(f"this {type(self).__name__} is closed")

    def _budget(
        self, study: optuna.Study, n_trials: int, timeout_s: float | None, on_trial_done: TrialCallback | None
    ) -> TrialBudget:
        return TrialBudget(study, n_trials, timeout_s, self.max_failures, on_trial_done)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: the name callers annotate with (the pipeline, the worker)
Executor = BaseExecutor


class InProcessExecutor(BaseExecutor):
    """Trials one after the other in this process (tests, ``--no-ray``); ``map`` is a plain map."""

    def __init__(self, *, max_failures: int | None = None) -> None:
        self.max_failures = max_failures

    def run(
        self,
        study: optuna.Study,
        trial_fn: TrialFunction,
        n_trials: int,
        timeout_s: float | None = None,
        on_trial_done: TrialCallback | None = None,
    ) -> None:
        self._check_open()
        with self._budget(study, n_trials, timeout_s, on_trial_done) as budget:
            while budget.may_start():
                trial, params = budget.ask(trial_fn)
                outcome = evaluate(trial_fn, OptunaTrialContext(trial, params))
                budget.told(tell_trial(study, trial, outcome))

    def map(self, fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
        self._check_open()
        return [fn(item) for item in items]


class BatchedExecutor(InProcessExecutor):
    """Trials asked ``batch_size`` at a time and scored by one vectorized call, in this process.

    An objective with ``evaluate_batch(list_of_params) -> list_of_values`` (the batched backtest) scores a whole
    batch at once (TPE with ``constant_liar`` spreads a batch's points); a batch that raises, or an objective
    without it, is evaluated trial by trial, so only the offending parameters fail and pruning works there.
    """

    def __init__(self, batch_size: int = 32, *, max_failures: int | None = None) -> None:
        super().__init__(max_failures=max_failures)
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size}: must be >= 1")
        self.batch_size = int(batch_size)

    def run(
        self,
        study: optuna.Study,
        trial_fn: TrialFunction,
        n_trials: int,
        timeout_s: float | None = None,
        on_trial_done: TrialCallback | None = None,
    ) -> None:
        self._check_open()
        with self._budget(study, n_trials, timeout_s, on_trial_done) as budget:
            while size := budget.may_start(self.batch_size):
                asked = [budget.ask(trial_fn) for _ in range(size)]
                # the whole batch is stored before the first callback: a give-up there keeps the others' endings
                told = [
                    tell_trial(study, trial, outcome)
                    for (trial, _), outcome in zip(asked, self._evaluate(trial_fn, asked), strict=True)
                ]
                for frozen in told:
                    budget.told(frozen)

    @staticmethod
    def _evaluate(trial_fn: TrialFunction, asked: list[tuple[optuna.Trial, dict[str, Any]]]) -> list[TrialOutcome]:
        evaluate_batch = getattr(trial_fn, "evaluate_batch", None)
        if evaluate_batch is not None:
            start = time.perf_counter()
            try:
                values = [float(v) for v in evaluate_batch([params for _, params in asked])]
            except Exception:  # noqa: BLE001 - isolate the bad parameters, trial by trial (below)
                values = None
            if values is not None and len(values) == len(asked):
                each = (time.perf_counter() - start) / len(asked)
                return [
                    TrialOutcome(TrialState.COMPLETE, v, None, each)
                    if math.isfinite(v)
                    else TrialOutcome.failed(f"objective is not finite ({v})", each)
                    for v in values
                ]
        return [evaluate(trial_fn, OptunaTrialContext(trial, params)) for trial, params in asked]


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if hasattr(value, "item"):
            value = value.item()
        out[key] = value if isinstance(value, (int, float, str, bool)) or value is None else str(value)
    return out

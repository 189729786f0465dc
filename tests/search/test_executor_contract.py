"""One contract suite over every executor (the Optuna storage-test way): ``BaseExecutor``'s invariants.

Each test runs on the in-process executor, the batched executor and the Ray executor (on the session's local
Ray, one actor pool shared by the module so that the suite costs seconds). The multi-node failure tests (node
removal, actors killed from outside, placement) stay in ``tests/cluster``.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from ludus.search.storage import INTERRUPTED_ATTR, finished_trials, missing_trials, open_study
from ludus.search.trial import (
    FAIL_REASON_ATTR,
    NOTHING_WORKED_AFTER,
    PRUNE_REASON_ATTR,
    BaseExecutor,
    BatchedExecutor,
    ExecutorClosedError,
    GiveUp,
    InProcessExecutor,
    TooManyFailedTrials,
    TrialFailed,
)
from tests.helpers.pickling import pickled_by_value

EXECUTORS = ["in_process", "batched", "ray"]
#: executors whose trials run in worker processes that can die under them
WORKER_EXECUTORS = ["ray"]
BATCH = 4


class Line:
    """The objective ``x`` over x in [0, 1], with scripted endings: reports ``x * (step + 1)`` at steps 0 and 1,
    then fails above ``fail_above`` (reason "diverged low|high" by x), prunes above ``prune_above``, holds
    every trial until ``hold_until`` (time.monotonic), and kills its worker process on the first attempt of
    trial ``die_on`` (every attempt with ``die_always``), which ``marks`` (a directory) remembers."""

    def __init__(
        self,
        *,
        fail_above: float | None = None,
        prune_above: float | None = None,
        hold_until: float | None = None,
        die_on: int | None = None,
        marks: str | None = None,
        die_always: bool = False,
    ) -> None:
        self.fail_above = fail_above
        self.prune_above = prune_above
        self.hold_until = hold_until
        self.die_on = die_on
        self.marks = marks
        self.die_always = die_always
        self.batches: list[int] = []  # batch sizes evaluate_batch saw (in this process only)

    def suggest(self, trial: optuna.Trial) -> dict:
        return {"x": trial.suggest_float("x", 0.0, 1.0)}

    def _bad(self, x: float) -> bool:
        return any(limit is not None and x > limit for limit in (self.fail_above, self.prune_above))

    def _hold(self) -> None:
        while self.hold_until is not None and time.monotonic() < self.hold_until:
            time.sleep(0.005)

    def __call__(self, ctx) -> float:
        x = ctx.params["x"]
        if self.die_on is not None and ctx.number == self.die_on:
            mark = Path(self.marks) / str(ctx.number)
            if self.die_always or not mark.exists():
                mark.touch()
                os._exit(1)  # the worker dies mid-trial, as on an OOM kill
        self._hold()
        for step in range(2):
            ctx.report(x * (step + 1), step)
        if self.fail_above is not None and x > self.fail_above:
            raise TrialFailed("diverged low" if x < 0.5 else "diverged high")
        if self.prune_above is not None and x > self.prune_above:
            raise optuna.TrialPruned(f"pruned at x={x:.2f}")
        return x

    def evaluate_batch(self, params: list[dict]) -> list[float]:
        """The batched executor's vectorized path: one call per batch; a bad point makes the batch raise."""
        self.batches.append(len(params))
        self._hold()
        if any(self._bad(p["x"]) for p in params):
            raise ValueError("a point of this batch cannot be scored in the batch")
        return [p["x"] for p in params]


def ordered(item: int) -> int:
    time.sleep(0.01 * (8 - item))  # later items finish first where items run in parallel
    return item * item


def fails_on_three(item: int) -> int:
    if item == 3:
        raise ValueError(f"item {item} is bad")
    return item


@pytest.fixture(scope="module")
def ray_pool():
    """The module's Ray executor, started on first use (on the local Ray that ``ray_local`` provides)."""
    with pickled_by_value(sys.modules[__name__]):
        pool: dict[str, BaseExecutor] = {}
        yield pool
        for executor in pool.values():
            executor.close()


def _new_ray_executor(**kwargs):
    from ludus.cluster.dispatch import RayExecutor
    from ludus.config import Settings

    settings = Settings(gpus_per_trial=0, cpus_per_actor=0.5, max_actors=2, device="cpu")
    return RayExecutor(settings, None, job_id=f"contract-{uuid.uuid4().hex[:8]}", **kwargs)


def _shared_ray_executor(request) -> BaseExecutor:
    request.getfixturevalue("ray_local")
    pool = request.getfixturevalue("ray_pool")
    if "ray" not in pool:
        pool["ray"] = _new_ray_executor()
    return pool["ray"]


@pytest.fixture(params=EXECUTORS)
def make(request):
    """``make(max_failures=None)``: the executor under test with that give-up threshold (closed afterwards,
    except the shared Ray pool, which gets its defaults back)."""
    made: list[BaseExecutor] = []
    shared = _shared_ray_executor(request) if request.param == "ray" else None

    def factory(max_failures: int | None = None) -> BaseExecutor:
        if shared is not None:
            shared.max_failures = max_failures
            return shared
        ex = (
            InProcessExecutor(max_failures=max_failures)
            if request.param == "in_process"
            else BatchedExecutor(BATCH, max_failures=max_failures)
        )
        made.append(ex)
        return ex

    yield factory
    for ex in made:
        ex.close()
    if shared is not None:
        shared.max_failures = None


@pytest.fixture(params=EXECUTORS)
def make_fresh(request):
    """A new executor of each kind (for close): the Ray one gets its own pool."""
    made: list[BaseExecutor] = []

    def factory() -> BaseExecutor:
        if request.param == "ray":
            request.getfixturevalue("ray_local")
            request.getfixturevalue("ray_pool")  # registers pickling by value
            ex = _new_ray_executor(max_actors=1)
        else:
            ex = InProcessExecutor() if request.param == "in_process" else BatchedExecutor(BATCH)
        made.append(ex)
        return ex

    yield factory
    for ex in made:
        ex.close()


def _study(xs: list[float] = (), **kwargs) -> optuna.Study:
    # NopPruner: no prune broker actor per Ray run; the tests prune explicitly
    study = optuna.create_study(
        direction="maximize", sampler=optuna.samplers.RandomSampler(seed=3), pruner=optuna.pruners.NopPruner(), **kwargs
    )
    for x in xs:
        study.enqueue_trial({"x": x})
    return study


def _by_state(study: optuna.Study) -> dict[TrialState, list[optuna.trial.FrozenTrial]]:
    out: dict[TrialState, list] = {}
    for t in study.get_trials(deepcopy=False):
        out.setdefault(t.state, []).append(t)
    return out


def _started(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """Trials a run started (enqueued ones it never reached stay WAITING)."""
    return [t for t in study.get_trials(deepcopy=False) if t.state != TrialState.WAITING]


# --- run: the budget ----------------------------------------------------------------------------------


def test_every_executor_is_a_base_executor(make):
    assert isinstance(make(), BaseExecutor)


def test_run_finishes_exactly_n_new_trials(make):
    study = _study()
    seen = []
    make().run(study, Line(), 5, None, lambda s, t: seen.append(t.number))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 5
    assert sorted(seen) == [t.number for t in study.trials]
    assert all(t.value == t.params["x"] for t in study.trials)


def test_failed_and_pruned_trials_count_towards_the_budget_with_their_reasons(make):
    xs = [0.1, 0.95, 0.2, 0.6, 0.3, 0.97]
    study = _study(xs)
    endings = []
    make().run(study, Line(fail_above=0.9, prune_above=0.5), len(xs), None, lambda s, t: endings.append(t.state))
    by = _by_state(study)
    assert sorted(t.params["x"] for t in by[TrialState.COMPLETE]) == [0.1, 0.2, 0.3]
    assert sorted(t.params["x"] for t in by[TrialState.FAIL]) == [0.95, 0.97]
    assert [t.params["x"] for t in by[TrialState.PRUNED]] == [0.6]
    assert len(study.trials) == len(xs) and len(endings) == len(xs)  # no failure was replaced
    assert {t.user_attrs[FAIL_REASON_ATTR] for t in by[TrialState.FAIL]} == {"diverged high"}
    (pruned,) = by[TrialState.PRUNED]
    assert pruned.user_attrs[PRUNE_REASON_ATTR] == "pruned at x=0.60"
    assert pruned.intermediate_values == {0: 0.6, 1: 1.2}


def test_pruned_trials_never_make_the_run_give_up(make):
    study = _study([0.7] * 8)
    make(max_failures=2).run(study, Line(prune_above=0.5), 8, None, None)
    assert [t.state for t in study.trials] == [TrialState.PRUNED] * 8


def test_systematic_failure_gives_up_with_the_distinct_reasons(make):
    study = _study([0.1, 0.9, 0.2, 0.8, 0.3])
    seen = []
    with pytest.raises(TooManyFailedTrials, match="diverged") as err:
        make().run(study, Line(fail_above=-1.0), 20, None, lambda s, t: seen.append(t.number))
    assert err.value.rule == GiveUp.NOTHING_WORKED
    assert err.value.failed == err.value.finished == NOTHING_WORKED_AFTER == len(seen)
    assert sorted(err.value.reasons) == ["diverged high", "diverged low"]  # distinct, whatever the order
    started = _started(study)
    assert NOTHING_WORKED_AFTER <= len(started) < 20
    assert all(t.state == TrialState.FAIL for t in started), "nothing left RUNNING"


def test_max_failures_gives_up_even_when_other_trials_work(make):
    study = _study([0.1, 0.95, 0.2, 0.96, 0.3, 0.4])
    with pytest.raises(TooManyFailedTrials, match="max_failures=2") as err:
        make(max_failures=2).run(study, Line(fail_above=0.9), 10, None, None)
    assert err.value.rule == GiveUp.MAX_FAILURES and err.value.limit == 2
    assert err.value.failed == 2 and err.value.finished >= 3 and err.value.reasons == ["diverged high"]
    started = _started(study)
    assert any(t.state == TrialState.COMPLETE for t in started)
    assert all(t.state.is_finished() for t in started)


def test_resume_runs_only_the_missing_trials(make, tmp_path):
    url = f"sqlite:///{tmp_path / 'resume.db'}"
    name = f"contract-{uuid.uuid4().hex[:8]}"
    ex = make()
    study = open_study(url, name, sampler=optuna.samplers.RandomSampler(seed=1), pruner=optuna.pruners.NopPruner())
    ex.run(study, Line(), 3, None, None)
    before = {t.number: t.value for t in study.trials}
    study.ask()  # a crash mid-trial leaves it RUNNING

    resumed = open_study(url, name, sampler=optuna.samplers.RandomSampler(seed=2), pruner=optuna.pruners.NopPruner())
    assert resumed.trials[3].user_attrs[INTERRUPTED_ATTR] is True
    todo = missing_trials(resumed, 5)
    assert todo == 2
    ex.run(resumed, Line(), todo, None, None)
    trials = resumed.get_trials()
    assert {t.number: t.value for t in trials[:3]} == before  # finished trials were not run again
    assert [t.state for t in trials[4:]] == [TrialState.COMPLETE] * 2
    assert finished_trials(resumed) == 5 and missing_trials(resumed, 5) == 0


# --- run: time and callbacks --------------------------------------------------------------------------


def test_timeout_zero_starts_no_trial(make):
    study = _study()
    seen = []
    make().run(study, Line(), 5, 0.0, lambda s, t: seen.append(t))
    assert study.trials == [] and seen == []


def test_no_trial_starts_after_the_timeout_and_started_ones_finish(make):
    ex = make()
    assert ex.map(abs, [-1, -2]) == [1, 2]  # workers up before the clock starts
    study = _study()
    seen = []
    start = time.monotonic()
    # every trial holds until after the deadline: only those started before it may exist
    ex.run(study, Line(hold_until=start + 1.0), 20, 0.5, lambda s, t: seen.append(t.number))
    trials = study.trials
    assert 1 <= len(trials) < 20
    assert all(t.state == TrialState.COMPLETE for t in trials), "started trials finish and count"
    assert sorted(seen) == [t.number for t in trials]


def test_callback_gets_each_stored_trial_once_in_the_callers_thread(make):
    study = _study([0.1, 0.95, 0.6])
    calls = []

    def callback(s, frozen):
        stored = s.get_trials(deepcopy=False)[frozen.number]
        calls.append(
            (threading.get_ident(), s is study, frozen.number, frozen.state, stored.state, frozen.datetime_complete)
        )

    make().run(study, Line(fail_above=0.9, prune_above=0.5), 6, None, callback)
    assert {c[0] for c in calls} == {threading.get_ident()} and all(c[1] for c in calls)
    assert sorted(c[2] for c in calls) == list(range(6))
    assert all(c[3] == c[4] and c[3].is_finished() for c in calls), "called after the trial is stored"
    completed_at = [c[5] for c in calls]
    assert completed_at == sorted(completed_at), "in the order the trials were told"
    assert {c[3] for c in calls} == {TrialState.COMPLETE, TrialState.FAIL, TrialState.PRUNED}


@pytest.mark.parametrize("stop", [RuntimeError, KeyboardInterrupt])
def test_an_exception_from_the_callback_stops_the_run_and_leaves_nothing_running(make, stop):
    ex = make()
    study = _study()

    def callback(s, frozen):  # KeyboardInterrupt: Ctrl-C reaching the caller's thread mid-search
        if len(s.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))) >= 2:
            raise stop("the caller had enough")

    with pytest.raises(stop, match="the caller had enough"):
        ex.run(study, Line(), 20, None, callback)
    trials = study.trials
    assert 2 <= len(trials) < 20
    assert all(t.state.is_finished() for t in trials)
    stopped = [t for t in trials if t.state == TrialState.FAIL]
    assert all(t.user_attrs[FAIL_REASON_ATTR].startswith(f"search stopped: {stop.__name__}") for t in stopped)

    ex.run(study, Line(), 2, None, None)  # the executor serves the next call
    assert len(study.trials) == len(trials) + 2 and study.trials[-1].state == TrialState.COMPLETE


class BadSpace(Line):
    """Its space cannot be sampled from the third trial on (a bug of the objective, not of one trial)."""

    def suggest(self, trial: optuna.Trial) -> dict:
        if trial.number >= 2:
            raise ValueError("model_space.width: low > high")
        return super().suggest(trial)


def test_an_error_in_suggest_stops_the_run_with_that_trial_failed(make):
    study = _study()
    with pytest.raises(ValueError, match="low > high"):
        make().run(study, BadSpace(), 10, None, None)
    trials = study.trials
    assert all(t.state.is_finished() for t in trials)
    bad = [t for t in trials if t.user_attrs.get(FAIL_REASON_ATTR, "").startswith("suggest failed: ValueError")]
    assert len(bad) == 1 and bad[0].number == 2
    assert not [t for t in trials if t.number > 2], "no trial starts after the error"


# --- map and close ------------------------------------------------------------------------------------


def test_map_keeps_the_order_and_raises_the_items_own_error(make):
    ex = make()
    assert ex.map(ordered, range(8)) == [i * i for i in range(8)]
    assert ex.map(ordered, (i for i in [3, 1])) == [9, 1]  # any iterable
    assert ex.map(ordered, []) == []
    with pytest.raises(ValueError, match="item 3 is bad"):
        ex.map(fails_on_three, range(6))
    assert ex.map(fails_on_three, [1, 2]) == [1, 2]  # the executor serves the next call


def test_close_is_idempotent_and_final(make_fresh):
    ex = make_fresh()
    study = _study()
    ex.run(study, Line(), 0, None, None)  # nothing to do: nothing starts
    assert study.trials == []
    with ex:
        ex.run(study, Line(), 2, None, None)
        assert ex.map(abs, [-3]) == [3]
    assert ex.closed
    ex.close()  # again: nothing happens
    assert ex.closed
    with pytest.raises(ExecutorClosedError):
        ex.run(study, Line(), 1, None, None)
    with pytest.raises(ExecutorClosedError):
        ex.map(abs, [])
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 2


# --- lost workers (executors whose trials run in other processes) -------------------------------------


@pytest.fixture(params=WORKER_EXECUTORS)
def make_with_workers(request):
    shared = _shared_ray_executor(request)
    yield shared
    shared.max_attempts = 3


def test_a_trial_whose_worker_died_runs_again_as_the_same_trial(make_with_workers, tmp_path):
    ex = make_with_workers
    study = _study([0.1, 0.2, 0.3, 0.4])
    retries = ex.retries
    ex.run(study, Line(die_on=1, marks=str(tmp_path)), 4, None, None)
    trials = study.trials
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4, "no extra trial, none lost"
    assert trials[1].params == {"x": 0.2} and trials[1].user_attrs["retries"] == 1
    assert "Error" in trials[1].user_attrs["retry_reasons"][0]
    assert ex.retries == retries + 1


def test_a_trial_that_kills_every_worker_fails_and_counts(make_with_workers, tmp_path):
    ex = make_with_workers
    ex.max_attempts = 2
    study = _study([0.1, 0.2])
    ex.run(study, Line(die_on=0, marks=str(tmp_path), die_always=True), 2, None, None)
    first, second = study.trials
    assert first.state == TrialState.FAIL and "died 2 times" in first.user_attrs[FAIL_REASON_ATTR]
    assert second.state == TrialState.COMPLETE and len(study.trials) == 2


# --- the batched executor's own promise ---------------------------------------------------------------


def test_batched_scores_a_batch_in_one_call_and_isolates_a_bad_point():
    objective = Line(fail_above=0.9)
    study = _study([0.1, 0.2, 0.3, 0.4, 0.5, 0.95, 0.6, 0.7, 0.8, 0.15])
    BatchedExecutor(BATCH).run(study, objective, 10, None, None)
    assert objective.batches == [4, 4, 2]  # the second batch raised and was scored trial by trial
    by = _by_state(study)
    assert [t.params["x"] for t in by[TrialState.FAIL]] == [0.95]
    assert len(by[TrialState.COMPLETE]) == 9
    vectorized = study.trials[0]
    assert vectorized.intermediate_values == {}  # a vectorized batch reports nothing and cannot be pruned
    assert study.trials[4].intermediate_values == {0: 0.5, 1: 1.0}  # scored alone: reported like any trial

"""The search layer on its own: samplers, studies in the database, resume, failed and pruned trials."""

from __future__ import annotations

import math
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from ludus.errors import InputError
from ludus.search.samplers import SAMPLERS, make_pruner, make_sampler
from ludus.search.storage import (
    INTERRUPTED_ATTR,
    best_trial,
    dispose_storage,
    finished_trials,
    missing_trials,
    open_study,
    study_name,
)
from ludus.search.trial import (
    FAIL_REASON_ATTR,
    Executor,
    InProcessExecutor,
    TrialContext,
    TrialFailed,
)


class Quadratic:
    """max -(x-0.3)^2 - (y-1)^2 ; reports two 'folds' so the pruner has something to compare."""

    def __init__(self, fail_when=None):
        self.fail_when = fail_when
        self.calls = 0

    def suggest(self, trial):
        return {"x": trial.suggest_float("x", -2.0, 2.0), "y": trial.suggest_int("y", 0, 3)}

    def __call__(self, ctx: TrialContext) -> float:
        self.calls += 1
        x, y = ctx.params["x"], ctx.params["y"]
        if self.fail_when is not None and self.fail_when(ctx):
            raise TrialFailed("training diverged (loss=nan)")
        value = -((x - 0.3) ** 2) - (y - 1) ** 2
        for step in range(2):
            ctx.report(value, step)
            if ctx.should_prune():
                raise optuna.TrialPruned()
        return value


def test_study_name_is_deterministic():
    job = uuid.UUID("12345678-1234-5678-1234-567812345678")
    assert study_name(job, "model", "SPX") == f"ludus-{job}-SPX-model"
    assert study_name(str(job), "static") == f"ludus-{job}-all-static"


@pytest.mark.parametrize("name", SAMPLERS)
def test_every_sampler_finds_a_reasonable_point(name):
    study = optuna.create_study(direction="maximize", sampler=make_sampler(name, seed=1, n_startup_trials=4))
    objective = Quadratic()
    InProcessExecutor().run(study, objective, 12, None, None)
    assert len(study.trials) == 12
    assert best_trial(study).value > -2.0  # the worst corner is about -9.3


def test_samplers_are_seeded():
    values = []
    for _ in range(2):
        study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", seed=7, n_startup_trials=3))
        InProcessExecutor().run(study, Quadratic(), 6, None, None)
        values.append([t.params["x"] for t in study.trials])
    assert values[0] == values[1]


def test_unknown_sampler_names_the_field():
    with pytest.raises(InputError) as err:
        make_sampler("annealing")
    assert err.value.field == "search.sampler" and "tpe" in err.value.rule


def test_failed_trial_is_recorded_with_reason_and_search_goes_on():
    study = optuna.create_study(direction="maximize", sampler=make_sampler("random", seed=0))
    objective = Quadratic(fail_when=lambda ctx: ctx.number % 2 == 1)
    done = []
    InProcessExecutor().run(study, objective, 6, None, lambda s, t: done.append(t.state))
    assert len(done) == 6
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(failed) == 3
    assert all(t.user_attrs[FAIL_REASON_ATTR] == "training diverged (loss=nan)" for t in failed)
    assert best_trial(study) is not None


def test_unexpected_errors_and_nan_fail_the_trial_only():
    calls = {"n": 0}

    class Bad:
        def suggest(self, trial):
            return {"x": trial.suggest_float("x", 0, 1)}

        def __call__(self, ctx):
            calls["n"] += 1
            if ctx.number == 0:
                raise RuntimeError("CUDA out of memory")
            return math.nan if ctx.number == 1 else ctx.params["x"]

    study = optuna.create_study(direction="maximize")
    InProcessExecutor().run(study, Bad(), 3, None, None)
    states = [t.state for t in study.trials]
    assert states == [TrialState.FAIL, TrialState.FAIL, TrialState.COMPLETE]
    assert "CUDA out of memory" in study.trials[0].user_attrs[FAIL_REASON_ATTR]
    assert "not finite" in study.trials[1].user_attrs[FAIL_REASON_ATTR]


def test_pruning_between_folds():
    class Folds:
        def suggest(self, trial):
            return {"x": trial.suggest_float("x", 0, 1)}

        def __call__(self, ctx):
            total = 0.0
            for step in range(4):
                # trials after the first few are worse at every fold: the median pruner stops them
                total += 1.0 if ctx.number < 3 else -1.0
                ctx.report(total, step)
                if ctx.should_prune():
                    raise optuna.TrialPruned(f"pruned at fold {step}")
            return total

    study = optuna.create_study(direction="maximize", pruner=make_pruner(n_startup_trials=3))
    InProcessExecutor().run(study, Folds(), 6, None, None)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert len(pruned) == 3
    assert all(len(t.intermediate_values) == 1 for t in pruned)


def test_timeout_stops_asking_new_trials():
    study = optuna.create_study(direction="maximize")
    InProcessExecutor().run(study, Quadratic(), 100, 0.0, None)
    assert len(study.trials) == 0


def test_in_process_executor_is_an_executor():
    ex = InProcessExecutor()
    assert isinstance(ex, Executor)
    assert ex.map(lambda v: v * 2, [1, 2, 3]) == [2, 4, 6]
    ex.close()


def test_resume_runs_only_missing_trials_and_fails_stale_running(db_url):
    name = study_name(uuid.uuid4(), "model", "SPX")
    attrs = {"job_id": "j", "symbol": "SPX", "phase": "model_search"}
    study = open_study(db_url, name, sampler=make_sampler("tpe", 0), user_attrs=attrs)
    objective = Quadratic()
    InProcessExecutor().run(study, objective, 3, None, None)
    crashed = study.ask()  # a crash in the middle of a trial leaves it RUNNING
    assert crashed.number == 3

    resumed = open_study(db_url, name, sampler=make_sampler("tpe", 3), user_attrs=attrs)
    trials = resumed.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3 + [TrialState.FAIL]
    assert trials[3].user_attrs[INTERRUPTED_ATTR] is True
    assert "interrupted" in trials[3].user_attrs[FAIL_REASON_ATTR]
    assert finished_trials(resumed) == 3
    assert missing_trials(resumed, 5) == 2

    objective.calls = 0
    InProcessExecutor().run(resumed, objective, missing_trials(resumed, 5), None, None)
    assert objective.calls == 2
    assert finished_trials(resumed) == 5 and missing_trials(resumed, 5) == 0
    assert resumed.user_attrs["job_id"] == "j"

    fresh = open_study(db_url, name, sampler=make_sampler("tpe", 0), resume=False)
    assert len(fresh.trials) == 0
    dispose_storage(db_url)

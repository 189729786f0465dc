"""RayExecutor on a real three-node Ray cluster: placement by architecture, kills, node loss, failures."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from ludus.cluster.dispatch import RayExecutor, TooManyFailedTrials
from ludus.config import Settings
from ludus.search.samplers import make_pruner, make_sampler
from tests.cluster.conftest import arch_node_args
from tests.helpers.pickling import pickled_by_value
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.usefixtures("ray_cluster")


@pytest.fixture(autouse=True, scope="module")
def _pickle_objectives_by_value():
    with pickled_by_value(sys.modules[__name__]):
        yield


SETTINGS = Settings(gpus_per_trial=0.5, cpus_per_actor=0.5, max_actors=8, device="auto")


class SleepObjective:
    """A cheap objective that takes long enough for a kill to land mid-trial."""

    def __init__(self, sleep_s: float = 0.2, fail_if_x_above: float | None = None) -> None:
        self.sleep_s = sleep_s
        self.fail_if_x_above = fail_if_x_above

    def suggest(self, trial):
        return {"x": trial.suggest_float("x", -3.0, 3.0)}

    def __call__(self, ctx) -> float:
        time.sleep(self.sleep_s)
        x = ctx.params["x"]
        if self.fail_if_x_above is not None and x > self.fail_if_x_above:
            raise FloatingPointError(f"loss diverged for x={x:.3f}")
        return -((x - 1.0) ** 2)


def _study(**kw) -> optuna.Study:
    return optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 0), **kw)


def _states(study) -> Counter:
    return Counter(t.state for t in study.get_trials(deepcopy=False))


def test_trials_run_on_both_architectures_with_gpu_shares():
    study = _study()
    with RayExecutor(SETTINGS, None, job_id="11111111-0000-0000-0000-000000000000") as ex:
        assert ex.start(wait_all=True) == 4  # two 0.5-GPU actors per GPU node, none on the GPU-less head
        ex.run(study, SleepObjective(0.1), 12, None, None)
        actors = ex.actors()
        assert sorted(a["arch"] for a in actors) == ["arm64", "arm64", "x86_64", "x86_64"]
        assert all(a["gpu_ids"] for a in actors), "each actor holds a share of its node's (logical) GPU"
        assert all(a["actor"].startswith("ludus-trial-11111111-") for a in actors)
        # map over the same actors, order kept, spread over more than one process
        out = ex.map(_pid_of, list(range(16)))
        assert [i for i, _ in out] == list(range(16))
        assert len({pid for _, pid in out}) > 1
    assert _states(study) == {TrialState.COMPLETE: 12}
    archs = Counter(t.user_attrs["arch"] for t in study.trials)
    assert set(archs) == {"x86_64", "arm64"}
    assert all(t.user_attrs["node"]["node_id"] for t in study.trials)


def _pid_of(i: int) -> tuple[int, int]:
    time.sleep(0.02)
    return i, os.getpid()


def test_arm64_only_job_never_touches_x86(ray_cluster):
    study = _study()
    x86_node = ray_cluster.arch_nodes["x86_64"].node_id
    arm_node = ray_cluster.arch_nodes["arm64"].node_id
    with RayExecutor(SETTINGS, {"require": ["arm64"]}) as ex:
        assert ex.start(wait_all=True) == 2
        ex.run(study, SleepObjective(0.05), 6, None, None)
        assert {a["node_id"] for a in ex.actors()} == {arm_node}
    nodes = {t.user_attrs["node"]["node_id"] for t in study.trials}
    assert nodes == {arm_node} and x86_node not in nodes
    assert {t.user_attrs["arch"] for t in study.trials} == {"arm64"}
    # exclude is the same wish said the other way round
    study2 = _study()
    with RayExecutor(SETTINGS, {"exclude": ["x86_64"]}) as ex:
        ex.run(study2, SleepObjective(0.0), 3, None, None)
    assert {t.user_attrs["arch"] for t in study2.trials} == {"arm64"}


def test_actor_killed_mid_trial_is_retried_elsewhere():
    study = _study()
    killed: list[int] = []

    with RayExecutor(SETTINGS, None) as ex:

        def kill_a_busy_actor(study, frozen):
            if killed or frozen.number < 1:
                return
            finisher = frozen.user_attrs["node"]["actor"]
            victim = next(a for a in ex.actors() if a["actor"] != finisher)  # the others are mid-trial
            os.kill(victim["pid"], signal.SIGKILL)
            killed.append(victim["pid"])

        ex.start(wait_all=True)
        ex.run(study, SleepObjective(0.4), 14, None, kill_a_busy_actor)
        assert killed and killed[0] not in {a["pid"] for a in ex.actors()}
        assert len(ex.actors(include_starting=True)) == 4, "the lost actor was replaced"
    assert ex.retries >= 1
    states = _states(study)
    assert states == {TrialState.COMPLETE: 14}, states
    retried = [t for t in study.trials if t.user_attrs.get("retries")]
    assert retried and "ActorDiedError" in retried[0].user_attrs["retry_reasons"][0]


def test_node_removed_mid_job_run_still_completes(ray_cluster):
    extra = ray_cluster.add_node(**arch_node_args("x86_64"))
    ray_cluster.wait_for_nodes()
    study = _study()
    removed: list[str] = []

    def remove_extra_node():
        ray_cluster.remove_node(extra, allow_graceful=False)
        removed.append(extra.node_id)

    # Removed from a timer half-way through a 1 s trial: the trials all run in step, so removing it from
    # the completion callback itself could catch the node's actors between trials and nothing would be lost.
    timer = threading.Timer(0.5, remove_extra_node)
    with RayExecutor(SETTINGS, {"require": ["x86_64"]}) as ex:

        def arm_removal(study, frozen):
            if frozen.number >= 2 and not timer.is_alive() and not removed:
                timer.start()

        assert ex.start(wait_all=True) == 4
        assert extra.node_id in {a["node_id"] for a in ex.actors()}, "some actors run on the node to remove"
        ex.run(study, SleepObjective(1.0), 12, None, arm_removal)
    timer.join()
    assert removed
    states = _states(study)
    assert states == {TrialState.COMPLETE: 12}, states
    assert ex.retries >= 1
    survivors = {t.user_attrs["node"]["node_id"] for t in study.trials if t.user_attrs.get("retries")}
    assert survivors and extra.node_id not in survivors


def test_failing_trials_are_recorded_and_the_search_completes():
    study = _study()
    with RayExecutor(SETTINGS, None) as ex:
        ex.run(study, SleepObjective(0.0, fail_if_x_above=1.5), 10, None, None)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert failed, "x > 1.5 occurs within the first trials"
    assert all("FloatingPointError: loss diverged" in t.user_attrs["fail_reason"] for t in failed)
    # a failed trial counts towards the budget (the executor contract of ludus.search.trial.BaseExecutor)
    assert len(study.trials) == 10
    assert sum(t.state == TrialState.COMPLETE for t in study.trials) == 10 - len(failed)
    assert not any(t.state == TrialState.RUNNING for t in study.trials)


def test_systematic_failure_stops_with_a_clear_error():
    study = _study()
    with RayExecutor(SETTINGS, None) as ex, pytest.raises(TooManyFailedTrials, match="loss diverged"):
        ex.run(study, SleepObjective(0.0, fail_if_x_above=-10.0), 20, None, None)
    assert not any(t.state == TrialState.RUNNING for t in study.trials)
    assert all(t.state == TrialState.FAIL for t in study.trials)


class ReportingObjective:
    def suggest(self, trial):
        return {"x": trial.suggest_float("x", -3.0, 3.0)}

    def __call__(self, ctx) -> float:
        x = ctx.params["x"]
        value = 0.0
        for step in range(4):
            value = -abs(x - 1.0) * (step + 1)
            ctx.report(value, step)
            if ctx.should_prune():
                raise optuna.TrialPruned(f"pruned at step {step}")
        ctx.set_user_attr("steps_run", 4)
        return value


def test_pruning_from_actors_reaches_the_study():
    study = _study(pruner=make_pruner(n_startup_trials=3))
    study.enqueue_trial({"x": 1.0})  # a good trial completes first so bad ones can be pruned
    with RayExecutor(SETTINGS, None, max_actors=2) as ex:
        ex.run(study, ReportingObjective(), 16, None, None)
    states = _states(study)
    assert states[TrialState.PRUNED] >= 1, states
    assert states[TrialState.COMPLETE] + states[TrialState.PRUNED] == 16
    done = [t for t in study.trials if t.state == TrialState.COMPLETE]
    assert all(len(t.intermediate_values) == 4 and t.user_attrs["steps_run"] == 4 for t in done)
    pruned = [t for t in study.trials if t.state == TrialState.PRUNED]
    assert all(t.user_attrs["prune_reason"].startswith("pruned at step") for t in pruned)


def test_head_helpers_and_metrics_on_the_cluster(ray_cluster):
    from ludus.cluster import metrics
    from ludus.cluster.head import GaugeFeeder, connect_head, describe_nodes

    settings = connect_head(Settings(), "auto")
    assert settings.ray_address == "auto"
    rows = {r["arch"]: r for r in describe_nodes()}
    assert rows["arm64"]["marked_by"] == "resource+label" and rows["arm64"]["gpus"] == 1
    assert rows[None]["marked_by"] == "-"  # the head: unmarked, gets no trials
    metrics.set_bar_evals_per_second("job", 1.5e6)
    metrics.trial_finished("job", "arm64", "COMPLETE", 0.2)
    fed: list[int] = []
    feeder = GaugeFeeder(lambda: 1, lambda: fed.append(3) or 3, interval_s=0.05).start()
    wait_for(lambda: len(fed) >= 2, 30, "the gauge feeder to set the gauges twice")
    feeder.stop()

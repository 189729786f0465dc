"""The actor pool grows with the cluster: a job that starts with only the head gets actors as nodes join.

A real multi-node Ray cluster on this machine (``ray.cluster_utils.Cluster``). The head has no CPU and no GPU
for trials, like the KubeRay head (``num-cpus: 0``): scale-from-zero, the state KEDA and the Ray autoscaler
leave a cluster in when the backlog was empty. The job starts, waits for capacity instead of failing its
pool start, gets actors when the first worker node joins, and puts trials on a second node that joins while
it runs.
"""

from __future__ import annotations

import os
import sys
import threading
import time

import optuna
import pytest
from optuna.trial import TrialState

from ludus.cluster.dispatch import RayExecutor
from ludus.config import Settings
from ludus.errors import InputError
from ludus.search.samplers import make_sampler
from tests.cluster.conftest import arch_node_args, local_ray_cluster
from tests.helpers.pickling import pickled_by_value
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.ray

SETTINGS = Settings(gpus_per_trial=0.5, cpus_per_actor=0.5, max_actors=8, device="auto")


@pytest.fixture(autouse=True, scope="module")
def _pickle_objectives_by_value():
    with pickled_by_value(sys.modules[__name__]):
        yield


@pytest.fixture(scope="module")
def head_only_cluster():
    with local_ray_cluster(0) as cluster:
        yield cluster


class HeldObjective:
    """Sleeps ``sleep_s``; while the file ``<flags>/hold`` exists, trials also wait for ``<flags>/go`` (the
    actors run on this machine, so they see the test's files): the job is still running, with trials left,
    when the node added mid-job is ready - however slowly a loaded machine starts it."""

    def __init__(self, flags: str, sleep_s: float) -> None:
        self.flags = flags
        self.sleep_s = sleep_s

    def suggest(self, trial):
        return {"x": trial.suggest_float("x", -3.0, 3.0)}

    def __call__(self, ctx) -> float:
        time.sleep(self.sleep_s)
        deadline = time.monotonic() + 120
        while (
            os.path.exists(os.path.join(self.flags, "hold"))
            and not os.path.exists(os.path.join(self.flags, "go"))
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        return -((ctx.params["x"] - 1.0) ** 2)


_wait = wait_for


def test_a_local_ray_that_cannot_grow_rejects_the_job_at_once(head_only_cluster):
    """Without wait_for_nodes (an in-process local Ray never gains nodes) nothing can ever hold an actor."""
    with RayExecutor(SETTINGS, None, wait_for_nodes=False) as ex, pytest.raises(InputError, match="hold a trial"):
        ex.start()


def test_job_started_on_the_head_alone_gets_actors_as_nodes_join_and_uses_a_node_joining_mid_job(
    head_only_cluster, tmp_path
):
    cluster = head_only_cluster
    study = optuna.create_study(direction="maximize", sampler=make_sampler("tpe", 0))
    done: list[float] = []  # completion times
    errors: list[BaseException] = []
    joined: dict[str, tuple[str, float]] = {}
    ex = RayExecutor(
        SETTINGS,
        None,
        job_id="22222222-0000-0000-0000-000000000000",
        wait_for_nodes=True,
        actor_start_timeout_s=240,
        grow_interval_s=0.5,
    )

    def search() -> None:
        try:
            ex.run(study, HeldObjective(str(tmp_path), 0.2), 30, None, lambda s, t: done.append(time.monotonic()))
        except BaseException as exc:  # noqa: BLE001 - reported by the test below
            errors.append(exc)

    runner = threading.Thread(target=search, name="search", daemon=True)
    try:
        runner.start()
        time.sleep(3.0)  # the job is waiting for capacity: no node can hold an actor yet
        assert runner.is_alive() and not errors, errors
        assert ex.actors(include_starting=True) == [] and not done

        node = cluster.add_node(**arch_node_args("x86_64"))
        joined["x86_64"] = (node.node_id, time.monotonic())
        _wait(lambda: len(done) >= 4, 120, "trials on the first node")
        assert {a["node_id"] for a in ex.actors()} == {node.node_id}

        (tmp_path / "hold").touch()  # the running trials now wait for the new node
        node = cluster.add_node(**arch_node_args("arm64"))
        joined["arm64"] = (node.node_id, time.monotonic())
        _wait(lambda: node.node_id in {a["node_id"] for a in ex.actors()}, 120, "actors on the node that joined")
        assert runner.is_alive() and len(done) < 30
        (tmp_path / "go").touch()
        runner.join(timeout=240)
        assert not runner.is_alive() and not errors, errors
    finally:
        ex.close()
        runner.join(timeout=30)

    trials = study.get_trials(deepcopy=False)
    assert sum(t.state == TrialState.COMPLETE for t in trials) == 30
    by_node = {}
    for t in trials:
        by_node.setdefault(t.user_attrs["node"]["node_id"], []).append(t)
    x86_node, x86_joined = joined["x86_64"]
    arm_node, arm_joined = joined["arm64"]
    assert set(by_node) == {x86_node, arm_node}, "both nodes ran trials; the head none"
    assert min(done) > x86_joined  # nothing ran before the first node joined, and the pool start waited
    # the second node joined while the job ran: trials had finished before, and it then ran some itself
    assert sum(1 for when in done if when < arm_joined) >= 4
    assert len(by_node[arm_node]) >= 4  # 2 actors there, about 24 trials left when they came up
    assert {t.user_attrs["arch"] for t in by_node[arm_node]} == {"arm64"}

"""One real multi-node Ray cluster on this machine for the cluster tests (module-scoped: ~15 s to start).

Head (1 CPU, no GPU, unmarked), an x86-64 node and an ARM64 "Jetson" node, each with one logical GPU, marked
by the ``arch:*`` resource and the ``ludus.io/arch`` label the way real workers are started.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import pytest

from ludus.constants import ARCH_LABEL, ARCH_RESOURCE_PREFIX

# fast node-death detection so "remove a node mid-job" resolves in seconds
SYSTEM_CONFIG = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 1000,
    "health_check_failure_threshold": 3,
}


def arch_node_args(arch: str, *, num_cpus: float = 2, num_gpus: float = 1) -> dict:
    return {
        "num_cpus": num_cpus,
        "num_gpus": num_gpus,
        "resources": {f"{ARCH_RESOURCE_PREFIX}{arch}": 1000},
        "labels": {ARCH_LABEL: arch},
    }


@contextmanager
def local_ray_cluster(head_cpus: float, archs: Sequence[str] = ()) -> Iterator[Any]:
    """A Ray cluster on this machine, the driver connected and ``LUDUS_TEST_RAY_CLUSTER`` naming it: a head with
    ``head_cpus`` CPUs and no GPU, and one node per arch of ``archs`` (``cluster.arch_nodes``)."""
    import ray
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": head_cpus,
            "num_gpus": 0,
            "include_dashboard": False,
            "_system_config": SYSTEM_CONFIG,
        },
    )
    cluster.arch_nodes = {arch: cluster.add_node(**arch_node_args(arch)) for arch in archs}
    if archs:
        cluster.wait_for_nodes()
    ray.init(address=cluster.address, namespace="ludus-tests", log_to_driver=False)
    os.environ["LUDUS_TEST_RAY_CLUSTER"] = ray.get_runtime_context().gcs_address
    try:
        yield cluster
    finally:
        ray.shutdown()
        os.environ.pop("LUDUS_TEST_RAY_CLUSTER", None)
        cluster.shutdown()


@pytest.fixture(scope="module")
def ray_cluster():
    with local_ray_cluster(1, ("x86_64", "arm64")) as cluster:
        yield cluster

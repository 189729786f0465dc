"""Queue-depth autoscaling against Ray's real autoscaler on a fake multi-node cluster.

The head runs Ray's autoscaler (monitor) with the fake multi-node provider: "launching" a node starts
another raylet on this machine with the node type's resources and labels. The node types are the ones Ray's
KubeRay autoscaler derives from the rendered RayCluster (k8s/overlays/kuberay, through Ray's own code),
shrunk to this machine: 1 CPU, no memory claim, at most 2 nodes each.

``ray.cluster_utils.AutoscalingCluster`` is not used on purpose: it runs ``ray stop --force``, which
would kill every Ray process of this user on a shared machine. The same thing is assembled here from
``ray.cluster_utils.Cluster`` and the processes it started are ended by pid.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections import Counter
from pathlib import Path

import pytest

from ludus import constants as c
from ludus.cluster.autoscale import Backlog, QueueDepthAutoscaler
from ludus.config import Settings
from tests.helpers.wait import wait_for

pytestmark = pytest.mark.ray


def _node_types_of_the_raycluster() -> dict:
    from tests.deploy.conftest import render
    from tests.deploy.kuberay_rules import ray_node_types

    (rc,) = [d for d in render("kuberay") if d["kind"] == "RayCluster"]
    types = {}
    for name, node_type in ray_node_types(rc).items():
        if name == "headgroup":
            continue
        resources = {k: v for k, v in node_type["resources"].items() if k not in ("CPU", "memory")}
        types[name] = {
            "resources": {"CPU": 1, **resources},
            "labels": node_type["labels"],
            "node_config": {},
            "min_workers": 0,
            "max_workers": 2,
        }
    assert set(types) == {"gpu-amd64", "jetson-arm64"}
    return types


NODE_TYPES = _node_types_of_the_raycluster()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> set[int]:
    """Every live descendant of pid (from /proc; psutil is not a dependency)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in out:
                out.add(child)
                todo.append(child)
    return out


def _config(gcs_address: str) -> dict:
    head = {"resources": {}, "node_config": {}, "max_workers": 0}
    return {
        "cluster_name": "ludus-fake",
        "max_workers": 4,
        "upscaling_speed": 10.0,
        "idle_timeout_minutes": 0.05,  # 3 s: released nodes leave quickly
        "provider": {
            "type": "fake_multinode",
            "gcs_address": gcs_address,
            "use_node_id_as_ip": True,
            "disable_node_updaters": True,
            "disable_launch_config_check": True,
        },
        "available_node_types": {"ray.head.default": head, **NODE_TYPES},
        "head_node_type": "ray.head.default",
        "auth": {"ssh_user": "ubuntu"},
        "docker": {},
        "file_mounts": {},
        "cluster_synced_files": [],
        "file_mounts_sync_continuously": False,
        "rsync_exclude": [],
        "rsync_filter": [],
        "initialization_commands": [],
        "setup_commands": [],
        "head_setup_commands": [],
        "worker_setup_commands": [],
        "head_start_ray_commands": [],
        "worker_start_ray_commands": [],
    }


@pytest.fixture
def fake_cluster(tmp_path, monkeypatch):
    import ray
    from ray._private.services import get_node_ip_address
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    port = _free_port()
    gcs = f"{get_node_ip_address()}:{port}"
    cfg = tmp_path / "autoscaling.json"
    cfg.write_text(json.dumps(_config(gcs)))
    # Read by the monitor process the head starts (inherits this environment).
    monkeypatch.setenv("RAY_FAKE_CLUSTER", "1")
    monkeypatch.setenv("AUTOSCALER_UPDATE_INTERVAL_S", "1")
    before = _descendants(os.getpid())
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "gcs_server_port": port,
            "num_cpus": 1,
            "num_gpus": 0,
            "include_dashboard": False,
            "autoscaling_config": str(cfg),
            "object_store_memory": 80 * 1024 * 1024,
        },
    )
    monkeypatch.setenv("LUDUS_TEST_RAY_CLUSTER", cluster.gcs_address)
    ray.init(address=cluster.gcs_address, log_to_driver=False, namespace="ludus-autoscale-test")
    try:
        yield cluster
    finally:
        ray.shutdown()
        # The fake worker raylets are children of the monitor; note them before the head goes away.
        started = _descendants(os.getpid()) - before
        cluster.shutdown()
        for pid in started:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _worker_types() -> Counter:
    import ray

    kinds: Counter = Counter()
    for node in ray.nodes():
        if not node["Alive"]:
            continue
        res = node["Resources"]
        for arch in c.ARCHITECTURES:
            if f"{c.ARCH_RESOURCE_PREFIX}{arch}" in res:
                kinds[arch] += 1
    return kinds


def _wait_for(pred, timeout_s: float, what: str) -> Counter:
    seen: list[Counter] = [Counter()]

    def met() -> bool:
        seen[0] = _worker_types()
        return bool(pred(seen[0]))  # not the Counter itself: an empty one (no worker left) is falsy

    wait_for(met, timeout_s, what, interval=1.0, describe=lambda: f"nodes by arch: {dict(seen[0])}")
    return seen[0]


def test_backlog_launches_nodes_of_the_right_type_up_to_the_bound_and_idle_ones_leave(fake_cluster):
    import ray

    backlog = {"now": Backlog()}
    settings = Settings(autoscale_jobs_per_gpu=1, autoscale_min_gpus=0, autoscale_max_gpus=4, autoscale_cooldown_s=0)
    scaler = QueueDepthAutoscaler(settings, lambda: backlog["now"])
    assert _worker_types() == Counter()  # only the head

    # 3 Jetson-only jobs and 1 that must not run on arm64 -> 4 GPUs: 3 arm64 bundles + 1 x86_64 bundle
    backlog["now"] = Backlog.of(0, [{"require": "arm64"}] * 3 + [{"exclude": ["arm64"]}])
    decision = scaler.step()
    assert decision.desired == 4
    seen = _wait_for(lambda k: k["arm64"] >= 2 and k["x86_64"] >= 1, 150, "2 jetson-arm64 + 1 gpu-amd64 nodes")
    # The third arm64 bundle cannot be met: jetson-arm64 is bounded at 2 nodes.
    time.sleep(3)
    seen = _worker_types()
    assert seen["arm64"] == 2 and seen["x86_64"] == 1, dict(seen)
    nodes = {n["NodeID"]: n for n in ray.nodes() if n["Alive"]}
    arm = [n for n in nodes.values() if "arch:arm64" in n["Resources"]]
    assert all(n["Resources"]["GPU"] == 1 for n in arm)
    assert all(n.get("Labels", {}).get(c.ARCH_LABEL) == "arm64" for n in arm)

    backlog["now"] = Backlog()  # every job finished; cooldown 0 -> the request is withdrawn at once
    assert scaler.step().desired == 0 and scaler.requested == []
    _wait_for(lambda k: sum(k.values()) == 0, 120, "idle worker nodes to be terminated")

"""The rendered overlays as the operators would expand them (KubeRay, KEDA, Ray's autoscaler): pods start.

``kuberay_rules`` replays the operators' rules (versions and source files named there); Ray's autoscaler is
called for real. Each test also shows the rule catching the mistake it guards against, on a copy of the
manifest with that mistake put back.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest

from ludus import constants as c
from ludus.cluster.autoscale import Backlog, QueueDepthAutoscaler, bundles_for
from ludus.config import Settings
from tests.deploy import kuberay_rules as kr

K8S_VERSION = "1.33.0"


def _one(docs: list[dict], kind: str) -> dict:
    (doc,) = [d for d in docs if d["kind"] == kind]
    return doc


@pytest.fixture
def rc(rendered) -> dict:
    return copy.deepcopy(_one(rendered["kuberay"], "RayCluster"))


@pytest.fixture
def accounts(rendered) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in rendered["kuberay"] if d["kind"] == "ServiceAccount"}


def test_versions_are_named_once_and_match_what_is_pinned(rc):
    import ray

    assert kr.VERSIONS["ray"] == ray.__version__ == rc["spec"]["rayVersion"]
    assert set(kr.VERSIONS) == {"kuberay", "keda", "ray", "prometheus-operator"}


# --- KubeRay: validation.go ----------------------------------------------------------------------------


def test_kuberay_accepts_the_raycluster(rc):
    assert kr.raycluster_errors(rc) == []


def test_kuberay_refuses_labels_in_ray_start_params(rc):
    rc["spec"]["workerGroupSpecs"][0]["rayStartParams"]["labels"] = f"{c.ARCH_LABEL}=x86_64"
    assert any("rayStartParams['labels'] is not supported for gpu-amd64" in e for e in kr.raycluster_errors(rc))


def test_kuberay_refuses_resources_in_both_places(rc):
    rc["spec"]["workerGroupSpecs"][1]["rayStartParams"]["num-gpus"] = "1"
    assert any("both rayStartParams and Resources for jetson-arm64" in e for e in kr.raycluster_errors(rc))


def test_group_labels_are_valid_kubernetes_labels(rc):
    rc["spec"]["workerGroupSpecs"][0]["labels"] = {c.ARCH_LABEL: "x86 64"}
    assert any("invalid label value" in e for e in kr.raycluster_errors(rc))


# --- KubeRay: pods ---------------------------------------------------------------------------------------


def test_worker_pods_carry_the_architecture_as_ray_flags_and_pod_labels(rc, accounts):
    pods = kr.worker_pods(rc)
    assert set(pods) == {"gpu-amd64", "jetson-arm64"}
    for group, arch in (("gpu-amd64", "x86_64"), ("jetson-arm64", "arm64")):
        pod = pods[group]
        params = pod["_ray_start_params"]
        assert params["labels"] == f"{c.ARCH_LABEL}={arch}"
        assert params["resources"] == f"'{{\"{c.ARCH_RESOURCE_PREFIX}{arch}\":1000}}'"
        assert params["num-gpus"] == "1" and params["metrics-export-port"] == "8090"
        assert pod["metadata"]["labels"][c.ARCH_LABEL] == arch  # group labels land on the pod as well
        assert pod["metadata"]["labels"]["app.kubernetes.io/name"] == "ludus"  # network policies select it
        assert kr.pod_errors(pod) == []
        (ray_container,) = [ct for ct in pod["spec"]["containers"] if ct["name"] == "ray-worker"]
        assert [p for p in ray_container["ports"] if p["name"] == kr.METRICS_PORT_NAME] == [
            {"name": "metrics", "containerPort": 8090}
        ]  # nothing injected on 8080
        # the auth token reaches the init container that waits for the GCS and the Ray container
        for ct in pod["spec"]["initContainers"] + [ray_container]:
            assert {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} <= {e["name"] for e in ct["env"]}
        _valid_pod(pod)


def test_ray_worker_sh_runs_the_generated_command(rc, tmp_path):
    """KubeRay's generated `ray start` (single-quoted JSON resources) survives ludus-ray-worker's eval."""
    import json
    import os
    import subprocess

    from tests.deploy.test_images import DOCKER

    pod = kr.worker_pods(rc)["jetson-arm64"]
    command = next(e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] == "KUBERAY_GEN_RAY_START_CMD")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "ray").write_text(
        f"#!/bin/bash\npython3 -c 'import json, sys; print(json.dumps(sys.argv[1:]))' \"$@\" > {tmp_path}/argv\n"
    )
    (bindir / "ray").chmod(0o755)
    env = {"PATH": f"{bindir}:{os.environ['PATH']}", "KUBERAY_GEN_RAY_START_CMD": command}
    subprocess.run(["bash", str(DOCKER / "ray-worker.sh")], env=env, check=True, timeout=30)
    argv = json.loads((tmp_path / "argv").read_text())
    (res,) = [a for a in argv if a.startswith("--resources=")]
    assert json.loads(res.split("=", 1)[1]) == {f"{c.ARCH_RESOURCE_PREFIX}arm64": 1000}
    assert f"--labels={c.ARCH_LABEL}=arm64" in argv and "--num-gpus=1" in argv


def test_head_pod_runs_the_autoscaler_with_a_token_and_the_ray_container_without(rc, accounts):
    pod = kr.head_pod(rc)
    assert kr.pod_errors(pod) == []
    _valid_pod(pod)
    assert [ct["name"] for ct in pod["spec"]["containers"]] == ["ray-head", kr.AUTOSCALER_CONTAINER]
    rbac = kr.autoscaler_rbac(rc, accounts)
    assert not rbac.created_by_kuberay  # ours: k8s/overlays/kuberay/head-serviceaccount.yaml
    sa_name = pod["spec"]["serviceAccountName"]
    assert rbac.role_binding["subjects"] == [{"kind": "ServiceAccount", "name": sa_name, "namespace": "ludus"}]
    assert rbac.role_binding["roleRef"]["name"] == rbac.role["metadata"]["name"]
    assert {"pods", "rayclusters"} <= {r for rule in rbac.role["rules"] for r in rule["resources"]}
    tokens = kr.token_paths(pod, rbac.service_account)
    # exactly where Ray's KubeRay client reads it (node_provider.IN_CLUSTER_TOKEN_PATH), for the autoscaler only
    from ray.autoscaler._private.kuberay.node_provider import IN_CLUSTER_CA_CERT_PATH, IN_CLUSTER_TOKEN_PATH

    assert tokens == {"ray-head": [], kr.AUTOSCALER_CONTAINER: [IN_CLUSTER_TOKEN_PATH]}
    (volume,) = [v for v in pod["spec"]["volumes"] if v["name"] == "autoscaler-kube-api"]
    files = {
        item["path"] for src in volume["projected"]["sources"] for item in src.get("configMap", {}).get("items", [])
    }
    assert IN_CLUSTER_CA_CERT_PATH.rsplit("/", 1)[1] in files
    # the autoscaler shares the head's log volume and gets the Ray auth token
    autoscaler = pod["spec"]["containers"][1]
    assert "/tmp/ray" in {m["mountPath"] for m in autoscaler["volumeMounts"]}
    assert {"RAY_AUTH_MODE", "RAY_AUTH_TOKEN"} <= {e["name"] for e in autoscaler["env"]}
    assert autoscaler["image"] == pod["spec"]["containers"][0]["image"]


def test_the_old_service_account_mistake_would_leave_the_autoscaler_without_token(rc, accounts):
    """No serviceAccountName on the head: KubeRay picks the cluster's name, `ludus`, finds the base account
    (automount off) and creates nothing - the sidecar has no token and crash-loops."""
    head_spec = rc["spec"]["headGroupSpec"]["template"]["spec"]
    del head_spec["serviceAccountName"]
    del head_spec["automountServiceAccountToken"]
    head_spec["volumes"] = [v for v in head_spec["volumes"] if v["name"] != "autoscaler-kube-api"]
    rc["spec"]["autoscalerOptions"].pop("volumeMounts")
    pod = kr.head_pod(rc)
    rbac = kr.autoscaler_rbac(rc, accounts)
    assert pod["spec"]["serviceAccountName"] == "ludus" and not rbac.created_by_kuberay
    assert kr.token_paths(pod, rbac.service_account)[kr.AUTOSCALER_CONTAINER] == []


def test_workers_mount_no_token(rc, accounts):
    for pod in kr.worker_pods(rc).values():
        sa = accounts[pod["spec"]["serviceAccountName"]]
        assert all(paths == [] for paths in kr.token_paths(pod, sa).values())


# --- KubeRay: the head Service -------------------------------------------------------------------------


def test_head_service_has_unique_ports_and_publishes_a_not_ready_head(rc):
    service = kr.head_service(rc)
    assert kr.service_errors(service) == []
    kubernetes_validate.validate({k: v for k, v in service.items()}, K8S_VERSION, strict=True)
    ports = {p["name"]: p["port"] for p in service["spec"]["ports"]}
    assert ports == {
        "client": 10001,
        "dashboard": 8265,
        "gcs-server": 6379,
        "http": c.DEFAULT_HTTP_PORT,
        "metrics": 8090,
    }
    # readiness reports broker/database outages; workers must keep reaching the GCS meanwhile
    assert service["spec"]["publishNotReadyAddresses"] is True and service["spec"]["clusterIP"] == "None"


def test_a_ray_metrics_port_not_named_metrics_breaks_the_head_service(rc):
    ports = rc["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["ports"]
    next(p for p in ports if p["name"] == "metrics")["name"] = "ray-metrics"
    errors = kr.service_errors(kr.head_service(rc))
    assert errors and "port: 8080, protocol: TCP" in errors[0]


# --- Ray's autoscaler (its own code, Ray 2.60) ---------------------------------------------------------


def test_ray_autoscaler_sees_each_group_with_its_architecture(rc):
    types = kr.ray_node_types(rc)
    for group, arch in (("gpu-amd64", "x86_64"), ("jetson-arm64", "arm64")):
        t = types[group]
        assert t["resources"]["GPU"] == 1 and t["resources"][f"{c.ARCH_RESOURCE_PREFIX}{arch}"] == 1000
        assert t["labels"] == {c.ARCH_LABEL: arch}
        assert t["min_workers"] == 0 and t["max_workers"] >= 1
    assert types["headgroup"]["resources"]["CPU"] == 0 and types["headgroup"]["resources"].get("GPU", 0) == 0


def test_backlog_bundles_launch_the_architectures_the_jobs_allow(rc):
    """Three x86-only jobs: Ray's bin-packing launches x86 nodes. The old unpinned GPU bundles got Jetsons."""
    types = kr.ray_node_types(rc)
    assert kr.nodes_launched_for(types, bundles_for(3, None)) == {"jetson-arm64": 3}  # the bug
    requests: list[list[dict]] = []
    backlog = Backlog.of(0, [{"require": "x86_64"}] * 3)
    scaler = QueueDepthAutoscaler(
        Settings(autoscale_max_gpus=8), lambda: backlog, request_fn=lambda *, bundles: requests.append(bundles)
    )
    scaler.step()
    assert kr.nodes_launched_for(types, requests[-1]) == {"gpu-amd64": 3}
    backlog = Backlog.of(0, [{"require": "arm64"}, {"exclude": ["arm64"]}, {"prefer": "arm64"}])
    scaler.step()
    assert kr.nodes_launched_for(types, requests[-1]) == {"gpu-amd64": 1, "jetson-arm64": 2}


# --- KEDA (metrics-api) --------------------------------------------------------------------------------


def test_keda_triggers_parse_and_read_the_backlog_of_their_architecture(rendered):
    scaled = {s["metadata"]["name"]: s for s in rendered["keda"] if s["kind"] == "ScaledObject"}
    body = Backlog.of(0, [{"require": "x86_64"}, {"exclude": ["arm64"]}, None]).to_dict()
    import json

    raw = json.dumps(body).encode()
    values = {}
    for name, so in scaled.items():
        (trigger,) = so["spec"]["triggers"]
        parsed = kr.metrics_api_trigger(trigger)
        assert parsed.unknown == []
        values[name] = kr.metrics_api_value(parsed, 200, raw)
    assert values == {"ludus-worker-gpu-amd64": 3.0, "ludus-worker-jetson-arm64": 1.0}
    assert kr.keda_replicas(scaled["ludus-worker-gpu-amd64"], [3.0], current=0) == 3
    assert kr.keda_replicas(scaled["ludus-worker-jetson-arm64"], [0.0], current=1) == 0
    # a misspelt location is an error, not a silent zero
    broken = copy.deepcopy(scaled["ludus-worker-gpu-amd64"]["spec"]["triggers"][0])
    broken["metadata"]["valueLocation"] = "architecture.x86_64"
    with pytest.raises(ValueError, match="numeric"):
        kr.metrics_api_value(kr.metrics_api_trigger(broken), 200, raw)


def _valid_pod(pod: dict) -> None:
    doc = {k: v for k, v in pod.items() if not k.startswith("_")}
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)

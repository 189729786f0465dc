"""What the operators do with Ludus' manifests, replayed in Python so it can be checked without a cluster.

There is no Kubernetes cluster, KubeRay operator or KEDA here. The rules below were read in the operators'
source at the versions named in :data:`VERSIONS` (the one place naming them) and restated, not copied: only
the behaviour Ludus depends on. Where the real implementation is importable (Ray's own autoscaler, installed
in the venv), the tests call it instead of a replay.

KubeRay (ray-project/kuberay, ray-operator/controllers/ray/):
  utils/validation.go     ValidateRayClusterMetadata / ValidateRayClusterSpec: the RayCluster is refused
                          (no pod is created; ``kubectl apply`` still succeeds) for the rules in
                          :func:`raycluster_errors`.
  common/pod.go           DefaultHeadPodTemplate / DefaultWorkerPodTemplate / BuildPod: group ``resources``
                          and ``labels`` become ``--num-gpus``/``--resources`` and ``--labels``; group labels
                          are merged into the pod's labels; a container port named ``metrics`` (8080) is
                          appended when the Ray container has none; with in-tree autoscaling the head pod gets
                          the ServiceAccount of :func:`head_service_account_name` and an ``autoscaler``
                          container (the head's image, autoscalerOptions merged in); ``/dev/shm`` and the
                          shared ``/tmp/ray`` log volume are added; with ``authOptions.mode: token`` every Ray
                          container gets RAY_AUTH_MODE and RAY_AUTH_TOKEN (Secret named after the cluster,
                          key ``auth_token``).
  common/service.go       BuildServiceForHeadPod / getServicePorts: the head Service has one port per head
                          container port (unnamed ones become ``<port>-port``) plus ``metrics: 8080`` when no
                          port is named ``metrics``; headless with publishNotReadyAddresses for ClusterIP.
  common/rbac.go, raycluster_controller.go (reconcileAutoscalerServiceAccount/Role/RoleBinding): the head's
                          ServiceAccount is the template's ``serviceAccountName`` or else the cluster's name;
                          KubeRay creates it only when it does not exist (a named one the user must create);
                          Role and RoleBinding are named after the cluster and bind that ServiceAccount.
  utils/constant.go       the names and default ports used above.
KEDA (kedacore/keda):
  pkg/scalers/metrics_api_scaler.go          metadata of the metrics-api trigger, value = gjson(valueLocation)
                                             of the JSON body (HTTP 200 only), active when value >
                                             activationTargetValue.
  pkg/scaling/executor/scale_scaledobjects.go  no active trigger -> scale to minReplicaCount (0) after the
                                             cooldown; a scaler error without fallback keeps the replicas.
Ray (python/ray/autoscaler/_private/kuberay/autoscaling_config.py, node_provider.py): node types come from the
  group ``resources``/``labels`` (rayStartParams labels are ignored with a warning); the autoscaler reads its
  API token from /var/run/secrets/kubernetes.io/serviceaccount/token. Called directly: :func:`ray_node_types`.
Kubernetes API server: a Service may not list the same (port, protocol) twice; kubelet mounts a
  ServiceAccount token into every container when automount is on (pod field, else ServiceAccount field,
  else true).
"""

from __future__ import annotations

import copy
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

VERSIONS = {
    "kuberay": "v1.7.0",
    "keda": "v2.20.2",
    "ray": "2.60.0",
    "prometheus-operator": "v0.93.0",
}

# --- KubeRay constants (utils/constant.go) ------------------------------------------------------------
METRICS_PORT_NAME = "metrics"
DEFAULT_METRICS_PORT = 8080
DEFAULT_DASHBOARD_AGENT_PORT = 52365
AUTOSCALER_CONTAINER = "autoscaler"
AUTH_TOKEN_KEY = "auth_token"
MAX_CLUSTER_NAME = 53
SA_TOKEN_DIR = "/var/run/secrets/kubernetes.io/serviceaccount"
AUTOSCALER_ROLE_RULES = [
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": [""], "resources": ["pods/resize"], "verbs": ["patch"]},
    {"apiGroups": ["ray.io"], "resources": ["rayclusters"], "verbs": ["get", "patch"]},
]
_RAY_START_RESOURCE_PARAMS = ("num-cpus", "num-gpus", "memory", "resources")
_PROTECTED_POD_LABELS = ("ray.io/node-type", "ray.io/group", "ray.io/cluster")

_DNS1035 = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?")
_QUALIFIED_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS1123_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_VALUE = re.compile(r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?")


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3])


def _label_key_ok(key: str) -> bool:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS1123_SUBDOMAIN.fullmatch(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME.fullmatch(name))


def _label_value_ok(value: str) -> bool:
    return len(value) <= 63 and bool(_LABEL_VALUE.fullmatch(value))


def check_name(name: str) -> str:
    """KubeRay's CheckName: names longer than 50 keep their last 50 characters; a leading digit or
    punctuation becomes ``r``."""
    if len(name) > 50:
        name = name[len(name) - 50 :]
    if name[0].isdigit() or not name[0].isalnum():
        name = "r" + name[1:]
    return name


def _groups(rc: dict) -> list[tuple[str, dict]]:
    spec = rc["spec"]
    return [("Head", spec["headGroupSpec"])] + [(g["groupName"], g) for g in spec.get("workerGroupSpecs", [])]


def autoscaling_enabled(rc: dict) -> bool:
    return bool(rc["spec"].get("enableInTreeAutoscaling"))


def auth_enabled(rc: dict) -> bool:
    return (rc["spec"].get("authOptions") or {}).get("mode") == "token"


# --- validation.go ------------------------------------------------------------------------------------


def raycluster_errors(rc: dict) -> list[str]:
    """The reasons KubeRay would refuse this RayCluster (empty: it reconciles it and creates pods)."""
    errors: list[str] = []
    name = rc["metadata"]["name"]
    if len(name) > MAX_CLUSTER_NAME:
        errors.append(f"RayCluster name should be no more than {MAX_CLUSTER_NAME} characters")
    if not _DNS1035.fullmatch(name) or len(name) > 63:
        errors.append("RayCluster name should be a valid DNS1035 label")
    spec = rc["spec"]
    if not spec["headGroupSpec"]["template"]["spec"].get("containers"):
        errors.append("headGroupSpec should have at least one container")
    for group_name, group in _groups(rc):
        params = group.get("rayStartParams") or {}
        if group is not spec["headGroupSpec"]:
            if not group["template"]["spec"].get("containers"):
                errors.append("workerGroupSpec should have at least one container")
            lo, hi = group.get("minReplicas"), group.get("maxReplicas")
            if not autoscaling_enabled(rc) and (lo is None or hi is None):
                errors.append(f"worker group {group_name} must set both minReplicas and maxReplicas")
            if (lo is not None and lo < 0) or (hi is not None and hi < 0):
                errors.append(f"worker group {group_name} has negative replicas")
            if lo is not None and hi is not None and lo > hi:
                errors.append(f"worker group {group_name} has minReplicas {lo} greater than maxReplicas {hi}")
        if any(params.get(k) for k in _RAY_START_RESOURCE_PARAMS) and group.get("resources"):
            errors.append(
                f"resource fields should not be set in both rayStartParams and Resources for {group_name} group"
            )
        if "labels" in params:
            errors.append(
                f"rayStartParams['labels'] is not supported for {group_name} group; please use the "
                "top-level Labels field instead"
            )
        for key, value in (group.get("labels") or {}).items():
            if not _label_key_ok(key):
                errors.append(f"invalid label key for {group_name} group: {key!r}")
            if not _label_value_ok(str(value)):
                errors.append(f"invalid label value for key {key!r} in {group_name} group: {value!r}")
    auth = spec.get("authOptions") or {}
    if auth_enabled(rc):
        if not spec.get("rayVersion"):
            errors.append("authOptions.mode is 'token' but RayVersion was not specified")
        elif _version_tuple(spec["rayVersion"]) < (2, 52, 0):
            errors.append(f"authOptions.mode is 'token' but minimum Ray version is 2.52.0, got {spec['rayVersion']}")
        if auth.get("enableK8sTokenAuth") and _version_tuple(spec.get("rayVersion", "0")) < (2, 55, 0):
            errors.append("authOptions.enableK8sTokenAuth needs Ray 2.55.0")
    elif auth.get("enableK8sTokenAuth"):
        errors.append("authOptions.enableK8sTokenAuth is enabled but authOptions.mode not set to 'token'")
    options = spec.get("autoscalerOptions") or {}
    if any(e.get("name") == "KUBERAY_GEN_AUTOSCALER_START_CMD" for e in options.get("env") or []):
        errors.append("autoscalerOptions.env must not contain KUBERAY_GEN_AUTOSCALER_START_CMD")
    if options.get("idleTimeoutSeconds") is not None and options["idleTimeoutSeconds"] < 0:
        errors.append("autoscalerOptions.idleTimeoutSeconds must be non-negative")
    return errors


# --- pod.go -------------------------------------------------------------------------------------------


def _quantity(text: str) -> float:
    """A Kubernetes quantity as a float (the subset group resources use: plain numbers, m, Ki..Ti, k..T)."""
    m = re.fullmatch(r"([0-9.]+)([a-zA-Z]*)", str(text))
    if not m:
        raise ValueError(f"not a quantity: {text!r}")
    scale = {
        "": 1,
        "m": 1e-3,
        "k": 1e3,
        "M": 1e6,
        "G": 1e9,
        "T": 1e12,
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
    }[m.group(2)]
    return float(m.group(1)) * scale


def ray_start_params(rc: dict, group: dict, *, head: bool) -> dict[str, str]:
    """The ``ray start`` flags KubeRay generates for a group (before --block/--address details)."""
    params = dict(group.get("rayStartParams") or {})
    resources = group.get("resources") or {}
    custom = {}
    for name, value in resources.items():
        low = name.lower()
        if low == "cpu":
            params["num-cpus"] = str(int(_quantity(value)))
        elif low == "memory":
            params["memory"] = str(int(_quantity(value)))
        elif low.endswith("gpu"):
            params["num-gpus"] = str(int(_quantity(value)))
        else:
            custom[name] = _quantity(value)
    if custom:  # Go's encoding/json writes 1000.0 as 1000
        params["resources"] = (
            "'" + json.dumps({k: int(v) if v == int(v) else v for k, v in custom.items()}, separators=(",", ":")) + "'"
        )
    labels = group.get("labels") or {}
    if labels:
        params["labels"] = ",".join(f"{k}={labels[k]}" for k in sorted(labels))
    if head:
        params.setdefault("dashboard-host", "0.0.0.0")
        if autoscaling_enabled(rc):
            params["no-monitor"] = "true"
    params.setdefault("metrics-export-port", str(DEFAULT_METRICS_PORT))
    params["block"] = "true"
    params.setdefault("dashboard-agent-listen-port", str(DEFAULT_DASHBOARD_AGENT_PORT))
    limits = group["template"]["spec"]["containers"][0].get("resources", {}).get("limits", {})
    if "num-gpus" not in params:
        for key in sorted(limits):
            if key.endswith("gpu") and _quantity(limits[key]) > 0:
                params["num-gpus"] = str(int(_quantity(limits[key])))
    if "num-cpus" not in params and "cpu" in limits:
        params["num-cpus"] = str(int(_quantity(limits["cpu"])))
    if "memory" not in params and "memory" in limits:
        params["memory"] = str(int(_quantity(limits["memory"])))
    return params


def ray_start_command(params: dict[str, str], *, head: bool) -> str:
    flags = []
    for key in sorted(params):
        value = params[key]
        if value.lower() in ("true", "false"):
            if value.lower() == "true":
                flags.append(f"--{key}")
        else:
            flags.append(f"--{key}={value}")
    return "ray start " + ("--head " if head else "") + " ".join(flags)


def head_service_account_name(rc: dict) -> str:
    pod = rc["spec"]["headGroupSpec"]["template"]["spec"]
    return check_name(pod.get("serviceAccountName") or rc["metadata"]["name"])


def _auth_env(rc: dict) -> list[dict]:
    secret = (rc["spec"].get("authOptions") or {}).get("secretName") or check_name(rc["metadata"]["name"])
    return [
        {"name": "RAY_AUTH_MODE", "value": "token"},
        {"name": "RAY_AUTH_TOKEN", "valueFrom": {"secretKeyRef": {"name": secret, "key": AUTH_TOKEN_KEY}}},
    ]


def _add_env(container: dict, env: list[dict]) -> None:
    have = {e["name"] for e in container.setdefault("env", [])}
    container["env"] += [e for e in env if e["name"] not in have]


def _add_empty_dir(pod_spec: dict, container: dict, name: str, path: str, medium: str | None = None) -> None:
    if any(m["mountPath"] == path for m in container.get("volumeMounts", [])):
        return
    container.setdefault("volumeMounts", []).append({"name": name, "mountPath": path})
    if not any(v["name"] == name for v in pod_spec.setdefault("volumes", [])):
        pod_spec["volumes"].append({"name": name, "emptyDir": {"medium": medium} if medium else {}})


def _pod(rc: dict, group: dict, *, head: bool) -> dict:
    name = rc["metadata"]["name"]
    template = copy.deepcopy(group["template"])
    spec = template["spec"]
    ray = spec["containers"][0]
    group_name = "headgroup" if head else group["groupName"]
    labels = {
        "ray.io/is-ray-node": "yes",
        "ray.io/cluster": name,
        "ray.io/node-type": "head" if head else "worker",
        "ray.io/group": group_name,
        "ray.io/identifier": f"{name}-{'head' if head else 'worker'}",
        "app.kubernetes.io/name": "kuberay",
        "app.kubernetes.io/created-by": "kuberay-operator",
    }
    merged = {**(template.get("metadata") or {}).get("labels", {}), **(group.get("labels") or {})}
    labels.update({k: v for k, v in merged.items() if k not in _PROTECTED_POD_LABELS})
    annotations = dict((template.get("metadata") or {}).get("annotations") or {})
    if (rc["metadata"].get("annotations") or {}).get("ray.io/overwrite-container-cmd", "").lower() == "true":
        annotations["ray.io/overwrite-container-cmd"] = "true"
    params = ray_start_params(rc, group, head=head)
    if head and autoscaling_enabled(rc):
        spec["serviceAccountName"] = head_service_account_name(rc)
        options = rc["spec"].get("autoscalerOptions") or {}
        autoscaler = {
            "name": AUTOSCALER_CONTAINER,
            "image": options.get("image", ray["image"]),
            "imagePullPolicy": options.get("imagePullPolicy", "IfNotPresent"),
            "command": ["/bin/bash", "-lc", "--"],
            "args": [
                (
                    "ray kuberay-autoscaler --cluster-name $(RAY_CLUSTER_NAME) "
                    "--cluster-namespace $(RAY_CLUSTER_NAMESPACE)"
                )
            ],
            "env": [
                {
                    "name": "RAY_CLUSTER_NAME",
                    "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['ray.io/cluster']"}},
                },
                {"name": "RAY_CLUSTER_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
                {"name": "RAY_HEAD_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                {"name": "KUBERAY_CRD_VER", "value": "v1"},
            ],
            "resources": options.get("resources")
            or {"limits": {"cpu": "500m", "memory": "512Mi"}, "requests": {"cpu": "500m", "memory": "512Mi"}},
        }
        if auth_enabled(rc):
            _add_env(autoscaler, _auth_env(rc))
        autoscaler["env"] += options.get("env") or []
        if options.get("envFrom"):
            autoscaler["envFrom"] = list(options["envFrom"])
        if options.get("volumeMounts"):
            autoscaler["volumeMounts"] = list(options["volumeMounts"])
        if options.get("securityContext"):
            autoscaler["securityContext"] = copy.deepcopy(options["securityContext"])
        spec["containers"].append(autoscaler)
        _add_env(ray, [{"name": "RAY_enable_autoscaler_v2", "value": "false"}])
    if not any(p.get("name") == METRICS_PORT_NAME for p in ray.get("ports", [])):
        ray.setdefault("ports", []).append({"name": METRICS_PORT_NAME, "containerPort": DEFAULT_METRICS_PORT})
    if auth_enabled(rc):
        _add_env(ray, _auth_env(rc))
    if not head:
        small = {"cpu": "200m", "memory": "256Mi"}
        init = {
            "name": "wait-gcs-ready",
            "image": ray["image"],
            "securityContext": copy.deepcopy(ray.get("securityContext")),
            "env": copy.deepcopy(ray.get("env", [])),
            "volumeMounts": copy.deepcopy(ray.get("volumeMounts", [])),
            "resources": {"limits": dict(small), "requests": dict(small)},
        }
        if auth_enabled(rc):
            _add_env(init, _auth_env(rc))
        spec.setdefault("initContainers", []).append(init)
    _add_empty_dir(spec, ray, "shared-mem", "/dev/shm", "Memory")
    if head and autoscaling_enabled(rc):
        _add_empty_dir(spec, ray, "ray-logs", "/tmp/ray")
        _add_empty_dir(spec, spec["containers"][-1], "ray-logs", "/tmp/ray")
    command = ray_start_command(params, head=head)
    _add_env(ray, [{"name": "KUBERAY_GEN_RAY_START_CMD", "value": command}])
    overwrite = annotations.get("ray.io/overwrite-container-cmd") == "true"
    if not overwrite and "ray start" not in " ".join(ray.get("command", [])):
        ray["args"] = [" ".join(ray.get("command", [])) + " && " + command if ray.get("command") else command]
        ray["command"] = ["/bin/bash", "-lc", "--"]
    for probe in ("livenessProbe", "readinessProbe"):
        ray.setdefault(probe, {"httpGet": {"path": "/api/healthz", "port": DEFAULT_DASHBOARD_AGENT_PORT}})
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{group_name}-x",
            "namespace": rc["metadata"].get("namespace"),
            "labels": labels,
            "annotations": annotations,
        },
        "spec": spec,
        "_ray_start_params": params,
    }


def head_pod(rc: dict) -> dict:
    return _pod(rc, rc["spec"]["headGroupSpec"], head=True)


def worker_pods(rc: dict) -> dict[str, dict]:
    return {g["groupName"]: _pod(rc, g, head=False) for g in rc["spec"].get("workerGroupSpecs", [])}


# --- service.go ---------------------------------------------------------------------------------------


def head_service(rc: dict) -> dict:
    """The head Service KubeRay creates (default, no headService override)."""
    head = rc["spec"]["headGroupSpec"]
    ports: dict[str, int] = {}
    for p in head["template"]["spec"]["containers"][0].get("ports", []):
        ports[p.get("name") or f"{p['containerPort']}-port"] = p["containerPort"]
    ports.setdefault(METRICS_PORT_NAME, DEFAULT_METRICS_PORT)
    name = rc["metadata"]["name"]
    spec: dict[str, Any] = {
        "selector": {
            "ray.io/cluster": name,
            "ray.io/node-type": "head",
            "ray.io/identifier": f"{name}-head",
            "app.kubernetes.io/name": "kuberay",
            "app.kubernetes.io/created-by": "kuberay-operator",
        },
        "ports": [{"name": n, "port": ports[n], "protocol": "TCP", "appProtocol": "tcp"} for n in sorted(ports)],
        "type": head.get("serviceType") or "ClusterIP",
    }
    if spec["type"] == "ClusterIP":
        spec["clusterIP"] = "None"
        spec["publishNotReadyAddresses"] = True
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": f"{name}-head-svc", "namespace": rc["metadata"].get("namespace")},
        "spec": spec,
    }


# --- rbac.go / raycluster_controller.go ---------------------------------------------------------------


@dataclass
class Rbac:
    service_account: dict
    created_by_kuberay: bool
    role: dict
    role_binding: dict


def autoscaler_rbac(rc: dict, existing: dict[str, dict]) -> Rbac:
    """ServiceAccount, Role and RoleBinding for the autoscaler. ``existing``: ServiceAccounts in the namespace
    (by name). Raises when the template names a ServiceAccount nobody created (KubeRay refuses to go on)."""
    name = rc["metadata"]["name"]
    sa_name = head_service_account_name(rc)
    template_sa = rc["spec"]["headGroupSpec"]["template"]["spec"].get("serviceAccountName")
    if sa_name in existing:
        sa, created = existing[sa_name], False
    elif template_sa == sa_name:
        raise LookupError(
            f"ServiceAccount {sa_name} is named by the head template but does not exist; KubeRay does not create it"
        )
    else:
        sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa_name}}
        created = True
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": check_name(name)},
        "rules": copy.deepcopy(AUTOSCALER_ROLE_RULES),
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": check_name(name)},
        "subjects": [
            {"kind": "ServiceAccount", "name": check_name(sa_name), "namespace": rc["metadata"].get("namespace")}
        ],
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": check_name(name)},
    }
    return Rbac(sa, created, role, binding)


# --- kubelet: where ServiceAccount tokens appear -------------------------------------------------------


def token_paths(pod: dict, service_account: dict) -> dict[str, list[str]]:
    """Per container (init containers included): the files holding a ServiceAccount token."""
    spec = pod["spec"]
    automount = spec.get("automountServiceAccountToken")
    if automount is None:
        automount = service_account.get("automountServiceAccountToken")
    if automount is None:
        automount = True
    token_volumes = {}
    for volume in spec.get("volumes", []):
        for source in (volume.get("projected") or {}).get("sources", []):
            if "serviceAccountToken" in source:
                token_volumes[volume["name"]] = source["serviceAccountToken"]["path"]
    out: dict[str, list[str]] = {}
    for container in spec.get("initContainers", []) + spec["containers"]:
        mounts = container.get("volumeMounts", [])
        paths = [
            f"{m['mountPath'].rstrip('/')}/{token_volumes[m['name']]}" for m in mounts if m["name"] in token_volumes
        ]
        if automount and not any(m["mountPath"].rstrip("/") == SA_TOKEN_DIR for m in mounts):
            paths.append(f"{SA_TOKEN_DIR}/token")
        out[container["name"]] = paths
    return out


# --- API server semantic checks (beyond the OpenAPI schema) --------------------------------------------


def service_errors(service: dict) -> list[str]:
    errors, seen, names = [], set(), set()
    for i, p in enumerate(service["spec"]["ports"]):
        key = (p["port"], p.get("protocol", "TCP"))
        if key in seen:
            errors.append(f"spec.ports[{i}]: Duplicate value: {{port: {key[0]}, protocol: {key[1]}}}")
        seen.add(key)
        if p.get("name") in names:
            errors.append(f"spec.ports[{i}].name: Duplicate value: {p['name']!r}")
        names.add(p.get("name"))
    return errors


def pod_errors(pod: dict) -> list[str]:
    errors = []
    spec = pod["spec"]
    containers = spec.get("initContainers", []) + spec["containers"]
    volumes = {v["name"] for v in spec.get("volumes", [])}
    if len(volumes) != len(spec.get("volumes", [])):
        errors.append("duplicate volume names")
    names = [c["name"] for c in containers]
    if len(set(names)) != len(names):
        errors.append(f"duplicate container names {names}")
    for c in containers:
        port_names = [p["name"] for p in c.get("ports", []) if p.get("name")]
        if len(set(port_names)) != len(port_names):
            errors.append(f"{c['name']}: duplicate port names {port_names}")
        ports = [(p["containerPort"], p.get("protocol", "TCP")) for p in c.get("ports", [])]
        if len(set(ports)) != len(ports):
            errors.append(f"{c['name']}: duplicate container ports {ports}")
        paths = [m["mountPath"] for m in c.get("volumeMounts", [])]
        if len(set(paths)) != len(paths):
            errors.append(f"{c['name']}: duplicate mount paths {paths}")
        for m in c.get("volumeMounts", []):
            if m["name"] not in volumes:
                errors.append(f"{c['name']}: volumeMount {m['name']!r} names no volume")
    return errors


# --- Ray's autoscaler: the real code ------------------------------------------------------------------


def ray_node_types(rc: dict) -> dict[str, dict]:
    """The node types Ray's KubeRay autoscaler derives from the RayCluster (Ray's own function, installed)."""
    import ray
    from ray.autoscaler._private.kuberay.autoscaling_config import _derive_autoscaling_config_from_ray_cr

    assert ray.__version__ == VERSIONS["ray"], (ray.__version__, VERSIONS["ray"])
    return _derive_autoscaling_config_from_ray_cr(copy.deepcopy(rc))["available_node_types"]


def nodes_launched_for(node_types: dict[str, dict], bundles: list[dict[str, float]]) -> dict[str, int]:
    """Which worker nodes Ray's autoscaler (v1 bin-packing, resource_demand_scheduler.get_nodes_for) would
    add, from nothing, for these resource bundles."""
    from functools import partial

    from ray.autoscaler._private.node_provider_availability_tracker import NodeAvailabilitySummary
    from ray.autoscaler._private.resource_demand_scheduler import _default_utilization_scorer, get_nodes_for

    # no launch has failed yet: every node type is available
    scorer = partial(_default_utilization_scorer, node_availability_summary=NodeAvailabilitySummary({}))
    added, _left = get_nodes_for(node_types, {}, "headgroup", 1000, list(bundles), scorer)
    return dict(added)


# --- KEDA ---------------------------------------------------------------------------------------------

METRICS_API_KEYS = {
    "targetValue",
    "activationTargetValue",
    "url",
    "format",
    "valueLocation",
    "unsafeSsl",
    "aggregateFromKubeServiceEndpoints",
    "aggregationType",
    "timeout",
    "authMode",
    "method",
    "keyParamName",
}
METRICS_API_FORMATS = ("prometheus", "json", "xml", "yaml")


@dataclass
class MetricsApiTrigger:
    url: str
    value_location: str
    target: float
    activation: float = 0.0
    format: str = "json"
    unknown: list[str] = field(default_factory=list)


def metrics_api_trigger(trigger: dict) -> MetricsApiTrigger:
    """Parse a metrics-api trigger the way metrics_api_scaler.go does; raises ValueError like KEDA would."""
    if trigger.get("type") != "metrics-api":
        raise ValueError(f"not a metrics-api trigger: {trigger.get('type')}")
    meta = trigger.get("metadata") or {}
    for key in ("url", "valueLocation"):
        if not meta.get(key):
            raise ValueError(f"missing required parameter {key!r}")
    fmt = meta.get("format", "json")
    if fmt not in METRICS_API_FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {METRICS_API_FORMATS}")
    target = float(meta.get("targetValue", 0) or 0)
    if target == 0:
        raise ValueError("no targetValue given in metadata")
    return MetricsApiTrigger(
        url=meta["url"],
        value_location=meta["valueLocation"],
        target=target,
        activation=float(meta.get("activationTargetValue", 0) or 0),
        format=fmt,
        unknown=sorted(set(meta) - METRICS_API_KEYS),
    )


def gjson_get(doc: Any, path: str) -> Any:
    """The subset of gjson paths Ludus uses: dot-separated keys (``\\.`` escapes a dot) and array indexes.
    Wildcards, queries and modifiers are refused rather than half-supported."""
    if re.search(r"[*?#@|]", path):
        raise ValueError(f"gjson feature not replayed in {path!r}")
    parts = [p.replace("\x00", ".") for p in path.replace("\\.", "\x00").split(".")]
    node = doc
    for part in parts:
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return node


def metrics_api_value(trigger: MetricsApiTrigger, status: int, body: bytes) -> float:
    """The value KEDA reads from one response (HTTP 200, JSON number at valueLocation), else ValueError."""
    if status != 200:
        raise ValueError(f"api returned {status}")
    if trigger.format != "json":
        raise ValueError("only the json format is replayed")
    value = gjson_get(json.loads(body), trigger.value_location)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        # KEDA reports this as a scaler error, like the other ValueErrors here
        raise ValueError(f"valueLocation {trigger.value_location!r} must point to a numeric value, got {value!r}")
    return float(value)


def keda_replicas(scaled_object: dict, values: list[float], current: int) -> int:
    """Replicas KEDA + the HPA settle on for trigger values (AverageValue targets; cooldown elapsed)."""
    spec = scaled_object["spec"]
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    triggers = [metrics_api_trigger(t) for t in spec["triggers"]]
    active = any(v > t.activation for v, t in zip(values, triggers, strict=True))
    if not active:
        return lo if current > lo or lo > 0 else current
    want = max(math.ceil(v / t.target) for v, t in zip(values, triggers, strict=True))
    return max(1, lo, min(hi, want))

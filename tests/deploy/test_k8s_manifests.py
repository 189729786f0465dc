"""Rendered kustomize overlays: schema-valid, and the invariants Ludus relies on at run time."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import kubernetes_validate
import pytest
import ray
import yaml

from ludus import constants as c
from ludus.config import Settings

SCHEMAS = Path(__file__).parent / "schemas"
K8S_VERSION = "1.33.0"
CRD_SCHEMAS = {  # tests/deploy/schemas/README.md: where each comes from (versions: kuberay_rules.VERSIONS)
    ("ray.io/v1", "RayCluster"): "raycluster-ray.io-v1.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-keda.sh-v1alpha1.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule-monitoring.coreos.com-v1.json",
}
MONITORING = {("monitoring.coreos.com/v1", "PodMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
SECRET_NAME = "ludus-secrets"


# --- helpers -----------------------------------------------------------------------------------------


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def settings_configmap(docs: list[dict]) -> dict:
    (cm,) = [d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"] == "ludus-config"]
    return cm


def pod_templates(docs: list[dict]) -> list[tuple[str, dict]]:
    """(name, pod template) of every workload: Deployments and RayCluster head/worker groups."""
    out = []
    for d in docs:
        if d["kind"] == "Deployment":
            out.append((d["metadata"]["name"], d["spec"]["template"]))
        elif d["kind"] == "RayCluster":
            out.append(("head", d["spec"]["headGroupSpec"]["template"]))
            out += [(g["groupName"], g["template"]) for g in d["spec"]["workerGroupSpecs"]]
    return out


def runs_consumer(container: dict) -> bool:
    """The container that runs `ludus worker` (the image's ludus-ray-head starts it next to Ray)."""
    return "ludus-ray-head" in container.get("command", []) or "ludus" in container.get("command", [])[:1]


def strict(schema: dict) -> dict:
    """CRD schemas leave unknown fields to the API server's pruning; reject them here to catch typos."""
    schema = copy.deepcopy(schema)

    def walk(node):
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(schema)
    return schema


def crd_validator(api_version: str, kind: str) -> jsonschema.Validator:
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[(api_version, kind)]).read_text())
    # apiVersion/kind/metadata are the API server's; the CRD schema lists them loosely.
    return jsonschema.Draft7Validator(strict(schema))


def strings(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from strings(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from strings(v, f"{path}[{i}]")
    elif isinstance(node, str):
        yield path, node


# --- schemas -----------------------------------------------------------------------------------------


def test_core_kinds_are_valid_kubernetes(overlay_docs):
    _, docs = overlay_docs
    checked = 0
    for d in docs:
        if (d["apiVersion"], d["kind"]) in CRD_SCHEMAS:
            continue
        kubernetes_validate.validate(d, K8S_VERSION, strict=True)
        checked += 1
    # RayCluster groups carry ordinary pod templates: validate them as core PodTemplates too.
    for name, tpl in pod_templates([d for d in docs if d["kind"] == "RayCluster"]):
        kubernetes_validate.validate(
            {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": name}, "template": tpl},
            K8S_VERSION,
            strict=True,
        )
        checked += 1
    assert checked >= 8


def test_custom_resources_match_vendored_crd_schemas(overlay_docs):
    overlay, docs = overlay_docs
    kinds = {(d["apiVersion"], d["kind"]) for d in docs} & set(CRD_SCHEMAS)
    expected = {
        "kuberay": {("ray.io/v1", "RayCluster")} | MONITORING,
        "keda": {("keda.sh/v1alpha1", "ScaledObject")} | MONITORING,
    }
    assert kinds == expected[overlay]
    for d in docs:
        if (d["apiVersion"], d["kind"]) in CRD_SCHEMAS:
            errors = list(crd_validator(d["apiVersion"], d["kind"]).iter_errors(d))
            assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]


def test_strict_crd_check_catches_a_misspelt_field(rendered):
    rc = copy.deepcopy(of_kind(rendered["kuberay"], "RayCluster")[0])
    rc["spec"]["enableInTreeAutoscalng"] = True
    assert list(crd_validator("ray.io/v1", "RayCluster").iter_errors(rc))
    so = copy.deepcopy(of_kind(rendered["keda"], "ScaledObject")[0])
    so["spec"]["minReplicaCount"] = "zero"
    assert list(crd_validator("keda.sh/v1alpha1", "ScaledObject").iter_errors(so))
    pm = copy.deepcopy(of_kind(rendered["keda"], "PodMonitor")[0])
    pm["spec"]["podMetricsEndpoints"][0]["intervall"] = "30s"
    assert list(crd_validator("monitoring.coreos.com/v1", "PodMonitor").iter_errors(pm))


# --- KubeRay -----------------------------------------------------------------------------------------


def test_raycluster_head_runs_the_consumer_and_exposes_dashboard_and_metrics(rendered):
    (rc,) = of_kind(rendered["kuberay"], "RayCluster")
    assert rc["metadata"]["annotations"]["ray.io/overwrite-container-cmd"] == "true"
    assert rc["spec"]["rayVersion"] == ray.__version__
    assert rc["spec"]["enableInTreeAutoscaling"] is True
    assert rc["spec"]["autoscalerOptions"]["idleTimeoutSeconds"] > 0
    head = rc["spec"]["headGroupSpec"]
    (container,) = head["template"]["spec"]["containers"]
    assert runs_consumer(container)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {6379, 8265, c.DEFAULT_HTTP_PORT} <= set(ports.values())
    # KubeRay's default Ray metrics port (8080) would collide with Ludus' own HTTP port; the port named
    # `metrics` is the one KubeRay looks for before injecting its own.
    assert int(head["rayStartParams"]["metrics-export-port"]) != c.DEFAULT_HTTP_PORT
    assert ports["metrics"] == int(head["rayStartParams"]["metrics-export-port"])
    assert head["rayStartParams"]["num-gpus"] == "0"
    assert rc["spec"]["authOptions"] == {"mode": "token"}  # Ray token authentication


def test_raycluster_worker_groups_match_ludus_placement(rendered):
    (rc,) = of_kind(rendered["kuberay"], "RayCluster")
    groups = {g["groupName"]: g for g in rc["spec"]["workerGroupSpecs"]}
    assert set(groups) == {"gpu-amd64", "jetson-arm64"}
    for name, arch, k8s_arch in (("gpu-amd64", "x86_64", "amd64"), ("jetson-arm64", "arm64", "arm64")):
        g = groups[name]
        spec = g["template"]["spec"]
        assert spec["nodeSelector"]["kubernetes.io/arch"] == k8s_arch
        assert 0 <= g["minReplicas"] <= g["maxReplicas"] and g["maxReplicas"] >= 1
        assert "replicas" not in g  # the autoscaler's field: an apply must not reset it
        # group-level fields (KubeRay renders --resources/--num-gpus/--labels from them; rayStartParams
        # carries neither: tests/deploy/test_operator_replay.py replays the operator's view)
        assert g["resources"] == {"GPU": "1", f"{c.ARCH_RESOURCE_PREFIX}{arch}": "1000"}
        assert g["labels"] == {c.ARCH_LABEL: arch}
        assert not {"labels", "resources", "num-gpus"} & set(g["rayStartParams"])
        (container,) = spec["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert "ludus-ray-worker" in container["command"]
        assert container["lifecycle"]["preStop"]["exec"]["command"] == ["ludus-ray-worker", "drain"]
    jetson = groups["jetson-arm64"]
    assert jetson["template"]["spec"]["runtimeClassName"] == "nvidia"


def test_kuberay_overlay_turns_ray_autoscaling_on(rendered):
    cm = settings_configmap(rendered["kuberay"])
    assert cm["data"]["LUDUS_AUTOSCALE_ENABLED"] == "true"
    cm = settings_configmap(rendered["keda"])
    assert cm["data"]["LUDUS_AUTOSCALE_ENABLED"] == "false"  # KEDA scales there; no Ray autoscaler


# --- KEDA --------------------------------------------------------------------------------------------


def test_keda_scales_each_worker_deployment_on_the_backlog_of_its_architecture(rendered):
    docs = rendered["keda"]
    deployments = {d["metadata"]["name"]: d for d in of_kind(docs, "Deployment")}
    services = {d["metadata"]["name"]: d for d in of_kind(docs, "Service")}
    scaled = of_kind(docs, "ScaledObject")
    workers = {n for n in deployments if n.startswith("ludus-worker-")}
    assert workers == {"ludus-worker-gpu-amd64", "ludus-worker-jetson-arm64"}
    assert {s["spec"]["scaleTargetRef"]["name"] for s in scaled} == workers
    assert not of_kind(docs, "TriggerAuthentication")  # the head's /backlog needs no broker credentials
    by_arch = {}
    for s in scaled:
        spec = s["spec"]
        target = deployments[spec["scaleTargetRef"]["name"]]
        assert "replicas" not in target["spec"], "KEDA owns the replicas: an apply must not reset them"
        assert spec["minReplicaCount"] == 0 and spec["maxReplicaCount"] >= 1
        assert spec["cooldownPeriod"] > 0 and "fallback" not in spec
        (trigger,) = spec["triggers"]
        # the backlog (ready + unfinished jobs), never the queue length: a running job is acked already
        assert trigger["type"] == "metrics-api"
        meta = trigger["metadata"]
        url = urlsplit(meta["url"])
        host, namespace = url.hostname.split(".")[:2]
        assert url.path == c.BACKLOG_PATH and url.port == c.DEFAULT_HTTP_PORT and url.scheme == "http"
        assert host in services and namespace == target["metadata"]["namespace"]
        assert meta["format"] == "json" and float(meta["targetValue"]) > 0
        arch = {e["name"]: e.get("value") for e in target["spec"]["template"]["spec"]["containers"][0]["env"]}[
            "LUDUS_NODE_ARCH"
        ]
        assert meta["valueLocation"] == f"architectures.{arch}"
        by_arch[arch] = s
    assert set(by_arch) == set(c.ARCHITECTURES)


def test_keda_workers_join_the_head_and_drain_on_scale_down(rendered):
    docs = rendered["keda"]
    services = {d["metadata"]["name"]: d for d in of_kind(docs, "Service")}
    for d in of_kind(docs, "Deployment"):
        name = d["metadata"]["name"]
        spec = d["spec"]["template"]["spec"]
        (container,) = spec["containers"]
        env = {e["name"]: e.get("value") for e in container.get("env", [])}
        if name == "ludus-head":
            assert d["spec"]["replicas"] == 1 and d["spec"]["strategy"]["type"] == "Recreate"
            assert runs_consumer(container)
            continue
        arch = env["LUDUS_NODE_ARCH"]
        assert arch in c.ARCHITECTURES
        assert spec["nodeSelector"]["kubernetes.io/arch"] == {"x86_64": "amd64", "arm64": "arm64"}[arch]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert int(env["LUDUS_NUM_GPUS"]) >= 1
        host, port = env["RAY_HEAD_ADDRESS"].split(":")
        assert host in services and int(port) in {p["port"] for p in services[host]["spec"]["ports"]}
        assert container["lifecycle"]["preStop"]["exec"]["command"] == ["ludus-ray-worker", "drain"]
        assert spec["terminationGracePeriodSeconds"] >= 60
        if arch == "arm64":
            assert spec["runtimeClassName"] == "nvidia"
    svc = services["ludus-head"]
    head_labels = next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "ludus-head")["spec"][
        "template"
    ]["metadata"]["labels"]
    assert svc["spec"]["selector"].items() <= head_labels.items()
    assert {8265, c.DEFAULT_HTTP_PORT, 6379} <= {p["port"] for p in svc["spec"]["ports"]}


# --- both overlays -----------------------------------------------------------------------------------


def test_no_secret_values_anywhere(overlay_docs):
    _, docs = overlay_docs
    assert not of_kind(docs, "Secret"), "Secrets are created out of band, never rendered"
    creds_in_url = re.compile(r"://[^/\s:@]+:[^@\s/]+@")
    for d in docs:
        for path, value in strings(d):
            assert not creds_in_url.search(value), f"credentials in {d['kind']}/{d['metadata']['name']}{path}"
            if re.search(r"(password|token|secret)$", path.rsplit(".", 1)[-1], re.IGNORECASE):
                pytest.fail(f"literal secret-looking field {path} in {d['metadata']['name']}")
    for name, tpl in pod_templates(docs):
        for container in tpl["spec"]["containers"]:
            for e in container.get("env", []):
                if e["name"] in ("LUDUS_DATABASE_URL", "LUDUS_AMQP_URL"):
                    assert "value" not in e, f"{name}: {e['name']} must come from a Secret"
                    assert e["valueFrom"]["secretKeyRef"]["name"] == SECRET_NAME


def test_everything_runs_non_root_with_limits(overlay_docs):
    _, docs = overlay_docs
    templates = pod_templates(docs)
    assert len(templates) == 3
    for name, tpl in templates:
        spec = tpl["spec"]
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and psc["runAsUser"] > 0, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        for container in spec["containers"] + spec.get("initContainers", []):
            sc = container["securityContext"]
            assert sc.get("runAsNonRoot", True) is True, name
            assert sc["allowPrivilegeEscalation"] is False, name
            assert sc["readOnlyRootFilesystem"] is True, name
            assert sc["capabilities"]["drop"] == ["ALL"] and not sc["capabilities"].get("add"), name
            res = container["resources"]
            assert {"cpu", "memory"} <= set(res["requests"]) and {"cpu", "memory"} <= set(res["limits"]), name
            assert container["readinessProbe"] and container["livenessProbe"], name
            mounts = {m["mountPath"] for m in container["volumeMounts"]}
            assert {"/tmp", "/dev/shm"} <= mounts, name  # Ray's writable paths under a read-only root
    for _, kind in [("ray.io/v1", "RayCluster")]:
        for rc in of_kind(docs, kind):
            sc = rc["spec"]["autoscalerOptions"]["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
    (ns,) = of_kind(docs, "Namespace")
    assert ns["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def test_consumer_probes_hit_healthz_on_the_worker_port(overlay_docs):
    _, docs = overlay_docs
    consumers = [(n, ct) for n, tpl in pod_templates(docs) for ct in tpl["spec"]["containers"] if runs_consumer(ct)]
    assert len(consumers) == 1
    _, container = consumers[0]
    # liveness and startup never depend on the broker or the database; readiness does
    for probe in ("startupProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": c.LIVENESS_PATH, "port": c.DEFAULT_HTTP_PORT}
    assert container["readinessProbe"]["httpGet"] == {"path": c.READINESS_PATH, "port": c.DEFAULT_HTTP_PORT}
    # a liveness failure restarts the head (GCS included) only after a minute of a dead process
    live = container["livenessProbe"]
    assert live.get("failureThreshold", 3) * live.get("periodSeconds", 10) >= 60
    assert container["envFrom"] == [{"configMapRef": {"name": "ludus-config"}}]


def test_configmap_holds_only_real_settings(overlay_docs):
    _, docs = overlay_docs
    data = settings_configmap(docs)["data"]
    for key in data:
        assert key.startswith("LUDUS_") and key[6:].lower() in Settings.model_fields, key
    assert int(data["LUDUS_HTTP_PORT"]) == c.DEFAULT_HTTP_PORT
    assert data["LUDUS_JOBS_QUEUE"] == c.JOBS_QUEUE
    settings = Settings(**{k[6:].lower(): v for k, v in data.items()})  # values parse as Settings
    assert settings.http_port == c.DEFAULT_HTTP_PORT
    assert not re.search(r"password|secret|token|_url$", " ".join(data).lower())


IMAGE_COMPONENT = Path(__file__).resolve().parents[2] / "k8s" / "components" / "image" / "kustomization.yaml"


def test_every_image_comes_from_the_one_image_setting(overlay_docs):
    overlay, docs = overlay_docs
    (entry,) = yaml.safe_load(IMAGE_COMPONENT.read_text())["images"]
    expected = entry["newName"] + (f"@{entry['digest']}" if entry.get("digest") else f":{entry['newTag']}")
    images = {
        ct["image"]
        for _, tpl in pod_templates(docs)
        for ct in tpl["spec"]["containers"] + tpl["spec"].get("initContainers", [])
    }
    assert images == {expected}
    assert "localhost" not in expected and not expected.endswith(":latest")
    assert entry.get("digest") or re.fullmatch(r"\d+\.\d+\.\d+", entry["newTag"])  # a release, not a moving tag
    for rc in of_kind(docs, "RayCluster"):  # the autoscaler sidecar runs the head's image
        assert "image" not in rc["spec"]["autoscalerOptions"]
    overlay_file = IMAGE_COMPONENT.parents[2] / "overlays" / overlay / "kustomization.yaml"
    kustomization = yaml.safe_load(overlay_file.read_text())
    assert "images" not in kustomization and "../../components/image" in kustomization["components"]


def test_namespaced_and_service_accounts(overlay_docs):
    overlay, docs = overlay_docs
    for d in docs:
        if d["kind"] in ("Namespace", "RuntimeClass"):
            continue
        assert d["metadata"]["namespace"] == "ludus", d["metadata"]["name"]
    (rtc,) = of_kind(docs, "RuntimeClass")
    assert rtc["metadata"]["name"] == rtc["handler"] == "nvidia"
    accounts = {sa["metadata"]["name"]: sa for sa in of_kind(docs, "ServiceAccount")}
    assert set(accounts) == {"kuberay": {"ludus", "ludus-head"}, "keda": {"ludus"}}[overlay]
    assert all(sa["automountServiceAccountToken"] is False for sa in accounts.values())


def test_the_head_never_lands_on_an_arm64_node(overlay_docs):
    _, docs = overlay_docs
    templates = dict(pod_templates(docs))
    head = templates.get("head", templates.get("ludus-head"))["spec"]
    (term,) = head["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    arch = [e for e in term["matchExpressions"] if e["key"] == "kubernetes.io/arch"]
    assert arch == [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]
    assert not head.get("tolerations")  # and never on a tainted GPU node


def _selects(selector: dict, labels: dict) -> bool:
    return selector.get("matchLabels", {}).items() <= labels.items()


def test_network_policy_and_head_disruption_budget(overlay_docs):
    _, docs = overlay_docs
    policies = of_kind(docs, "NetworkPolicy")
    deny = [
        p
        for p in policies
        if p["spec"]["podSelector"] == {} and not p["spec"].get("ingress") and not p["spec"].get("egress")
    ]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    templates = dict(pod_templates(docs))
    for name, tpl in templates.items():
        labels = tpl["metadata"]["labels"]
        allowed_in = [
            p
            for p in policies
            if p not in deny and _selects(p["spec"]["podSelector"], labels) and p["spec"].get("ingress")
        ]
        assert allowed_in, f"{name} would be unreachable (Ray needs head<->worker traffic)"
    # the dashboard and the metrics are reachable on the head only
    head_labels = templates.get("head", templates.get("ludus-head"))["metadata"]["labels"]
    head_ports = {
        port["port"]
        for p in policies
        if _selects(p["spec"]["podSelector"], head_labels)
        for rule in p["spec"].get("ingress", [])
        for port in rule.get("ports", [])
    }
    assert {8265, c.DEFAULT_HTTP_PORT} <= head_ports
    egress_ports = {
        port["port"] for p in policies for rule in p["spec"].get("egress", []) for port in rule.get("ports", [])
    }
    assert 5672 in egress_ports  # the broker
    (pdb,) = of_kind(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1 and _selects(pdb["spec"]["selector"], head_labels)
    workers = [t for n, t in templates.items() if t is not templates.get("head", templates.get("ludus-head"))]
    assert not any(_selects(pdb["spec"]["selector"], w["metadata"]["labels"]) for w in workers)

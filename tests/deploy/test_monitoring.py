"""PodMonitors, alerts and the Grafana dashboard refer only to metrics the code really exports, on ports the
pods really have.

The exported names are collected from the running code, not from a list: the worker's Prometheus registry
rendered after every metric was touched, and Ray's metrics endpoint scraped from a real Ray node after
Ludus recorded its trial metrics there (Ray prefixes them ``ray_`` and suffixes counters ``_total``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.deploy import kuberay_rules as kr

REPO = Path(__file__).resolve().parents[2]
MONITORING = REPO / "k8s" / "components" / "monitoring"
METRIC = re.compile(r"\b((?:ray_)?ludus_[a-z0-9_]+)\b")
SEVERITIES = {"critical", "warning", "info"}


def _rule_docs(docs: list[dict]) -> tuple[list[dict], dict]:
    rules = [r for d in docs if d["kind"] == "PrometheusRule" for g in d["spec"]["groups"] for r in g["rules"]]
    (cm,) = [d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "ludus-grafana-dashboard"]
    return rules, json.loads(cm["data"]["ludus.json"])


def referenced_metrics(docs: list[dict]) -> dict[str, set[str]]:
    rules, dashboard = _rule_docs(docs)
    out: dict[str, set[str]] = {}
    for rule in rules:
        out.setdefault("alert " + rule["alert"], set()).update(METRIC.findall(rule["expr"]))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            out.setdefault("panel " + panel["title"], set()).update(METRIC.findall(target["expr"]))
    return out


def worker_metric_names() -> set[str]:
    from prometheus_client.parser import text_string_to_metric_families

    from ludus.worker.metrics import WorkerMetrics

    m = WorkerMetrics()
    m.backlog_age.set(1)
    m.duration.observe(3.0)
    names = set()
    for family in text_string_to_metric_families(m.render().decode()):
        names.update(sample.name for sample in family.samples)
    return names


RAY_SCRAPE = textwrap.dedent("""
    import json, os, socket, time, urllib.request
    import ray
    from ludus.cluster import metrics
    s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
    ray.init(address="local", num_cpus=1, include_dashboard=False, _metrics_export_port=port, log_to_driver=False)
    names, deadline = set(), time.monotonic() + 150
    while time.monotonic() < deadline:
        for state in ("COMPLETE", "FAIL", "PRUNED"):
            metrics.trial_finished("job", "x86_64", state, 0.5)
        metrics.trial_retried("job", "x86_64")
        metrics.set_bar_evals_per_second("job", 1e6)
        metrics.set_jobs_running(1)
        metrics.set_backlog(2)
        try:
            body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
            names = {l.split("{")[0].split(" ")[0] for l in body.splitlines() if l.startswith("ray_ludus_")}
        except OSError:
            pass
        if len(names) >= 10:
            break
        time.sleep(2)
    ray.shutdown()
    print(json.dumps(sorted(names)))
""")


@pytest.fixture(scope="module")
def ray_metric_names() -> set[str]:
    """Scraped from a real Ray node (a separate process: its own Ray, its metrics port)."""
    out = subprocess.run(
        [sys.executable, "-c", RAY_SCRAPE],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        check=False,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-2000:]
    names = set(json.loads(out.stdout.strip().splitlines()[-1]))
    assert names, "Ray exported none of Ludus' metrics"
    return names


def test_every_metric_the_alerts_and_dashboard_use_is_exported(rendered, ray_metric_names):
    exported = worker_metric_names() | ray_metric_names
    for overlay, docs in rendered.items():
        refs = referenced_metrics(docs)
        assert sum(map(len, refs.values())) >= 20, refs
        missing = {where: sorted(names - exported) for where, names in refs.items() if names - exported}
        assert not missing, f"{overlay}: not exported by the code: {missing}"
    # and the alerts the issue asks for exist
    rules, _ = _rule_docs(rendered["keda"])
    alerts = {r["alert"] for r in rules}
    assert {"LudusBacklogTooOld", "LudusJobsFailing", "LudusNoConsumer", "LudusTrialFailureRate"} <= alerts


def test_the_check_would_catch_a_misspelt_metric(rendered, ray_metric_names):
    docs = json.loads(json.dumps(rendered["keda"]))
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")["spec"]["groups"][1]["rules"][0]
    rule["expr"] = rule["expr"].replace("ray_ludus_trials_failed_total", "ray_ludus_trials_failed")
    exported = worker_metric_names() | ray_metric_names
    assert any(names - exported for names in referenced_metrics(docs).values())


def test_alerts_are_well_formed(rendered):
    rules, _ = _rule_docs(rendered["kuberay"])
    assert len({r["alert"] for r in rules}) == len(rules)
    for r in rules:
        expr = r["expr"]
        assert expr.count("(") == expr.count(")") and expr.count("[") == expr.count("]"), r["alert"]
        assert re.fullmatch(r"\d+[smh]", r["for"]), r["alert"]
        assert r["labels"]["severity"] in SEVERITIES
        assert r["annotations"]["summary"] and r["annotations"]["description"]


def test_dashboard_is_grafana_json_on_a_datasource_variable(rendered):
    _, dashboard = _rule_docs(rendered["kuberay"])
    assert dashboard["uid"] and dashboard["title"] == "Ludus"
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(set(ids)) == len(ids)
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}" and target["expr"]
    (cm,) = [
        d for d in rendered["keda"] if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "ludus-grafana-dashboard"
    ]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["ludus.json"]) == json.loads((MONITORING / "dashboards" / "ludus.json").read_text())


def _container_ports(template: dict) -> set[str]:
    return {p["name"] for ct in template["spec"]["containers"] for p in ct.get("ports", []) if p.get("name")}


def test_pod_monitors_select_pods_that_have_the_named_ports(rendered):
    """keda: the Deployments' pods; kuberay: the pods KubeRay would create (replayed)."""
    for overlay, docs in rendered.items():
        monitors = [d for d in docs if d["kind"] == "PodMonitor"]
        assert {m["metadata"]["name"] for m in monitors} == {"ludus-head", "ludus-workers"}
        if overlay == "keda":
            pods = [d["spec"]["template"] for d in docs if d["kind"] == "Deployment"]
        else:
            (rc,) = [d for d in docs if d["kind"] == "RayCluster"]
            pods = [kr.head_pod(rc), *kr.worker_pods(rc).values()]
        for monitor in monitors:
            selector = monitor["spec"]["selector"]["matchLabels"]
            selected = [p for p in pods if selector.items() <= p["metadata"]["labels"].items()]
            assert selected, (overlay, monitor["metadata"]["name"])
            wanted = {e["port"] for e in monitor["spec"]["podMetricsEndpoints"]}
            for pod in selected:
                assert wanted <= _container_ports(pod), (overlay, monitor["metadata"]["name"], wanted)

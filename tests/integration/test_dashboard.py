"""The Grafana dashboard and the alerting rules ask only for what the operator really exposes.

A real operator (in-process, on the local control plane) runs a policy through findings in a
namespace, issuance, trust bundles and a completed CA rotation; then its /metrics is scraped.
Every query of the dashboard (panels and template variables) and every PrometheusRule
expression must use metric names present in that scrape, match only on labels those metrics
carry, and group or print (legend, ``$labels``) only labels the expression's metrics carry.
promtool, which has the real PromQL parser, checks every dashboard query's syntax.
"""

from __future__ import annotations

import json
import re
import subprocess
import uuid

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

import certgen
from certpolicy.kube.namespaces import ensure_namespace
from crd import GROUP, PLURAL, VERSION
from kubewait import wait_for
from paths import REPO
from promql import names

DASHBOARD = REPO / "charts" / "certpolicy-operator" / "dashboards" / "certpolicy-operator.json"
RULES = REPO / "manifests" / "prometheusrule.yaml"
# Grafana's variables, as a query would be sent
VARIABLES = {"$__rate_interval": "5m", "$__interval": "1m", "$__range": "1h", "$policy": ".*", "$namespace": ".*",
             "$role": ".*", "$severity": ".*"}
PANEL_KINDS = {"timeseries", "table", "stat", "bargauge", "state-timeline", "row"}


def dashboard_queries() -> list[tuple[str, str, str]]:
    """(where, expression, legend) for every panel target and template variable."""
    dash = json.loads(DASHBOARD.read_text())
    out = []
    for panel in dash["panels"]:
        for target in panel.get("targets", ()):
            out.append((f"panel {panel['title']!r} {target['refId']}", target["expr"], target.get("legendFormat", "")))
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            m = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", var["query"]["query"])
            assert m, f"variable {var['name']}: only label_values(metric, label) is used"
            out.append((f"variable ${var['name']}", f"{m[1]}{{{m[2]}=~\".+\"}}", ""))
    return out


def rule_expressions() -> list[tuple[str, str, str]]:
    groups = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    return [(f"alert {r['alert']}", r["expr"], json.dumps(r.get("annotations", {})))
            for g in groups for r in g["rules"]]


def substitute(expr: str) -> str:
    for var, value in sorted(VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(var, value)
    return expr


def test_dashboard_has_the_panels_the_runbook_names():
    dash = json.loads(DASHBOARD.read_text())
    titles = {p["title"] for p in dash["panels"]}
    for wanted in ("Certificates by time left", "Findings by reason and namespace", "Policies' compliance",
                   "Rotation step", "Rotation history", "Seconds since each watch last heard from the API server",
                   # issue #26 item 8: per-Secret findings, the leader, the build version, the watch state
                   "Findings by Secret", "Replicas leading", "Leader", "Build version", "Watch state",
                   "Policies Degraded", "Findings not exported (series cap)", "Admission webhook"):
        assert wanted in titles
    assert {p["type"] for p in dash["panels"]} <= PANEL_KINDS
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    taken: dict[tuple[int, int], str] = {}  # no panel covers another
    for p in dash["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        for cell in ((x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])):
            assert cell not in taken, (p["title"], taken[cell])
            taken[cell] = p["title"]
    for p in dash["panels"]:
        if p["type"] != "row":
            assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"} and p["targets"], p["title"]


def test_dashboard_queries_parse(promtool, tmp_path):
    """promtool's parser: each query as a recording rule in a rule file it checks."""
    rules = [{"record": f"dashboard:query{i}", "expr": substitute(expr)}
             for i, (_where, expr, _legend) in enumerate(dashboard_queries())]
    path = tmp_path / "dashboard.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    proc = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.fixture
def scrape(operator, policies, core_v1, custom_api, unique_name):
    """/metrics of an operator that has seen findings, issued a leaf, distributed a bundle and
    completed a CA rotation: every metric family has samples with its labels."""

    label = uuid.uuid4().hex[:8]
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels={"dashboard": label})
    chain = certgen.pki(leaf_kw={"cn": "api.dash.test", "eku": ["serverAuth"]})  # lacks clientAuth
    core_v1.create_namespaced_secret(ns, {"metadata": {"name": "user-tls"}, "type": "kubernetes.io/tls",
                                          "data": chain.secret(ca=[chain.root])["data"]})
    policies({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
        "spec": {
            "selector": {"namespaceSelector": {"matchLabels": {"dashboard": label}}},
            "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
            "ca": {"secretName": f"{unique_name}-ca"},
            "trustBundles": [{"configMap": {"name": "dash-ca"}, "namespaceSelector": {"matchLabels": {"dashboard": label}}}],
            "issuance": [{"secretName": "app-tls", "namespace": ns, "dnsNames": ["app.dash.test"]}],
            "rotation": {"propagationDelay": "0s"},
        },
    })

    def status():
        return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name).get("status") or {}

    wait_for(lambda: (status().get("issued") or {}).get("ready") == 1 and status().get("summary", {}).get("selected") == 2,
             timeout=60, what="leaf issued and both Secrets selected")
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                           {"metadata": {"annotations": {"certpolicy.io/rotate": "dashboard"}}})

    def rotated():
        rot = status().get("rotation") or {}
        return not rot.get("id") and (rot.get("history") or [{}])[0].get("outcome") == "Completed"

    wait_for(rotated, timeout=90, what="rotation completed")

    def scraped():
        text = operator.scrape()
        return text if "certpolicy_rotation_last_finished_timestamp_seconds{" in text else None

    return wait_for(scraped, timeout=30, what="the finished rotation in /metrics")


def exposed(text: str) -> dict[str, set[str]]:
    """Sample name -> label names, from a Prometheus text exposition."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


# Target labels Prometheus adds to every sample scraped through a ServiceMonitor (Prometheus
# Operator: namespace, service, pod, container, endpoint; Prometheus: job, instance).
TARGET_LABELS = {"namespace", "service", "pod", "container", "endpoint", "job", "instance"}


def as_stored_by_prometheus(have: dict[str, set[str]]) -> dict[str, set[str]]:
    """Prometheus's scrape with honor_labels false (a ServiceMonitor without honorLabels): an
    exposed label that collides with a target label is stored as exported_<label>, and the target
    labels (the operator's own namespace, pod, ...) are added to every series."""
    return {metric: {f"exported_{label}" if label in TARGET_LABELS else label for label in labels} | TARGET_LABELS
            for metric, labels in have.items()}


@pytest.mark.parametrize("stored", [pytest.param(False, id="as-exposed"),
                                    pytest.param(True, id="as-stored-behind-a-servicemonitor")])
def test_every_query_and_alert_uses_exposed_metrics_and_labels(scrape, stored):
    have = exposed(scrape)
    if stored:
        have = as_stored_by_prometheus(have)
    problems = []
    for where, expr, printed in dashboard_queries() + rule_expressions():
        used = names(substitute(expr))
        available: set[str] = set()
        for metric, labels in used.metrics.items():
            if metric not in have:
                problems.append(f"{where}: metric {metric} is not exposed")
                continue
            available |= have[metric]
            if labels - have[metric]:
                problems.append(f"{where}: {metric} has no label {sorted(labels - have[metric])}")
        if used.grouping - available:
            problems.append(f"{where}: groups by {sorted(used.grouping - available)}, not labels of its metrics")
        shown = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", printed)) | set(re.findall(r"\$labels\.(\w+)", printed))
        if shown - available:
            problems.append(f"{where}: prints {sorted(shown - available)}, not labels of its metrics")
        # a target label names the operator's Pod, never the certificate's Secret
        if stored and (used.grouping | shown | {x for labels in used.metrics.values() for x in labels}) & TARGET_LABELS:
            problems.append(f"{where}: filters, groups or prints a target label, the operator's not the Secret's")
    assert not problems, "\n".join(problems)
    assert {"certpolicy_findings", "certpolicy_watch_silence_seconds", "certpolicy_rotation_step", "certpolicy_secret_findings",
            "certpolicy_leader", "certpolicy_build_info", "certpolicy_watch_up", "certpolicy_policy_degraded"} <= set(have)


def degraded_samples(text: str, policy: str) -> dict[str, float]:
    """reason -> value of the policy's certpolicy_policy_degraded samples in a scrape."""
    return {s.labels["reason"]: s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name == "certpolicy_policy_degraded" and s.labels["policy"] == policy}


def test_degraded_policy_is_a_series_until_it_is_not(operator, policies, core_v1, unique_name, namespace):
    """certpolicy_policy_degraded, which CertpolicyPolicyDegraded reads: 1 under the condition's
    reason while the trust bundle is missing, 0 under AsExpected once it exists."""
    ca = certgen.root("degraded metric CA")
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "app-tls"}, "type": "kubernetes.io/tls",
                                                 "data": certgen.tls_secret(certgen.leaf(ca, "app.deg.test"))["data"]})
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
              "spec": {"selector": {"names": [{"namespace": namespace, "name": "app-tls"}]},
                       "requirements": {"trustBundle": {"configMap": {"namespace": namespace, "name": "absent"}}}}})
    assert wait_for(lambda: degraded_samples(operator.scrape(), unique_name) or None, timeout=60,
                    what="the policy's degraded series") == {"TrustBundleMissing": 1.0}
    core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "absent"}, "data": {"ca.crt": certgen.pem(ca).decode()}})
    assert wait_for(lambda: (lambda s: s if s.get("AsExpected") == 0.0 else None)(degraded_samples(operator.scrape(), unique_name)),
                    timeout=60, what="the degraded series back at 0") == {"AsExpected": 0.0}

"""The Helm chart: lint, schema, no drift from manifests/, and a server-side dry run on a real API server.

One source of truth: the chart's CRD, its ClusterRole's rules and its PrometheusRule's groups are
the files in crds/ and manifests/ themselves (symlinks under charts/certpolicy-operator/), and
the templated objects are held to `kubectl kustomize manifests/` here, object by object.

Then each value users asked for (issue #26 item 7) is rendered and its effect on the objects
checked, the helm test Pod's check is run against a real operator, and a chart rendered with the
new values is applied to the API server with a server-side dry run.
"""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from paths import REPO

CHART = REPO / "charts" / "certpolicy-operator"
RELEASE, NAMESPACE = "certpolicy-operator", "certpolicy-system"
# Labels Helm conventionally adds (release bookkeeping); manifests/ has only app.kubernetes.io/name.
HELM_LABELS = {"helm.sh/chart", "app.kubernetes.io/instance", "app.kubernetes.io/version",
               "app.kubernetes.io/managed-by",
               "helm.sh/resource-policy"}  # an annotation: crds.keep, on the CRD
ALL_OPTIONAL = ["--set", "serviceMonitor.enabled=true", "--set", "prometheusRule.enabled=true",
                "--set", "grafanaDashboard.enabled=true", "--set", "networkPolicy.enabled=true",
                "--set", "rbac.aggregateToEdit=true"]


def run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=120, **kw)


def render(helm, *args: str, release: str = RELEASE, namespace: str = NAMESPACE) -> list[dict]:
    proc = run([helm, "template", release, CHART, "--namespace", namespace, *args])
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def is_hook(obj: dict) -> bool:
    """A Helm hook (the helm test Pod): not installed with the release."""
    return "helm.sh/hook" in (obj["metadata"].get("annotations") or {})


def key(obj: dict) -> tuple[str, str, str]:
    meta = obj["metadata"]
    return obj["kind"], meta.get("namespace", ""), meta["name"]


def without_helm_labels(value):
    """The object minus Helm's bookkeeping labels, wherever labels or selectors hold them."""
    if isinstance(value, dict):
        return {k: without_helm_labels(v) for k, v in value.items()
                if k not in HELM_LABELS and not (k == "annotations" and set(v) <= HELM_LABELS)}
    if isinstance(value, list):
        return [without_helm_labels(v) for v in value]
    return value


def test_lint_with_defaults_and_every_option(helm):
    for extra in ([], ALL_OPTIONAL):
        proc = run([helm, "lint", "--strict", CHART, *extra])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("bad, complaint", [
    (["--set", "replicaCount=0"], "replicaCount"),
    (["--set", "image.pullPolicy=Sometimes"], "pullPolicy"),
    (["--set", "serviceMonitor.interval=often"], "interval"),
    (["--set", "metrics.port=0"], "port"),
    (["--set", "imagePullSecret=x"], "imagePullSecret"),  # a typo of imagePullSecrets
])
def test_schema_rejects_bad_values(helm, bad, complaint):
    proc = run([helm, "template", RELEASE, CHART, *bad])
    assert proc.returncode != 0
    assert "values don't meet the specifications of the schema" in proc.stderr and complaint in proc.stderr, proc.stderr


def test_defaults_render_what_kustomize_renders(helm):
    """Object by object, the chart with default values is manifests/ plus Helm's labels, minus
    the Namespace (Helm creates it with --create-namespace; it never owns it)."""
    from certpolicy.localcluster.binaries import ensure_binaries

    kustomized = run([ensure_binaries().kubectl, "kustomize", REPO / "manifests"])
    assert kustomized.returncode == 0, kustomized.stderr
    expected = {key(d): d for d in yaml.safe_load_all(kustomized.stdout) if d and d["kind"] != "Namespace"}
    rendered = {key(d): without_helm_labels(d) for d in render(helm) if not is_hook(d)}
    assert sorted(rendered) == sorted(expected)
    for k, obj in expected.items():
        assert rendered[k] == obj, f"{k} differs between the chart and manifests/"


def test_optional_objects_render_from_the_same_sources(helm):
    docs = render(helm, *ALL_OPTIONAL)
    objs = {d["kind"]: d for d in docs}
    rule = yaml.safe_load((REPO / "manifests" / "prometheusrule.yaml").read_text())
    assert objs["PrometheusRule"]["spec"] == rule["spec"]  # manifests/prometheusrule.yaml, verbatim
    monitor = objs["ServiceMonitor"]["spec"]
    service = next(d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-metrics"))
    assert monitor["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    assert monitor["endpoints"][0]["port"] in [p["name"] for p in service["spec"]["ports"]]
    dashboard = objs["ConfigMap"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert dashboard["data"]["certpolicy-operator.json"] == (CHART / "dashboards" / "certpolicy-operator.json").read_text().strip()


def test_restart_workloads_switch_removes_the_rule(helm, tmp_path):
    """restartWorkloads.enabled=false (chart) and components/no-restart-workloads (kustomize) both
    leave out exactly the workloads ClusterRole and its binding: no other rule grants apps."""
    from certpolicy.localcluster.binaries import ensure_binaries

    def apps_rules(docs: list[dict]) -> list[str]:
        return [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRole"
                for r in d["rules"] if "apps" in r.get("apiGroups", [])]

    default, without = render(helm), render(helm, "--set", "restartWorkloads.enabled=false")
    assert apps_rules(default) == ["certpolicy-operator-restart-workloads"]
    assert apps_rules(without) == []
    assert sorted(key(d) for d in default if "restart-workloads" not in d["metadata"]["name"]) \
        == sorted(key(d) for d in without)

    kustomization = tmp_path / "kustomization.yaml"
    manifests = os.path.relpath(REPO / "manifests", tmp_path)  # kustomize refuses absolute paths
    kustomization.write_text(yaml.safe_dump({
        "resources": [manifests], "components": [f"{manifests}/components/no-restart-workloads"]}))
    kubectl = ensure_binaries().kubectl
    full = [d for d in yaml.safe_load_all(run([kubectl, "kustomize", REPO / "manifests"]).stdout) if d]
    proc = run([kubectl, "kustomize", tmp_path])
    assert proc.returncode == 0, proc.stderr
    reduced = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert apps_rules(full) == ["certpolicy-operator-restart-workloads"] and apps_rules(reduced) == []
    assert sorted(key(d) for d in full if d["metadata"]["name"] != "certpolicy-operator-restart-workloads") \
        == sorted(key(d) for d in reduced)


def test_security_contexts_are_values_without_a_fixed_uid(helm):
    """The default runs under any UID (none is pinned: OpenShift's restricted-v2 assigns one);
    podSecurityContext and securityContext replace the shipped ones."""
    def pod(*args: str) -> dict:
        return next(d for d in render(helm, *args) if d["kind"] == "Deployment")["spec"]["template"]["spec"]

    default = pod()
    assert default["securityContext"] == {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}
    assert default["containers"][0]["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]}}
    pinned = pod("--set", "podSecurityContext.runAsUser=65532", "--set", "securityContext.runAsGroup=0")
    assert pinned["securityContext"]["runAsUser"] == 65532 and pinned["securityContext"]["runAsNonRoot"] is True
    assert pinned["containers"][0]["securityContext"]["runAsGroup"] == 0


def dry_run(cluster, docs: list[dict]) -> str:
    # --force-conflicts: other tests of the session apply some of these objects from manifests/
    # with client-side apply; a dry run only asks the API server whether it would accept them.
    proc = cluster.kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server", "-f", "-",
                           input=yaml.safe_dump_all(docs), check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_server_side_dry_run_of_the_rendered_chart(cluster, helm, operator_namespace):
    # ServiceMonitor and PrometheusRule need the Prometheus Operator's CRDs, which this control
    # plane does not have; their content is checked above and by promtool (test_alerts.py).
    docs = [d for d in render(helm, "--include-crds", "--set", "grafanaDashboard.enabled=true")]
    out = dry_run(cluster, docs)
    for kind, _ns, name in map(key, docs):
        assert f"{name} serverside-applied (server dry run)" in out, (kind, name, out)
    assert {d["kind"] for d in docs} >= {"CustomResourceDefinition", "ServiceAccount", "ClusterRole",
                                         "ClusterRoleBinding", "Service", "Deployment", "ConfigMap",
                                         "ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding",
                                         "PodDisruptionBudget", "Role", "RoleBinding"}


def test_another_release_in_another_namespace(cluster, helm, namespace):
    """Names and namespaces follow the release: two installs' objects do not collide (and their
    replicas contend for the same leader Lease)."""
    docs = render(helm, "--set", "grafanaDashboard.enabled=true", release="cp", namespace=namespace)
    names = {key(d) for d in docs}
    assert ("Deployment", namespace, "cp-certpolicy-operator") in names
    assert ("ClusterRole", "", "cp-certpolicy-operator") in names
    binding = next(d for d in docs if d["kind"] == "ClusterRoleBinding")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "cp-certpolicy-operator", "namespace": namespace}]
    # The leader Lease is the cluster's one, kube-system/certpolicy-operator, whatever the release's
    # namespace: this install contends with the default one (test_two_installs.py).
    leases = next(d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"].endswith("leader-election"))
    assert leases["metadata"]["namespace"] == "kube-system" and leases["subjects"] == binding["subjects"]
    assert leases["metadata"]["name"] == f"cp-certpolicy-operator-{namespace}-leader-election"
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == leases["metadata"]["name"])
    assert role["rules"][0]["resourceNames"] == ["certpolicy-operator"]
    vap = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicy")
    assert vap["spec"]["matchConditions"][0]["expression"] == \
        f'request.userInfo.username == "system:serviceaccount:{namespace}:cp-certpolicy-operator"'
    vap_binding = next(d for d in docs if d["kind"] == "ValidatingAdmissionPolicyBinding")
    assert vap_binding["spec"]["policyName"] == vap["metadata"]["name"] == "cp-certpolicy-operator-managed-writes-only"
    dry_run(cluster, docs)


# ---- values users asked for (issue #26 item 7): each value's effect on the rendered objects ----

def objs(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict], kind: str, name_suffix: str = "") -> dict:
    found = [d for d in objs(docs, kind) if d["metadata"]["name"].endswith(name_suffix)]
    assert len(found) == 1, (kind, name_suffix, [d["metadata"]["name"] for d in found])
    return found[0]


def container(docs: list[dict]) -> dict:
    return one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def values_file(tmp_path, values: dict) -> list[str]:
    path = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(values))
    return ["-f", str(path)]


def test_operator_flags_extra_args_and_env(helm, tmp_path):
    """Each flag of `certpolicy run` has a value; the defaults add none (manifests/ has none)."""
    assert container(render(helm))["args"] == ["run", "--liveness=http://0.0.0.0:8080/healthz"]
    docs = render(helm, *values_file(tmp_path, {
        "operator": {"probeAllow": ["*.svc", "10.0.0.0/8"], "allowSystemNamespaces": True,
                     "certManagerNamespace": "cm-system", "leaderElect": False,
                     "leaseNamespace": "certpolicy-system", "leaseName": "cp-lease", "leaseDuration": 30,
                     "renewDeadline": 20, "retryPeriod": 4, "logLevel": "debug"},
        "extraArgs": ["--identity=x"], "extraEnv": [{"name": "HTTPS_PROXY", "value": "http://proxy:3128"}]}))
    c = container(docs)
    assert c["args"] == ["run", "--liveness=http://0.0.0.0:8080/healthz", "--probe-allow=*.svc,10.0.0.0/8",
                         "--allow-system-namespaces", "--cert-manager-namespace=cm-system", "--no-leader-elect", "--lease-namespace=certpolicy-system",
                         "--lease-name=cp-lease", "--lease-duration=30", "--renew-deadline=20", "--retry-period=4",
                         "--verbose", "--identity=x"]
    assert c["env"][-1] == {"name": "HTTPS_PROXY", "value": "http://proxy:3128"}
    # `certpolicy run`'s own parser reads them as meant
    import argparse

    from certpolicy.runcmd import configure_parser

    parser = argparse.ArgumentParser()
    configure_parser(parser)
    parsed = parser.parse_args(c["args"][1:])
    assert (parsed.probe_allow, parsed.allow_system_namespaces, parsed.cert_manager_namespace, parsed.leader_elect,
            parsed.lease_namespace, parsed.lease_name, parsed.lease_duration, parsed.renew_deadline,
            parsed.retry_period, parsed.verbose, parsed.identity) == (
        "*.svc,10.0.0.0/8", True, "cm-system", False, "certpolicy-system", "cp-lease", 30, 20, 4, True, "x")
    # the leader Lease moved: the Role that grants it and the admission policy's Lease rule follow
    role = one(docs, "Role", "leader-election")
    assert role["metadata"]["namespace"] == "certpolicy-system" and role["rules"][0]["resourceNames"] == ["cp-lease"]
    assert one(docs, "RoleBinding", "leader-election")["metadata"]["namespace"] == "certpolicy-system"
    vap = one(docs, "ValidatingAdmissionPolicy")
    lease_rules = [v for v in vap["spec"]["validations"] if "variables.lease" in v["expression"]]
    assert lease_rules and all('request.namespace == "certpolicy-system" && request.name == "cp-lease"' in v["expression"]
                               for v in lease_rules)
    assert "certpolicy-system/cp-lease" in lease_rules[0]["messageExpression"]
    assert "kube-system/certpolicy-operator" not in yaml.safe_dump(lease_rules)


def test_crds_enabled_and_keep(helm):
    """The CRD is a template: installed and upgraded with the release, kept on uninstall by default."""
    crd = one(render(helm), "CustomResourceDefinition")
    assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert crd["spec"] == yaml.safe_load((REPO / "crds" / "certificatepolicies.certpolicy.io.yaml").read_text())["spec"]
    assert "annotations" not in one(render(helm, "--set", "crds.keep=false"), "CustomResourceDefinition")["metadata"]
    assert objs(render(helm, "--set", "crds.enabled=false"), "CustomResourceDefinition") == []


def test_service_account_create_and_name(helm):
    docs = render(helm, "--set", "serviceAccount.create=false", "--set", "serviceAccount.name=platform-sa")
    assert objs(docs, "ServiceAccount") == []
    assert one(docs, "Deployment")["spec"]["template"]["spec"]["serviceAccountName"] == "platform-sa"
    subjects = [s for d in objs(docs, "ClusterRoleBinding") + objs(docs, "RoleBinding") for s in d["subjects"]]
    assert subjects and {s["name"] for s in subjects} == {"platform-sa"}
    assert one(docs, "ValidatingAdmissionPolicy")["spec"]["matchConditions"][0]["expression"] == \
        f'request.userInfo.username == "system:serviceaccount:{NAMESPACE}:platform-sa"'
    proc = run([helm, "template", RELEASE, CHART, "--set", "serviceAccount.create=false"])
    assert proc.returncode != 0 and "serviceAccount.create=false needs serviceAccount.name" in proc.stderr


def test_name_overrides(helm):
    docs = render(helm, "--set", "nameOverride=certs", release="prod")
    assert one(docs, "Deployment")["metadata"]["name"] == "prod-certs"
    assert one(docs, "Deployment")["spec"]["selector"]["matchLabels"]["app.kubernetes.io/name"] == "certs"
    docs = render(helm, "--set", "fullnameOverride=pki", release="prod")
    names = {d["metadata"]["name"] for d in docs if d["kind"] not in ("CustomResourceDefinition",
                                                                       "ValidatingWebhookConfiguration")}
    assert all(n.startswith("pki") for n in names), names
    assert one(docs, "Deployment")["metadata"]["name"] == "pki"
    env = {e["name"]: e.get("value") for e in container(docs)["env"]}
    assert env["CERTPOLICY_WEBHOOK_SERVICE"] == "pki-webhook" and one(docs, "Service", "-webhook")["metadata"]["name"] == "pki-webhook"


def test_topology_spread_and_disruption_budget(helm, tmp_path):
    docs = render(helm, *values_file(tmp_path, {"topologySpreadConstraints": [{
        "maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone", "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "{{ .Release.Name }}"}}}],
        "podDisruptionBudget": {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow"}}))
    spread = one(docs, "Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    assert spread[0]["labelSelector"]["matchLabels"] == {"app.kubernetes.io/instance": RELEASE}  # through tpl
    assert one(docs, "PodDisruptionBudget")["spec"] == {
        "maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow",
        "selector": {"matchLabels": {"app.kubernetes.io/name": "certpolicy-operator", "app.kubernetes.io/instance": RELEASE}}}
    assert objs(render(helm, "--set", "podDisruptionBudget.enabled=false"), "PodDisruptionBudget") == []
    assert objs(render(helm, "--set", "replicaCount=1"), "PodDisruptionBudget") == []


def test_image_digest_and_pull_secrets(helm, tmp_path):
    digest = "sha256:" + "a" * 64
    docs = render(helm, *values_file(tmp_path, {"image": {"digest": digest, "tag": "ignored"},
                                                "global": {"imagePullSecrets": ["shared", {"name": "regcred"}]},
                                                "imagePullSecrets": [{"name": "regcred"}, {"name": "mine"}]}))
    assert container(docs)["image"] == f"ghcr.io/certpolicy/certpolicy-operator@{digest}"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "shared"}, {"name": "regcred"}, {"name": "mine"}]
    test_pod = next(d for d in docs if is_hook(d))
    assert test_pod["spec"]["imagePullSecrets"] == pod["imagePullSecrets"]
    assert test_pod["spec"]["containers"][0]["image"] == container(docs)["image"]
    assert container(render(helm, "--set", "image.tag=1.2.3"))["image"] == "ghcr.io/certpolicy/certpolicy-operator:1.2.3"


def test_service_monitor_values(helm, tmp_path):
    relabel = [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}]
    drop = [{"sourceLabels": ["__name__"], "regex": "certpolicy_watch_events_total", "action": "drop"}]
    docs = render(helm, *values_file(tmp_path, {"serviceMonitor": {
        "enabled": True, "namespace": "monitoring", "honorLabels": True, "scrapeTimeout": "10s",
        "relabelings": relabel, "metricRelabelings": drop, "labels": {"release": "kps"}}}))
    monitor = one(docs, "ServiceMonitor")
    assert monitor["metadata"]["namespace"] == "monitoring" and monitor["metadata"]["labels"]["release"] == "kps"
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}  # still the operator's Service
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s",
                                             "scrapeTimeout": "10s", "honorLabels": True,
                                             "relabelings": relabel, "metricRelabelings": drop}]


def test_prometheus_rule_thresholds_labels_and_per_alert_switches(helm, tmp_path, promtool):
    docs = render(helm, *values_file(tmp_path, {"prometheusRule": {
        "enabled": True, "namespace": "monitoring", "annotations": {"owner": "pki"},
        "additionalRuleLabels": {"team": "pki"}, "additionalRuleAnnotations": {"dashboard": "https://grafana/d/certpolicy-operator"},
        "runbookBaseURL": "https://wiki.example.com/certpolicy/troubleshooting",
        "alerts": {"CertpolicyLeafExpiringSoon": {"days": 21, "for": "30m"},
                   "CertpolicyPolicyDegraded": {"for": "2h", "severity": "critical"},
                   "CertpolicyMultipleLeaders": {"enabled": False},
                   "CertpolicyWatchDown": {"labels": {"page": "yes"}},
                   "CertpolicyRotationStuck": {"for": "1h"}}}}))
    rule = one(docs, "PrometheusRule")
    assert rule["metadata"]["namespace"] == "monitoring" and rule["metadata"]["annotations"] == {"owner": "pki"}
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    shipped = {r["alert"]: r for g in yaml.safe_load((REPO / "manifests" / "prometheusrule.yaml").read_text())["spec"]["groups"]
               for r in g["rules"]}
    assert set(alerts) == set(shipped) - {"CertpolicyMultipleLeaders"}
    leaf = alerts["CertpolicyLeafExpiringSoon"]
    assert leaf["expr"] == shipped["CertpolicyLeafExpiringSoon"]["expr"].replace("< 14 * 86400", "< 21 * 86400")
    assert leaf["for"] == "30m" and "expires in less than 21 days" in leaf["annotations"]["summary"]
    degraded = alerts["CertpolicyPolicyDegraded"]
    assert degraded["for"] == "2h" and degraded["labels"]["severity"] == "critical"
    assert degraded["annotations"]["summary"] == "CertificatePolicy {{ $labels.policy }} has been Degraded for 2h"
    assert alerts["CertpolicyWatchDown"]["labels"] == {"severity": "warning", "team": "pki", "page": "yes"}
    for name, r in alerts.items():
        assert r["labels"]["team"] == "pki" and r["annotations"]["dashboard"].startswith("https://grafana/")
        anchor = shipped[name]["annotations"]["runbook_url"].split("#")[1]
        assert r["annotations"]["runbook_url"] == f"https://wiki.example.com/certpolicy/troubleshooting#{anchor}"
    # a summary that does not state its for: duration keeps its words (12 hours = 6 h window + for)
    stuck = alerts["CertpolicyRotationStuck"]
    assert stuck["for"] == "1h" and stuck["annotations"]["summary"] == shipped["CertpolicyRotationStuck"]["annotations"]["summary"]
    untouched = {k: v for k, v in alerts["CertpolicyMissingClientAuth"].items() if k not in ("labels", "annotations")}
    assert untouched == {k: v for k, v in shipped["CertpolicyMissingClientAuth"].items() if k not in ("labels", "annotations")}
    # what the chart rendered is still a rule file promtool accepts
    path = tmp_path / "rendered.rules.yaml"
    path.write_text(yaml.safe_dump(rule["spec"]))
    check = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_network_policy(helm, tmp_path):
    assert objs(render(helm), "NetworkPolicy") == []
    prom = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    egress = [{"ports": [{"port": 6443, "protocol": "TCP"}, {"port": 443, "protocol": "TCP"}]}]
    docs = render(helm, *values_file(tmp_path, {"networkPolicy": {"enabled": True, "metricsFrom": prom, "egress": egress}}))
    spec = one(docs, "NetworkPolicy")["spec"]
    pod_labels = one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert spec["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert spec["policyTypes"] == ["Ingress", "Egress"] and spec["egress"] == egress
    by_port = {r["ports"][0]["port"]: r for r in spec["ingress"]}
    assert set(by_port) == {p["name"] for p in container(docs)["ports"]} == {"webhook", "metrics", "health"}
    assert "from" not in by_port["webhook"] and "from" not in by_port["health"]
    test_pod = next(d for d in docs if is_hook(d))
    assert by_port["metrics"]["from"][0] == prom[0]
    assert by_port["metrics"]["from"][1]["podSelector"]["matchLabels"].items() <= test_pod["metadata"]["labels"].items()
    only_ingress = render(helm, "--set", "networkPolicy.enabled=true")
    assert one(only_ingress, "NetworkPolicy")["spec"]["policyTypes"] == ["Ingress"]


def test_extra_objects(helm, tmp_path):
    docs = render(helm, *values_file(tmp_path, {"extraObjects": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "{{ .Release.Name }}-extra"}, "data": {"a": "b"}},
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: second-{{ .Release.Namespace }}\n"]}))
    names = {d["metadata"]["name"] for d in objs(docs, "ConfigMap")}
    assert {f"{RELEASE}-extra", f"second-{NAMESPACE}"} <= names


def test_aggregated_view_and_edit_roles(helm):
    default = render(helm)
    view = one(default, "ClusterRole", "-view")
    assert view["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert view["rules"] == [{"apiGroups": ["certpolicy.io"], "resources": ["certificatepolicies", "certificatepolicies/status"],
                              "verbs": ["get", "list", "watch"]}]
    assert [d for d in objs(default, "ClusterRole") if d["metadata"]["name"].endswith("-edit")] == []
    docs = render(helm, "--set", "rbac.aggregateToEdit=true", "--set", "rbac.aggregateToView=false")
    edit = one(docs, "ClusterRole", "-edit")
    assert edit["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert set(edit["rules"][0]["verbs"]) == {"create", "update", "patch", "delete", "deletecollection"}
    assert [d for d in objs(docs, "ClusterRole") if d["metadata"]["name"].endswith("-view")] == []


def test_helm_test_pod(helm):
    """`helm test` runs a Pod that reads the metrics Service: no token, no RBAC, the chart's securityContexts."""
    docs = render(helm)
    pod = next(d for d in docs if is_hook(d))
    assert pod["kind"] == "Pod" and pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    spec = pod["spec"]
    assert spec["automountServiceAccountToken"] is False and "serviceAccountName" not in spec
    assert spec["restartPolicy"] == "Never" and spec["securityContext"]["runAsNonRoot"] is True
    # no Service, Deployment or PDB of the release selects it (an endpoint of the webhook Service that is not the webhook)
    selectors = [d["spec"]["selector"] for d in objs(docs, "Service")] + \
        [d["spec"]["selector"]["matchLabels"] for d in objs(docs, "Deployment") + objs(docs, "PodDisruptionBudget")]
    assert selectors and not [s for s in selectors if s.items() <= pod["metadata"]["labels"].items()]
    script = spec["containers"][0]["args"][0]
    service = one(docs, "Service", "-metrics")
    assert f"http://{service['metadata']['name']}.{NAMESPACE}.svc:{service['spec']['ports'][0]['port']}/metrics" in script
    compile(script, "helm-test", "exec")  # the check is valid Python


@pytest.mark.parametrize("bad, complaint", [
    (["--set", "prometheusRule.alerts.CertpolicyNoSuchAlert.enabled=false"], "CertpolicyNoSuchAlert"),
    (["--set", "prometheusRule.alerts.CertpolicyNoLeader.days=3"], "days"),  # days: expiry alerts only
    (["--set", "operator.logLevel=trace"], "logLevel"),
    (["--set", "image.digest=latest"], "digest"),
    (["--set", "serviceMonitor.scrapeTimeout=soon"], "scrapeTimeout"),
])
def test_schema_rejects_bad_new_values(helm, bad, complaint):
    proc = run([helm, "template", RELEASE, CHART, *bad])
    assert proc.returncode != 0 and complaint in proc.stderr, proc.stderr


def test_schema_alerts_are_the_shipped_alerts():
    """prometheusRule.alerts names exactly manifests/prometheusrule.yaml's alerts (a typo is refused)."""
    import json

    schema = json.loads((CHART / "values.schema.json").read_text())
    names = set(schema["properties"]["prometheusRule"]["properties"]["alerts"]["properties"])
    shipped = {r["alert"] for g in yaml.safe_load((REPO / "manifests" / "prometheusrule.yaml").read_text())["spec"]["groups"]
               for r in g["rules"]}
    assert names == shipped


NEW_VALUES = {
    "operator": {"probeAllow": ["*.svc"], "leaseDuration": 20, "logLevel": "debug"},
    "extraEnv": [{"name": "TZ", "value": "UTC"}],
    "serviceAccount": {"create": True, "name": "cp-dry"},
    "nameOverride": "cpdry",
    "topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "kubernetes.io/hostname",
                                   "whenUnsatisfiable": "ScheduleAnyway",
                                   "labelSelector": {"matchLabels": {"app.kubernetes.io/instance": "{{ .Release.Name }}"}}}],
    "podDisruptionBudget": {"maxUnavailable": 1},
    "image": {"digest": "sha256:" + "b" * 64},
    "networkPolicy": {"enabled": True, "metricsFrom": [{"namespaceSelector": {}}],
                      "egress": [{"ports": [{"port": 443, "protocol": "TCP"}]}]},
    "extraObjects": [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "{{ .Release.Name }}-extra"},
                      "data": {"a": "b"}}],
    "rbac": {"aggregateToEdit": True},
    "crds": {"keep": True},
    "grafanaDashboard": {"enabled": True},
}


def test_server_side_dry_run_with_the_new_values(cluster, helm, namespace, tmp_path):
    """The API server accepts what the new values render (NetworkPolicy, aggregated roles, the
    helm test Pod, a PDB by maxUnavailable, topology spread, extra objects, ...)."""
    docs = render(helm, *values_file(tmp_path, NEW_VALUES), release="dry", namespace=namespace)
    kinds = {d["kind"] for d in docs}
    assert {"NetworkPolicy", "Pod", "PodDisruptionBudget", "CustomResourceDefinition", "ConfigMap"} <= kinds
    out = dry_run(cluster, docs)
    for _kind, _ns, name in map(key, docs):
        assert f"{name} serverside-applied (server dry run)" in out, (name, out)


def test_the_helm_test_check_passes_on_a_running_operator_and_fails_otherwise(operator, helm, tmp_path):
    """The helm test Pod's script, run here against the real operator's /metrics (URL swapped for
    its loopback port): it passes; against a scrape with a watch down, or no operator, it fails."""
    import sys

    pod = next(d for d in render(helm) if is_hook(d))
    script = pod["spec"]["containers"][0]["args"][0]
    url = f"http://{RELEASE}-metrics.{NAMESPACE}.svc:9090/metrics"
    assert url in script

    def check(target: str, deadline: int = 120) -> subprocess.CompletedProcess:
        body = script.replace(url, target).replace("time.monotonic() + 120", f"time.monotonic() + {deadline}")
        return run([sys.executable, "-c", body])

    ok = check(f"http://127.0.0.1:{operator.metrics_port}/metrics")
    assert ok.returncode == 0 and "with its watches up" in ok.stdout, ok.stdout + ok.stderr
    down = tmp_path / "metrics.txt"
    down.write_text('certpolicy_build_info{version="0.1.0",python_version="3.11"} 1.0\n'
                    'certpolicy_watch_up{watch="secrets"} 1.0\ncertpolicy_watch_up{watch="pods"} 0.0\n')
    failed = check(down.as_uri(), deadline=1)
    assert failed.returncode == 1 and 'watches down: certpolicy_watch_up{watch="pods"} 0.0' in failed.stdout, failed.stdout
    other = tmp_path / "other.txt"
    other.write_text("up 1\n")
    failed = check(other.as_uri(), deadline=1)
    assert failed.returncode == 1 and "not the operator" in failed.stdout, failed.stdout

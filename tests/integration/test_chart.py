"""The Helm chart: lint, schema, no drift from manifests/, and a server-side dry run on a real API server.

One source of truth: the chart's CRD, its ClusterRole's rules and its PrometheusRule's groups are
the files in crds/ and manifests/ themselves (symlinks under charts/certpolicy-operator/), and
the templated objects are held to `kubectl kustomize manifests/` here, object by object.
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
                "--set", "grafanaDashboard.enabled=true"]


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

"""The plugin reads what each verb's ``--help`` says it reads, and no more (issue #26 item 5).

Each verb runs as its console script with a kubeconfig whose ServiceAccount RBAC allows exactly
the reads its ``--help`` lists; the real API server enforces it. ``why`` may ``get`` Secrets but
not ``list`` them anywhere; ``status POLICY`` may list Secrets only in the one namespace its
policy's ``namespaceSelector`` matches. Before, both listed every Secret of the cluster (private
keys included) and were refused here (exit 3). Each test first proves the Role is enforced (the
same user is refused a cluster-wide list of Secrets), then that the verb's answer equals the one
an admin gets.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path

import kubernetes
import pytest

import certgen
from certpolicy.kube.namespaces import ensure_namespace
from plugincli import PLUGIN

GROUP, VERSION = "certpolicy.io", "v1alpha1"
#: The optional kinds `why` lists to find where a CA is (none of them holds Secret data).
BUNDLE_KINDS_RULES = [
    {"apiGroups": ["certificates.k8s.io"], "resources": ["clustertrustbundles"], "verbs": ["list"]},
    {"apiGroups": ["admissionregistration.k8s.io"],
     "resources": ["validatingwebhookconfigurations", "mutatingwebhookconfigurations"], "verbs": ["list"]},
    {"apiGroups": ["apiregistration.k8s.io"], "resources": ["apiservices"], "verbs": ["list"]},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list"]},
]


def run_plugin(kubeconfig: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(PLUGIN), "--kubeconfig", str(kubeconfig), *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def reader(cluster, api_client, core_v1, tmp_path):
    """``reader(ns, cluster_rules, namespaced_rules)``: a kubeconfig for a new ServiceAccount allowed
    exactly these rules (a ClusterRole, plus a Role in ``ns``). Cluster-scoped RBAC is deleted after."""
    rbac = kubernetes.client.RbacAuthorizationV1Api(api_client)
    made: list[str] = []

    def make(ns: str, cluster_rules: list[dict], namespaced_rules: list[dict]) -> Path:
        name = f"plugin-reader-{uuid.uuid4().hex[:8]}"
        core_v1.create_namespaced_service_account(ns, {"metadata": {"name": name}})
        subject = [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
        rbac.create_cluster_role({"metadata": {"name": name}, "rules": cluster_rules})
        rbac.create_cluster_role_binding({"metadata": {"name": name}, "subjects": subject,
                                          "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                      "name": name}})
        made.append(name)
        if namespaced_rules:
            rbac.create_namespaced_role(ns, {"metadata": {"name": name}, "rules": namespaced_rules})
            rbac.create_namespaced_role_binding(ns, {"metadata": {"name": name}, "subjects": subject,
                                                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                                                 "kind": "Role", "name": name}})
        token = core_v1.create_namespaced_service_account_token(name, ns, kubernetes.client.AuthenticationV1TokenRequest(
            spec=kubernetes.client.V1TokenRequestSpec(audiences=[], expiration_seconds=900))).status.token
        return cluster.token_kubeconfig(token, tmp_path / f"{name}.kubeconfig")

    yield make
    for name in made:
        rbac.delete_cluster_role_binding(name)
        rbac.delete_cluster_role(name)


def refused_to_list_secrets(kubeconfig: Path, ns: str) -> list[int]:
    """The HTTP statuses of a cluster-wide and a namespaced list of Secrets as this user."""
    api = kubernetes.config.new_client_from_config(config_file=str(kubeconfig))
    core = kubernetes.client.CoreV1Api(api)
    statuses = []
    for call in (core.list_secret_for_all_namespaces, lambda: core.list_namespaced_secret(ns)):
        try:
            call()
            statuses.append(200)
        except kubernetes.client.ApiException as e:
            statuses.append(e.status)
    return statuses


@pytest.fixture
def world(core_v1, policies, unique_name):
    """A namespace with a CA bundle ConfigMap, a compliant TLS Secret a Pod mounts, a decoy Secret;
    two policies select the first (one by labels, one mountedOnly)."""
    label = uuid.uuid4().hex[:8]
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels={"plugin-reads": label})
    ca = certgen.root("plugin reads CA")
    core_v1.create_namespaced_config_map(ns, {"metadata": {"name": "ca"}, "data": {"ca.crt": certgen.pem(ca).decode()}})
    for name, labels in (("api-tls", {"app": "reads"}), ("decoy-tls", {"app": "other"})):
        core_v1.create_namespaced_secret(ns, {"metadata": {"name": name, "labels": labels}, "type": "kubernetes.io/tls",
                                              "data": certgen.tls_secret(certgen.leaf(ca, f"{name}.reads.test"))["data"]})
    core_v1.create_namespaced_pod(ns, {"metadata": {"name": "api"}, "spec": {
        "containers": [{"name": "c", "image": "busybox", "volumeMounts": [{"name": "tls", "mountPath": "/tls"}]}],
        "volumes": [{"name": "tls", "secret": {"secretName": "api-tls"}}]}})
    names = {"labels": f"{unique_name}-labels", "mounted": f"{unique_name}-mounted"}
    selector = {"namespaceSelector": {"matchLabels": {"plugin-reads": label}},
                "secretSelector": {"matchLabels": {"app": "reads"}}}
    for key, extra in (("labels", {}), ("mounted", {"mountedOnly": True})):
        policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": names[key]},
                  "spec": {"selector": {**selector, **extra},
                           "requirements": {"trustBundle": {"configMap": {"namespace": ns, "name": "ca"}}}}})
    return ns, names


def without_time(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if k != "evaluatedAt"}


def test_why_gets_secrets_and_never_lists_them(cluster, crd, world, reader):
    ns, names = world
    kubeconfig = reader(ns, [
        {"apiGroups": [GROUP], "resources": ["certificatepolicies"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["secrets", "namespaces", "pods"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list"]},
        *BUNDLE_KINDS_RULES,
    ], [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list"]}])  # mountedOnly: Pods of its namespace
    assert refused_to_list_secrets(kubeconfig, ns) == [403, 403]

    for target in (f"{ns}/api-tls", f"pod/{ns}/api"):
        mine = run_plugin(kubeconfig, "why", target, "-o", "json")
        assert mine.returncode == 0, mine.stderr
        admin = run_plugin(cluster.kubeconfig, "why", target, "-o", "json")
        assert admin.returncode == 0, admin.stderr
        doc = json.loads(mine.stdout)
        assert without_time(doc) == without_time(json.loads(admin.stdout))
        (secret,) = doc["secrets"]
        assert secret["name"] == "api-tls"
        assert {p["name"]: p["compliant"] for p in secret["policies"]} == {names["labels"]: True, names["mounted"]: True}
        assert {"kind": "ConfigMap", "namespace": ns, "name": "ca", "via": "trust bundle in key ca.crt"} in secret["bundles"]
        assert "PRIVATE KEY" not in mine.stdout + mine.stderr
    # -n names the namespace of a target given without one, as kubectl's -n does
    short = run_plugin(kubeconfig, "-n", ns, "why", "api-tls", "-o", "json")
    assert short.returncode == 0 and without_time(json.loads(short.stdout)) == without_time(
        json.loads(run_plugin(kubeconfig, "why", f"{ns}/api-tls", "-o", "json").stdout))

    # blast-radius does list Secrets (its --help says so; with -n, in that namespace): this user is
    # refused, exit 3, and told which list
    blast = run_plugin(kubeconfig, "-n", ns, "blast-radius", "configmap/ca")
    assert blast.returncode == 3 and "cannot list Secret: HTTP 403" in blast.stderr, blast.stderr


def test_the_renewal_baselines_are_not_read_where_bundles_are_looked_for(api_client, core_v1, namespace):
    """``why`` and ``blast-radius`` list ConfigMaps to find where a CA is; the renewal guard's
    baseline shards (~30 MB at 100,000 Secrets, no certificate in them) are left out by the API
    server, and every other ConfigMap, the operator's bundle targets included, is still read."""
    from certpolicy.kube.ownership import BUNDLE_LABEL, MANAGED_BY, ROLE_BASELINE, ROLE_BUNDLE, ROLE_LABEL
    from certpolicy.kube.rawapi import RawClient
    from certpolicy.plugin.reads import read

    pem = certgen.pem(certgen.root("baseline neighbour CA")).decode()
    for name, labels in (("shard", {MANAGED_BY: "p", ROLE_LABEL: ROLE_BASELINE}),
                         ("target", {MANAGED_BY: "p", ROLE_LABEL: ROLE_BUNDLE, BUNDLE_LABEL: "p"}),
                         ("plain", {})):
        core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": name, "labels": labels},
                                                         "data": {"ca.crt": pem}})
    got = {cm["metadata"]["name"] for cm in read(RawClient(api_client), {"ConfigMap": True}).of("ConfigMap")
           if cm["metadata"]["namespace"] == namespace}
    assert got == {"target", "plain"}


def test_status_of_a_policy_lists_secrets_only_where_it_selects(cluster, crd, world, reader):
    ns, names = world
    kubeconfig = reader(ns, [
        {"apiGroups": [GROUP], "resources": ["certificatepolicies"], "verbs": ["list"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list"]},
    ], [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["list"]},  # in the one namespace it selects
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]},  # its requirements.trustBundle
    ])
    assert refused_to_list_secrets(kubeconfig, ns) == [403, 200]

    mine = run_plugin(kubeconfig, "status", names["labels"], "-o", "json")
    assert mine.returncode == 0, mine.stderr
    admin = run_plugin(cluster.kubeconfig, "status", names["labels"], "-o", "json")
    doc = json.loads(mine.stdout)
    assert without_time(doc) == without_time(json.loads(admin.stdout))
    assert [(s["namespace"], s["name"], s["state"]) for s in doc["secrets"]] == [(ns, "api-tls", "OK")]
    # -o yaml: the same document
    import yaml

    as_yaml = run_plugin(kubeconfig, "status", names["labels"], "-o", "yaml")
    assert without_time(yaml.safe_load(as_yaml.stdout))["secrets"] == doc["secrets"]


def test_version_names_the_operator_deployment_in_the_operator_namespace(cluster, api_client, namespace, reader,
                                                                          monkeypatch):
    """`version` lists the operator's Deployments (by label) in --operator-namespace, which wins over
    CERTPOLICY_NAMESPACE; it may list Deployments there and nothing else."""
    apps = kubernetes.client.AppsV1Api(api_client)
    labels = {"app.kubernetes.io/name": "certpolicy-operator"}
    apps.create_namespaced_deployment(namespace, {"metadata": {"name": "certpolicy-operator", "labels": labels},
                                                  "spec": {"replicas": 2, "selector": {"matchLabels": labels},
                                                           "template": {"metadata": {"labels": labels}, "spec": {
                                                               "containers": [{"name": "operator",
                                                                               "image": "example.test/certpolicy:9.9.9"}]}}}})
    kubeconfig = reader(namespace, [], [{"apiGroups": ["apps"], "resources": ["deployments"], "verbs": ["list"]}])
    monkeypatch.setenv("CERTPOLICY_NAMESPACE", "certpolicy-system")  # where this user may not list
    from_env = run_plugin(kubeconfig, "version")
    assert from_env.returncode == 3 and "Operator: unknown: cannot list Deployments in certpolicy-system: HTTP 403" in from_env.stdout
    proc = run_plugin(kubeconfig, "--operator-namespace", namespace, "version", "-o", "json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    from certpolicy import __version__

    assert doc["client"]["version"] == __version__
    assert doc["operator"] == {"namespace": namespace, "error": None, "deployments": [
        {"name": "certpolicy-operator", "namespace": namespace, "images": ["example.test/certpolicy:9.9.9"],
         "readyReplicas": 0, "replicas": 2}]}  # no controller manager here: nothing is ready
    monkeypatch.setenv("CERTPOLICY_NAMESPACE", namespace)  # the environment variable is the default
    assert run_plugin(kubeconfig, "version").returncode == 0
    # a Helm release with nameOverride labels its Deployment app.kubernetes.io/name=<override>
    renamed = {"app.kubernetes.io/name": "renamed"}
    apps.create_namespaced_deployment(namespace, {"metadata": {"name": "renamed", "labels": renamed}, "spec": {
        "selector": {"matchLabels": renamed}, "template": {"metadata": {"labels": renamed}, "spec": {
            "containers": [{"name": "operator", "image": "example.test/certpolicy:9.9.10"}]}}}})
    by_selector = run_plugin(kubeconfig, "version", "-l", "app.kubernetes.io/name=renamed", "-o", "json")
    assert by_selector.returncode == 0, by_selector.stderr
    assert [d["images"] for d in json.loads(by_selector.stdout)["operator"]["deployments"]] == [
        ["example.test/certpolicy:9.9.10"]]

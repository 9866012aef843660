"""``kubectl certpolicy leftovers`` against the real API server, through kubectl's plugin discovery.

A policy with a CA, a bundle target of its own, an opted-in target and an issued leaf rotates
once (so a retired CA key exists), then is deleted with ``Retain``. Before the delete the verb
names only the retired key (the rest is in use); after it, every object the policy left, each
with the command that removes it — and once those commands ran, nothing but the opted-in target,
whose certificates only its owner may remove.
"""

from __future__ import annotations

import json
import subprocess

from certpolicy.rotation.triggers import retired_ca_secret_name
from crd import GROUP, PLURAL, VERSION
from kubewait import policy_gone, wait_for


def kubectl_certpolicy(cluster, *args: str) -> subprocess.CompletedProcess:
    """As a user types it: kubectl finds kubectl-certpolicy on PATH."""
    from test_plugin import via_kubectl

    proc = via_kubectl(cluster, *args)
    assert proc.returncode == 0, proc.stderr
    return proc


def leftovers(cluster, name: str) -> list[dict]:
    return json.loads(kubectl_certpolicy(cluster, "leftovers", name, "-o", "json").stdout)["leftovers"]


def test_leftovers_of_a_present_and_a_deleted_policy_with_the_commands_that_remove_them(
        cluster, operator, policies, custom_api, core_v1, namespace, unique_name, operator_namespace):
    ns, name, home = namespace, unique_name, operator_namespace
    core_v1.create_namespaced_config_map(ns, {"metadata": {"name": "partner-trust", "annotations": {
        "certpolicy.io/inject-ca-from": name}}, "data": {"partner.crt": ""}})
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
              "spec": {"selector": {"names": [{"namespace": ns, "name": "app-tls"}]},
                       "requirements": {"extendedKeyUsages": ["serverAuth"]},
                       "ca": {"secretName": f"{name}-ca"},
                       "trustBundles": [{"configMap": {"name": "own-ca"}, "namespaces": [ns]},
                                        {"configMap": {"name": "partner-trust"}, "namespaces": [ns]}],
                       "issuance": [{"secretName": "app-tls", "namespace": ns, "dnsNames": ["app.left.test"],
                                     "usages": ["serverAuth"]}],
                       "rotation": {"propagationDelay": "0s"}}})

    def status() -> dict:
        return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name).get("status") or {}

    wait_for(lambda: (s := status()) and (s.get("issued") or {}).get("ready") == 1
             and (s.get("bundleTargets") or {}).get("verified") == 2, timeout=60, what="CA, bundles and leaf")
    assert leftovers(cluster, name) == []  # everything is in use
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name,
                                           {"metadata": {"annotations": {"certpolicy.io/rotate": "r1"}}})
    wait_for(lambda: ((status().get("rotation") or {}).get("history") or [{}])[0].get("outcome") == "Completed",
             timeout=90, what="one rotation completed")
    retired = retired_ca_secret_name(f"{name}-ca", "r1")
    rows = leftovers(cluster, name)
    assert [(r["policyState"], r["kind"], r["namespace"], r["name"], r["role"]) for r in rows] == [
        ("present", "Secret", home, retired, "ca")], rows
    assert rows[0]["command"] == f"kubectl delete secret -n {home} {retired}"
    assert "retired CA key" in rows[0]["what"]

    custom_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)  # deletionPolicy Retain

    wait_for(lambda: policy_gone(custom_api, name), timeout=30, what="the policy deleted")
    rows = leftovers(cluster, name)
    # the renewal guard's baselines carry an ownerReference to the policy: a cluster's garbage
    # collector deletes them with it, and this control plane has none, so here they are left too
    baselines = {r["name"] for r in rows if r["role"] == "renewal-baseline"}
    assert baselines and all("garbage collector" in r["what"] for r in rows if r["name"] in baselines)
    assert {(r["policyState"], r["kind"], r["namespace"], r["name"], r["role"]) for r in rows} == {
        ("deleted", "Secret", home, f"{name}-ca", "ca"),
        ("deleted", "Secret", home, retired, "ca"),
        ("deleted", "ConfigMap", ns, "own-ca", "bundle"),
        ("deleted", "Secret", ns, "app-tls", "leaf"),
        ("deleted", "ConfigMap", ns, "partner-trust", "opted-in target"),
    } | {("deleted", "ConfigMap", home, b, "renewal-baseline") for b in baselines}, rows
    assert not any("data" in r or "tls.key" in json.dumps(r) for r in rows)  # names, never contents

    table = kubectl_certpolicy(cluster, "leftovers", name).stdout
    assert table.splitlines()[0].split() == ["POLICY", "STATE", "KIND", "NAMESPACE", "NAME", "WHAT"]
    commands = [line.strip() for line in table.splitlines() if line.startswith("  kubectl delete ")]
    assert sorted(commands) == sorted(r["command"] for r in rows if r["command"])
    assert len(commands) == 4 + len(baselines)
    for command in commands:  # what the user would paste
        cluster.kubectl(*command.split()[1:])
    rows = leftovers(cluster, name)
    assert [(r["kind"], r["name"], r["command"]) for r in rows] == [("ConfigMap", "partner-trust", None)], rows
    # its owner takes the certificates and the policy's name out by hand: then nothing is left
    core_v1.patch_namespaced_config_map("partner-trust", ns, {"data": {"ca.crt": None}, "metadata": {
        "annotations": {"certpolicy.io/bundle-policies": None}}})
    assert leftovers(cluster, name) == []
    assert f"Nothing left behind by CertificatePolicy {name}." in kubectl_certpolicy(cluster, "leftovers", name).stdout

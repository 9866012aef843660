"""Least privilege, proven: the operator runs with a ServiceAccount token bound only by manifests/rbac.yaml
and held by manifests/admissionpolicy.yaml.

The bare API server's built-in view/edit roles are empty, so every permission the operator uses
must come from our ClusterRole; any forbidden call would leave a scenario unfinished and show up
as HTTP 403 in the operator's log.
"""

from __future__ import annotations

import re
import uuid

import kubernetes
from kubernetes import client

import certgen
from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.targets import TARGET_KINDS
from certpolicy.policy.bundleref import CLUSTER_TRUST_BUNDLE
from crd import GROUP, PLURAL, VERSION
from kubewait import wait_for, wait_until_refused
from operator_process import OperatorProcess
from paths import REPO


def test_reconcile_issuance_and_rotation_with_manifest_rbac_only(
        cluster, crd, core_v1, custom_api, policies, unique_name, tmp_path):
    # the admission policy too: everything the operator does below passes it (test_admission_policy.py
    # shows what it refuses)
    for f in ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml", "admissionpolicy.yaml", "webhook.yaml"):
        cluster.kubectl("apply", "-f", str(REPO / "manifests" / f))
    token = core_v1.create_namespaced_service_account_token(
        "certpolicy-operator", "certpolicy-system",
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=3600)),
    ).status.token
    kubeconfig = cluster.token_kubeconfig(token, tmp_path / "sa.kubeconfig")
    # The token really is limited: it cannot read Secrets' RBAC objects, for instance.
    denied = cluster.kubectl(f"--kubeconfig={kubeconfig}", "get", "clusterroles", check=False)
    assert denied.returncode != 0 and "forbidden" in denied.stderr.lower()

    label = uuid.uuid4().hex[:8]
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels={"rbac": label})
    ca = certgen.root("user CA")
    bad = certgen.leaf(ca, "x.rbac.test", eku=["serverAuth"])
    core_v1.create_namespaced_secret(ns, {"metadata": {"name": "user-tls"}, "type": "kubernetes.io/tls",
                                          "data": certgen.tls_secret(bad)["data"]})
    core_v1.create_namespaced_secret("certpolicy-system", {"metadata": {"name": f"{unique_name}-p12pw"},
                                                           "stringData": {"password": "changeit"}})
    core_v1.create_namespaced_pod(ns, {"metadata": {"name": "app"}, "spec": {
        "containers": [{"name": "c", "image": "busybox", "volumeMounts": [
            {"name": "tls", "mountPath": "/tls/tls.crt", "subPath": "tls.crt"}]}],
        "volumes": [{"name": "tls", "secret": {"secretName": "user-tls"}}]}})

    as_operator = client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=str(kubeconfig)))
    wait_until_refused(lambda: as_operator.patch_namespaced_secret(
        "user-tls", ns, {"metadata": {"labels": {"x": "y"}}}, dry_run="All"), "certpolicy-operator-managed-writes-only")

    ctbs = RawClient(custom_api.api_client)
    ctb_path = TARGET_KINDS[CLUSTER_TRUST_BUNDLE].path("", unique_name)
    op = OperatorProcess(cluster, tmp_path / "operator.log", kubeconfig=kubeconfig)
    op.start()
    try:
        policies({
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
            "spec": {
                "selector": {"namespaceSelector": {"matchLabels": {"rbac": label}}},
                "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
                "ca": {"secretName": f"{unique_name}-ca"},
                "trustBundles": [{"configMap": {"name": "rbac-ca"},
                                  "namespaceSelector": {"matchLabels": {"rbac": label}},
                                  "formats": {"pkcs12": {"key": "truststore.p12", "passwordSecretRef": {
                                      "name": f"{unique_name}-p12pw", "key": "password"}}}},
                                 {"clusterTrustBundle": {"name": unique_name}}],
                "issuance": [{"secretName": "app-tls", "namespace": ns, "dnsNames": ["app.rbac.test"]}],
                "rotation": {"propagationDelay": "0s"},
            },
        })

        def settled():
            st = custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name).get("status") or {}
            ok = (st.get("issued") or {}).get("ready") == 1 and (st.get("bundleTargets") or {}).get("verified") == 2
            return st if ok and st.get("summary", {}).get("selected") == 2 and st.get("subPathMounts") else None

        st = wait_for(settled, timeout=60, what="reconciled with RBAC-limited credentials")
        assert [v["name"] for v in st["violations"]] == ["user-tls"]
        degraded = next(c for c in st["conditions"] if c["type"] == "Degraded")
        assert degraded["status"] == "False", degraded
        wait_for(lambda: [e for e in core_v1.list_namespaced_event(ns).items
                          if e.involved_object.name == "user-tls"], timeout=30, what="event posted")

        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                               {"metadata": {"annotations": {"certpolicy.io/rotate": "rbac"}}})

        def rotated():
            rot = (custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name).get("status")
                   or {}).get("rotation") or {}
            hist = rot.get("history") or []
            return not rot.get("id") and hist and hist[0]["outcome"] == "Completed"

        wait_for(rotated, timeout=90, what="rotation completed with RBAC-limited credentials")
        # The ClusterTrustBundle target went through the rotation too, under the admission policy.
        def targets():
            st = custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name)["status"]
            return {(t["kind"], t["state"]) for t in st["bundleTargets"]["targets"]}

        wait_for(lambda: targets() == {("ConfigMap", "Verified"), ("ClusterTrustBundle", "Verified")},
                 timeout=30, what="both targets verified after the rotation")
        assert ctbs.get(ctb_path)["metadata"]["labels"]["certpolicy.io/managed-by"] == unique_name
    finally:
        op.stop()
        try:
            ctbs.delete(ctb_path)
        except client.ApiException as e:
            if e.status != 404:
                raise
    log = (tmp_path / "operator.log").read_text(errors="replace")
    assert refused_calls(log) == []


_TIMESTAMP = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\]")
_REFUSED = re.compile(r"(?<![\w.,])403(?![\w.])|forbidden", re.IGNORECASE)


def refused_calls(log: str) -> list[str]:
    """The operator's log lines that report a refused API call. The timestamp goes first: its
    milliseconds are ",403" once in a thousand lines, which failed this test in CI with no refusal."""
    return [line for line in log.splitlines() if _REFUSED.search(_TIMESTAMP.sub("", line))]


def test_refused_calls_finds_a_403_and_ignores_the_milliseconds_of_a_timestamp():
    assert refused_calls("[2026-12-04 21:08:41,403] certpolicy.reconcile [DEBUG   ] 2 selected") == []
    assert refused_calls("[2026-12-04 21:08:41,100] kopf [ERROR] APIForbiddenError: (403) x") != []
    assert refused_calls("[2026-12-04 21:08:41,100] kopf [ERROR] secrets is Forbidden: y") != []
    assert refused_calls("resourceVersion 14035 fingerprint a403b took 0.403 s") == []
    assert refused_calls('HTTP response body: {"code":403}') != []


def test_what_the_service_account_may_do_to_an_unrelated_secret(cluster, crd, core_v1, tmp_path):
    """Impersonating the operator's ServiceAccount (manifests' RBAC and admission policy applied):
    what it may do to someone else's Secret in another namespace. Reported before: it could read,
    change and delete any Secret, kube-system's included."""
    import json

    from figures import record

    for f in ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml", "admissionpolicy.yaml"):
        cluster.kubectl("apply", "-f", str(REPO / "manifests" / f))
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns)
    core_v1.create_namespaced_secret(ns, {"metadata": {"name": "unrelated"}, "type": "Opaque",
                                          "stringData": {"password": "not the operator's"}})
    sa = "system:serviceaccount:certpolicy-system:certpolicy-operator"

    def can(*args: str) -> bool:
        proc = cluster.kubectl("auth", "can-i", *args, f"--as={sa}", check=False)
        return proc.stdout.strip() == "yes"

    # SelfSubjectRulesReview (kubectl auth can-i --list) in the unrelated namespace.
    listing = cluster.kubectl("auth", "can-i", "--list", "-n", ns, f"--as={sa}", "-o", "json", check=False)
    if listing.returncode == 0 and listing.stdout.strip().startswith("{"):
        rules = json.loads(listing.stdout)["resourceRules"]
        verbs = {v for r in rules if "secrets" in r.get("resources", ()) or "*" in r.get("resources", ())
                 for v in r["verbs"]}
    else:  # older kubectl: the table form
        table = cluster.kubectl("auth", "can-i", "--list", "-n", ns, f"--as={sa}").stdout
        row = next(line for line in table.splitlines() if line.split() and line.split()[0] == "secrets")
        verbs = set(row[row.rindex("[") + 1:row.rindex("]")].split())
    assert verbs == {"get", "list", "watch", "create", "update", "patch"}, verbs
    assert not can("delete", "secret/unrelated", "-n", ns)
    assert not can("delete", "secrets", "-n", "kube-system")
    assert not can("deletecollection", "secrets", "-n", ns)
    assert can("delete", "secrets", "-n", "certpolicy-system")  # its CA Secrets, and only there
    for verb, resource in (("*", "*"), ("escalate", "clusterroles"), ("bind", "clusterroles"),
                           ("impersonate", "serviceaccounts"), ("create", "pods"), ("delete", "configmaps"),
                           ("delete", "certificatepolicies.certpolicy.io")):
        assert not can(verb, resource, "-n", ns), (verb, resource)

    # With its own token: delete is refused by RBAC, an overwrite by the admission policy.
    token = core_v1.create_namespaced_service_account_token(
        "certpolicy-operator", "certpolicy-system",
        client.AuthenticationV1TokenRequest(spec=client.V1TokenRequestSpec(audiences=[], expiration_seconds=600)),
    ).status.token
    as_operator = client.CoreV1Api(kubernetes.config.new_client_from_config(
        config_file=str(cluster.token_kubeconfig(token, tmp_path / "sa.kubeconfig"))))
    before = core_v1.read_namespaced_secret("unrelated", ns)
    refused = []
    for attempt in (lambda: as_operator.delete_namespaced_secret("unrelated", ns, dry_run="All"),
                    lambda: as_operator.patch_namespaced_secret("unrelated", ns, {"data": {"password": "eA=="}},
                                                                dry_run="All")):
        try:
            wait_until_refused(attempt, "")
            refused.append(True)
        except AssertionError:
            refused.append(False)
    assert refused == [True, True]
    after = core_v1.read_namespaced_secret("unrelated", ns)
    assert after.metadata.resource_version == before.metadata.resource_version
    record(f"operator ServiceAccount on an unrelated Secret in another namespace: {' '.join(sorted(verbs))} "
           "(RBAC); delete refused (403, no delete outside certpolicy-system); overwrite refused (403, admission policy)")

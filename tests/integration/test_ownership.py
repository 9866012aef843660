"""A hostile or careless policy author cannot write what another policy or a user owns (issue 18).

Each case reproduces one reported damage on the real API server and asserts the object is left
exactly as it was (same resourceVersion) and the offending policy says why in ``Degraded``.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from kubernetes import client
from kubernetes.client import ApiException

import certgen
import timers
from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.kube.ownership import INJECT_CA_FROM, MANAGED_BY, OWNER_UID
from certpolicy.kube.rawapi import RawClient
from crd import GROUP, PLURAL, VERSION, condition, policy_status
from figures import record as figure
from kubewait import events_since, wait_for

LABEL = "certpolicy-owner-test"


def policy(name: str, **spec) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
            "spec": {"selector": {"namespaceSelector": {"matchLabels": {LABEL: name}}}, **spec}}


def wait_degraded(custom_api, name: str, reason: str) -> dict:
    def probe():
        st = policy_status(custom_api, name)
        return st if reason in condition(st, "Degraded").get("message", "") + condition(st, "Degraded").get(
            "reason", "") or any(reason == t.get("state") for t in (st.get("bundleTargets") or {}).get("targets", ())) \
            else None
    return wait_for(probe, timeout=30, what=f"{name} Degraded with {reason}")


def new_namespace(core_v1) -> str:
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns)
    return ns


def rejected(custom_api, body: dict) -> str:
    with pytest.raises(ApiException) as err:
        custom_api.create_cluster_custom_object(GROUP, VERSION, PLURAL, body, dry_run="All")
    assert err.value.status == 422, err.value.body
    return json.loads(err.value.body)["message"]


@pytest.fixture
def owner_policy(operator, policies, custom_api, core_v1, unique_name, operator_namespace):
    """Policy A: a CA of its own and an issued leaf in its namespace."""
    ns = new_namespace(core_v1)
    policies(policy(unique_name, ca={"secretName": f"{unique_name}-ca"},
                    issuance=[{"secretName": "app-tls", "namespace": ns, "dnsNames": ["app.owner.test"]}]))
    wait_for(lambda: (policy_status(custom_api, unique_name).get("issued") or {}).get("ready") == 1, timeout=30,
             what="A's CA and leaf")
    ca = core_v1.read_namespaced_secret(f"{unique_name}-ca", operator_namespace)
    leaf = core_v1.read_namespaced_secret("app-tls", ns)
    assert ca.metadata.labels[MANAGED_BY] == unique_name and ca.metadata.annotations[OWNER_UID]
    return unique_name, ns, ca, leaf


def assert_untouched(core_v1, obj, kind: str = "secret") -> None:
    """No write to ``obj`` from the moment it was read until 2 s from now: a watch from its
    resourceVersion replays every version since (a write undone later is seen too)."""
    listed = getattr(core_v1, f"list_namespaced_{kind}")
    selector = f"metadata.name={obj.metadata.name}"
    # Up to the list's resourceVersion the object still has the version read, so nothing wrote it
    # (a write always changes it); the watch covers the rest of the window from there. Watching
    # from the object's own version instead fails with 410 Expired for an object last written long
    # ago (kube-system's ConfigMaps are written once, at the API server's start).
    now = listed(obj.metadata.namespace, field_selector=selector)
    assert [o.metadata.resource_version for o in now.items] == [obj.metadata.resource_version], \
        f"{kind} {obj.metadata.name} was written"
    writes = events_since(listed, obj.metadata.namespace, resource_version=now.metadata.resource_version, seconds=2,
                          field_selector=selector)
    assert writes == [], f"{kind} {obj.metadata.name} was written: {[t for t, _ in writes]}"
    read = getattr(core_v1, f"read_namespaced_{kind}")
    now = read(obj.metadata.name, obj.metadata.namespace)
    assert now.metadata.resource_version == obj.metadata.resource_version, f"{kind} {obj.metadata.name} was written"


def assert_never_created(list_call, namespace: str, name: str, since_rv: str) -> None:
    """``name`` did not exist at any moment from ``since_rv`` until 2 s from now (not only now)."""
    events = events_since(list_call, namespace, resource_version=since_rv, seconds=2,
                          field_selector=f"metadata.name={name}")
    assert events == [], f"{namespace}/{name}: {[t for t, _ in events]}"


def test_another_policys_ca_key_is_never_a_bundle_target(owner_policy, policies, custom_api, core_v1,
                                                          operator_namespace):
    a, _, ca, _ = owner_policy
    b = f"{a}-b"
    # Reported: trustBundles: [{secret: {name: <A's CA Secret>, key: tls.key}}] replaced A's private key.
    message = rejected(custom_api, policy(b, ca={"secretName": f"{b}-ca"}, trustBundles=[
        {"secret": {"name": ca.metadata.name, "key": "tls.key"}, "namespaces": [operator_namespace]}]))
    assert "never a bundle target" in message
    # Any other key: the operator's namespace holds CA material only, so the target is refused.
    policies(policy(b, ca={"secretName": f"{b}-ca"}, trustBundles=[
        {"secret": {"name": ca.metadata.name, "key": "ca.crt"}, "namespaces": [operator_namespace]}]))
    st = wait_degraded(custom_api, b, "Refused")
    assert condition(st, "Degraded")["reason"] == "BundleTargetRefused", condition(st, "Degraded")
    assert "holds CA material only" in condition(st, "Degraded")["message"]
    assert_untouched(core_v1, ca)
    assert condition(policy_status(custom_api, a), "Degraded")["status"] == "False"


def test_another_policys_leaf_is_never_written(owner_policy, policies, custom_api, core_v1):
    a, ns, _, leaf = owner_policy
    b = f"{a}-b"
    message = rejected(custom_api, policy(b, ca={"secretName": f"{b}-ca"}, trustBundles=[
        {"secret": {"name": "app-tls", "key": "tls.key"}, "namespaces": [ns]}]))
    assert "never a bundle target" in message
    policies(policy(b, ca={"secretName": f"{b}-ca"}, trustBundles=[
        {"secret": {"name": "app-tls", "key": "ca.crt"}, "namespaces": [ns]}]))
    st = wait_degraded(custom_api, b, "NotManaged")
    assert f"CertificatePolicy {a}" in condition(st, "Degraded")["message"]
    assert_untouched(core_v1, leaf)


def test_an_applications_configmap_is_written_only_when_it_opts_in(operator, policies, custom_api, core_v1,
                                                                   unique_name):
    ns = new_namespace(core_v1)
    app = core_v1.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="app-config"), data={"config.yaml": "listen: 8443\n"}))
    policies(policy(unique_name, ca={"secretName": f"{unique_name}-ca"}, trustBundles=[
        {"configMap": {"name": "app-config", "key": "config.yaml"}, "namespaces": [ns]}]))
    st = wait_degraded(custom_api, unique_name, "NotManaged")
    assert condition(st, "Degraded")["reason"] == "BundleTargetNotOwned"
    assert f"{INJECT_CA_FROM}={unique_name}" in condition(st, "Degraded")["message"]
    assert_untouched(core_v1, app, "config_map")
    # The policy moves to a key of its own, then the application's owner opts in (what is opted in
    # is the policy as it is: the spec change is observed first): the CA is merged, config.yaml kept.
    gen = custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name, {"spec": {"trustBundles": [
        {"configMap": {"name": "app-config", "key": "ca.crt"}, "namespaces": [ns]}]}})["metadata"]["generation"]
    wait_for(lambda: policy_status(custom_api, unique_name).get("observedGeneration") == gen, timeout=30,
             what="the new key observed")
    core_v1.patch_namespaced_config_map("app-config", ns, {"metadata": {"annotations": {INJECT_CA_FROM: unique_name}}})
    cm = wait_for(lambda: (lambda c: c if "ca.crt" in (c.data or {}) else None)(
        core_v1.read_namespaced_config_map("app-config", ns)), timeout=60,
        what="the opted-in ConfigMap written (a target that is not ours is looked at again: "
             "CERTPOLICY_NOT_MANAGED_RECHECK)")
    assert cm.data["config.yaml"] == "listen: 8443\n"


def test_system_namespaces_are_refused(operator, policies, custom_api, core_v1, unique_name):
    auth = core_v1.read_namespaced_config_map("extension-apiserver-authentication", "kube-system")
    # Where "never created" starts: now, before the policy exists. (auth's own resourceVersion is
    # the API server's start, compacted away in a session older than 5 minutes: 410 Expired.)
    before = core_v1.list_namespaced_config_map("kube-public", limit=1).metadata.resource_version
    policies(policy(unique_name, ca={"secretName": f"{unique_name}-ca"}, trustBundles=[
        {"configMap": {"name": "extension-apiserver-authentication", "key": "client-ca-file"},
         "namespaces": ["kube-system"]},
        # A selector never picks a system namespace, even one that matches it.
        {"configMap": {"name": f"{unique_name}-bundle"},
         "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-public"}}}]))
    st = wait_degraded(custom_api, unique_name, "Refused")
    assert "--allow-system-namespaces" in condition(st, "Degraded")["message"]
    assert [t["namespace"] for t in st["bundleTargets"]["targets"]] == ["kube-system"]
    assert_untouched(core_v1, auth, "config_map")
    assert_never_created(core_v1.list_namespaced_config_map, "kube-public", f"{unique_name}-bundle", before)
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_config_map(f"{unique_name}-bundle", "kube-public")
    assert err.value.status == 404


def test_a_policy_cannot_issue_from_another_policys_ca(owner_policy, policies, custom_api, core_v1, operator_namespace):
    a, ns, ca, _ = owner_policy
    b = f"{a}-b"
    policies(policy(b, ca={"secretName": ca.metadata.name},
                    issuance=[{"secretName": "payments-tls", "namespace": ns,
                               "dnsNames": ["payments.prod.example.com"]}]))
    st = wait_degraded(custom_api, b, "CANotOwned")
    assert condition(st, "Degraded")["reason"] == "CANotOwned"
    assert f"CertificatePolicy {a}" in condition(st, "Degraded")["message"]
    # Another pass later still nothing was issued, and A's CA is untouched.
    gen = custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, b, {"spec": {"requirements": {
        "requireSAN": True}}})["metadata"]["generation"]
    wait_for(lambda: policy_status(custom_api, b).get("observedGeneration") == gen, timeout=30, what="another pass")
    assert_never_created(core_v1.list_namespaced_secret, ns, "payments-tls", ca.metadata.resource_version)
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_secret("payments-tls", ns)
    assert err.value.status == 404
    assert_untouched(core_v1, ca)


def test_an_unlabelled_ca_secret_is_adopted_only_by_label(operator, policies, custom_api, core_v1, unique_name,
                                                          operator_namespace):
    theirs = certgen.root("Someone's CA")
    body = certgen.tls_secret(theirs)
    secret = core_v1.create_namespaced_secret(operator_namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=f"{unique_name}-ca"), type=body["type"], data=body["data"]))
    policies(policy(unique_name, ca={"secretName": f"{unique_name}-ca"}))
    st = wait_degraded(custom_api, unique_name, "CANotOwned")
    assert f"{MANAGED_BY}={unique_name}" in condition(st, "Degraded")["message"]
    assert_untouched(core_v1, secret)
    core_v1.patch_namespaced_secret(secret.metadata.name, operator_namespace,
                                    {"metadata": {"labels": {MANAGED_BY: unique_name}}})
    wait_for(lambda: (policy_status(custom_api, unique_name).get("ca") or {}).get("secretName") == secret.metadata.name,
             timeout=30, what="the CA adopted once labelled")


def test_two_exclusive_policies_on_one_target_do_not_fight(operator, policies, custom_api, core_v1, api_client,
                                                          unique_name):
    ns = new_namespace(core_v1)
    a, b = f"{unique_name}-a", f"{unique_name}-b"
    core_v1.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(
        name="shared", annotations={INJECT_CA_FROM: f"{a},{b}"})))
    entry = {"configMap": {"name": "shared", "key": "ca.crt"}, "namespaces": [ns], "exclusive": True}
    policies(policy(a, ca={"secretName": f"{a}-ca"}, trustBundles=[entry]))
    wait_for(lambda: (policy_status(custom_api, a).get("bundleTargets") or {}).get("verified") == 1, timeout=30,
             what="A's exclusive target verified")
    policies(policy(b, ca={"secretName": f"{b}-ca"}, trustBundles=[entry]))
    st = wait_degraded(custom_api, b, "Conflict")
    assert condition(st, "Degraded")["reason"] == "BundleTargetConflict"
    assert f"{a} (exclusive)" in condition(st, "Degraded")["message"]
    assert condition(policy_status(custom_api, a), "Degraded")["status"] == "False"

    # Settled: count every write to the ConfigMap for five of the operator's re-check periods
    # (reported: 334 writes in 30 s, a fight paced by the watches, not by any timer).
    window = int(5 * timers.RECHECK)
    raw = RawClient(api_client)
    path = f"/api/v1/namespaces/{ns}/configmaps"
    listing = raw.get(path, {"fieldSelector": "metadata.name=shared"})
    started = time.monotonic()
    writes = [ev for ev in raw.watch(path, {"fieldSelector": "metadata.name=shared", "timeoutSeconds": window,
                                            "resourceVersion": listing["metadata"]["resourceVersion"]},
                                     timeout=(10, 45)) if ev["type"] in ("MODIFIED", "ADDED", "DELETED")]
    figure(f"two exclusive policies on one key: {len(writes)} writes in {time.monotonic() - started:.0f} s")
    assert writes == []

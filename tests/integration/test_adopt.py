"""A policy deleted with ``Retain`` and re-created under the same name, on a real API server.

The re-created policy has a new UID: the CA Secret, bundle ConfigMap and issued leaf its
predecessor left are not its own. ``CANotOwned`` must name the exact fix (``spec.ca.adopt: true``,
with the command); once it is set, the CA Secret, the bundle target and the leaf are all taken
over in one go — no second hand-over for the bundle — by rewriting only the owner UID annotation;
and an object labelled with the policy's name that records a *live* policy's UID is never taken.
"""

from __future__ import annotations

import base64
import uuid

from crd import GROUP, PLURAL, VERSION, condition
from kubewait import policy_gone, wait_for

MANAGED_BY, OWNER_UID, ROLE = "certpolicy.io/managed-by", "certpolicy.io/managed-by-uid", "certpolicy.io/role"


def test_a_re_created_policy_adopts_what_its_deleted_predecessor_left_and_nothing_of_a_live_one(
        operator, policies, custom_api, core_v1, namespace, unique_name, operator_namespace):
    ns, name = namespace, unique_name
    spec = {"selector": {"names": [{"namespace": ns, "name": "app-tls"}]},
            "requirements": {"extendedKeyUsages": ["serverAuth"]},
            "ca": {"secretName": f"{name}-ca"},
            "trustBundles": [{"configMap": {"name": "adopt-ca"}, "namespaces": [ns]}],
            "issuance": [{"secretName": "app-tls", "namespace": ns, "dnsNames": ["app.adopt.test"],
                          "usages": ["serverAuth"]}]}
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name}, "spec": spec}

    def status() -> dict:
        return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name).get("status") or {}

    def settled(st: dict) -> bool:
        return ((st.get("issued") or {}).get("ready") == 1 and (st.get("bundleTargets") or {}).get("verified") == 1
                and condition(st, "Degraded").get("status") == "False")

    first_uid = policies(body)["metadata"]["uid"]
    ca_fp = wait_for(lambda: (s := status()) and settled(s) and s["ca"]["fingerprint"], timeout=60,
                     what="the first policy's CA, bundle and leaf")
    ca_key = core_v1.read_namespaced_secret(f"{name}-ca", operator_namespace).data["tls.key"]

    # deletionPolicy Retain (the default): everything stays
    custom_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)

    wait_for(lambda: policy_gone(custom_api, name), timeout=30, what="the first policy deleted")

    # A live policy, and objects labelled with our name that record *its* UID: never adopted.
    other = policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy",
                      "metadata": {"name": f"{name}-other"},
                      "spec": {"selector": {"names": [{"namespace": ns, "name": "none"}]}}})
    forged_meta = {"labels": {MANAGED_BY: name, ROLE: "bundle"}, "annotations": {OWNER_UID: other["metadata"]["uid"]}}
    core_v1.create_namespaced_config_map(ns, {"metadata": {"name": "forged-bundle", **forged_meta},
                                              "data": {"ca.crt": ""}})
    forged_ca = f"{name}-forged-{uuid.uuid4().hex[:6]}"
    core_v1.create_namespaced_secret(operator_namespace, {
        "metadata": {"name": forged_ca, "labels": {MANAGED_BY: name, ROLE: "ca"},
                     "annotations": {OWNER_UID: other["metadata"]["uid"]}},
        "data": {"x": base64.b64encode(b"y").decode()}})

    second_uid = policies(body)["metadata"]["uid"]
    assert second_uid != first_uid
    st = wait_for(lambda: (s := status()) and condition(s, "Degraded").get("reason") == "CANotOwned" and s,
                  timeout=60, what="the re-created policy is CANotOwned")
    message = condition(st, "Degraded")["message"]
    assert f"earlier CertificatePolicy {name} (uid {first_uid})" in message, message
    assert "set spec.ca.adopt: true" in message and (
        f"kubectl patch certificatepolicy {name} --type=merge -p '{{\"spec\":{{\"ca\":{{\"adopt\":true}}}}}}'"
        in message), message
    assert f"{MANAGED_BY}={name}" not in message  # the old advice: a label the Secret already has

    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, {"spec": {"ca": {"adopt": True}}})
    st = wait_for(lambda: (s := status()) and settled(s) and s, timeout=60,
                  what="CA, bundle and leaf adopted, the policy settled")
    assert st["ca"]["fingerprint"] == ca_fp  # the predecessor's CA, not a new one

    ca = core_v1.read_namespaced_secret(f"{name}-ca", operator_namespace)
    bundle = core_v1.read_namespaced_config_map("adopt-ca", ns)
    leaf = core_v1.read_namespaced_secret("app-tls", ns)
    for obj in (ca, bundle, leaf):
        assert obj.metadata.annotations[OWNER_UID] == second_uid, obj.metadata.name
        assert obj.metadata.labels[MANAGED_BY] == name
    assert ca.data["tls.key"] == ca_key  # taken over, not replaced
    events = core_v1.list_namespaced_event("default", field_selector=f"involvedObject.name={name},"
                                                                     "reason=AdoptedFromPredecessor").items
    assert events and f"uid {first_uid}" in events[0].message, [e.message for e in events]
    assert f"ConfigMap {ns}/adopt-ca (bundle)" in events[0].message

    # the live policy's UID stays on what is labelled with our name but recorded for it
    other_uid = other["metadata"]["uid"]
    assert core_v1.read_namespaced_config_map("forged-bundle", ns).metadata.annotations[OWNER_UID] == other_uid
    assert core_v1.read_namespaced_secret(forged_ca, operator_namespace).metadata.annotations[OWNER_UID] == other_uid
    assert forged_ca not in events[0].message and "forged-bundle" not in events[0].message
    core_v1.delete_namespaced_secret(forged_ca, operator_namespace)

"""A careless or hostile policy author (issue 18): bounds, lifecycle and no silent failure, on the
real API server. Ownership cases are in test_ownership.py. Figures are printed (``-s``) and
recorded in docs/reliability.md under "Hostile policy author".
"""

from __future__ import annotations

import base64
import uuid

from kubernetes import client
from kubewait import wait_for

from certpolicy.kube.namespaces import ensure_namespace

GROUP, VERSION, PLURAL = "certpolicy.io", "v1alpha1", "certificatepolicies"


def body(name: str, **spec) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
            "spec": {"selector": {"namespaceSelector": {"matchLabels": {"hostile-policy": name}}}, **spec}}


def status(custom_api, name: str) -> dict:
    return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name).get("status") or {}


def condition(st: dict, type_: str) -> dict:
    return next((c for c in st.get("conditions") or () if c["type"] == type_), {})


def new_namespace(core_v1, **labels) -> str:
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels=labels)
    return ns


# ---- no silent failure ------------------------------------------------------------------------------
def test_non_utf8_truststore_password_is_a_finding_not_a_dead_pass(operator, policies, custom_api, core_v1,
                                                                   unique_name, operator_namespace):
    ns = new_namespace(core_v1)
    core_v1.create_namespaced_secret(operator_namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=f"{unique_name}-pw"), type="Opaque",
        data={"password": base64.b64encode(b"\xff\xfe\x00latin-1 \xe9t\xe9").decode()}))
    policies(body(unique_name, ca={"secretName": f"{unique_name}-ca"}, trustBundles=[
        {"configMap": {"name": "java-ca"}, "namespaces": [ns], "formats": {"pkcs12": {
            "key": "truststore.p12", "passwordSecretRef": {"name": f"{unique_name}-pw", "key": "password"}}}}]))
    st = wait_for(lambda: (lambda s: s if condition(s, "Degraded").get("status") == "True" else None)(
        status(custom_api, unique_name)), timeout=30, what="Degraded on the policy")
    degraded = condition(st, "Degraded")
    assert degraded["reason"] == "TruststorePasswordInvalid", degraded
    assert f"{unique_name}-pw" in degraded["message"] and "UTF-8" in degraded["message"]
    assert condition(st, "Ready")["status"] == "True"
    # The PEM bundle is still distributed; only the truststore waits for a usable password.
    cm = wait_for(lambda: core_v1.read_namespaced_config_map("java-ca", ns), timeout=30, what="the PEM bundle")
    assert "ca.crt" in cm.data and "truststore.p12" not in (cm.binary_data or {})


def test_a_pass_that_raises_leaves_degraded_with_reason_on_the_policy(operator, policies, custom_api,
                                                                      unique_name, monkeypatch):
    from certpolicy.handlers import reconcile

    def broken(*_a, **_kw):
        raise RuntimeError("simulated bug in one stage")

    monkeypatch.setattr(reconcile, "trust_bundle_stage", broken)
    policies(body(unique_name))
    st = wait_for(lambda: (lambda s: s if condition(s, "Degraded").get("reason") == "ReconcileFailed" else None)(
        status(custom_api, unique_name)), timeout=30, what="ReconcileFailed on a policy whose pass raises")
    message = condition(st, "Degraded")["message"]
    assert "RuntimeError: simulated bug in one stage" in message and "retried" in message
    monkeypatch.undo()
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name, {"spec": {"requirements": {
        "requireSAN": True}}})
    wait_for(lambda: condition(status(custom_api, unique_name), "Degraded").get("status") == "False", timeout=45,
             what="recovered once the stage works again")

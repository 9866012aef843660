"""Hostile Secrets next to good ones, and no key material anywhere the operator writes or logs.

Every bad Secret must get a finding of its own while the good ones are still evaluated; and with
DEBUG logging on, no log line, event, status field or metric may contain a private key (PEM block
or the base64/DER of any key this test generated, the operator's CA keys included).
"""

from __future__ import annotations

import base64
import uuid

from kubernetes import client

import certgen
from certpolicy.kube.namespaces import ensure_namespace
from crd import GROUP, PLURAL, VERSION
from hostile import hostile_secrets
from hygiene import key_markers
from kubewait import wait_for


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_hostile_secrets_get_findings_and_no_key_material_leaks(
        operator, policies, core_v1, custom_api, unique_name, operator_namespace):
    label = uuid.uuid4().hex[:8]
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels={"hostile": label})
    ca = certgen.root("hygiene CA")
    bad = hostile_secrets(ca)
    good, hostile = bad.good, bad.data
    for name, data in hostile.items():
        core_v1.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name),
                                                             type="kubernetes.io/tls", data=data))
    core_v1.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="good"),
                                                         type="kubernetes.io/tls",
                                                         data=certgen.tls_secret(good)["data"]))
    # The policy's CA is adopted from a Secret made beforehand (handed over by label), so the good
    # leaf chains to it.
    core_v1.create_namespaced_secret(operator_namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=f"{unique_name}-ca", labels={"certpolicy.io/managed-by": unique_name}),
        type="kubernetes.io/tls",
        data={"tls.crt": _b64(ca.pem), "tls.key": _b64(ca.key_pem())}))
    policies({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
        "spec": {
            "selector": {"namespaceSelector": {"matchLabels": {"hostile": label}}},
            "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"], "requirePrivateKey": True},
            "ca": {"secretName": f"{unique_name}-ca"},
            "issuance": [{"secretName": "issued-tls", "namespace": ns, "dnsNames": ["issued.hostile.test"]}],
        },
    })

    def evaluated():
        st = custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name).get("status") or {}
        return st if st.get("summary", {}).get("selected") == len(hostile) + 2 else None

    st = wait_for(evaluated, timeout=60, what="every Secret evaluated")
    violating = {v["name"]: v["reasons"] for v in st["violations"]}
    # Every bad one flagged; the good and issued ones not. DER where PEM was expected is still a
    # readable certificate (reported at Info), so it may comply.
    assert set(hostile) - {"der-in-pem-field"} <= set(violating) <= set(hostile), violating
    assert st["summary"]["compliant"] >= 2
    assert "KeyMismatch" in violating["key-mismatch"]
    assert "KeyMaterialInCertificate" in violating["key-in-crt"]
    wait_for(lambda: {e.involved_object.name for e in core_v1.list_namespaced_event(ns).items
                      if e.type == "Warning"} == set(violating), timeout=30, what="a Warning on each bad Secret")

    # --- hygiene: gather everything the operator said ---------------------------------------------
    ca_secret = core_v1.read_namespaced_secret(f"{unique_name}-ca", operator_namespace)
    issued = core_v1.read_namespaced_secret("issued-tls", ns)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    keys = [*bad.keys, ca.key,
            load_pem_private_key(base64.b64decode(ca_secret.data["tls.key"]), None),
            load_pem_private_key(base64.b64decode(issued.data["tls.key"]), None)]
    markers = [m for k in keys for m in key_markers(k)]

    metrics_text = operator.scrape()
    events = [f"{e.reason} {e.message}" for e in core_v1.list_namespaced_event(ns).items]
    events += [f"{e.reason} {e.message}" for e in core_v1.list_namespaced_event("default").items]
    status = str(custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name))
    log_text = operator.log_text()  # certpolicy run --verbose, since this test began
    assert "[DEBUG" in log_text and unique_name in log_text  # the logs really were captured at DEBUG
    for where, text in {"logs": log_text, "events": "\n".join(events), "status": status,
                        "metrics": metrics_text}.items():
        assert "PRIVATE KEY" not in text, where
        leaked = [m for m in markers if m in text]
        assert not leaked, f"key material in {where}"

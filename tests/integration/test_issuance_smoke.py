"""Smoke test of the managed path: CA created, bundle distributed, leaf issued and judged compliant."""

from __future__ import annotations

import base64
import uuid

from certpolicy.kube.namespaces import ensure_namespace
from crd import GROUP, PLURAL, VERSION
from kubewait import wait_for


def test_ca_bundle_and_leaf(operator, policies, core_v1, custom_api, unique_name, operator_namespace):
    label = uuid.uuid4().hex[:8]
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels={"smoke": label})
    policies({
        "apiVersion": "certpolicy.io/v1alpha1", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
        "spec": {
            "selector": {"namespaceSelector": {"matchLabels": {"smoke": label}}},
            "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"], "allowedDNSNames": ["*.smoke.test"]},
            "ca": {"secretName": f"{unique_name}-ca"},
            "trustBundles": [{"configMap": {"name": "smoke-ca"}, "namespaceSelector": {"matchLabels": {"smoke": label}},
                              "formats": {"pkcs12": {"key": "truststore.p12", "alias": "smoke"}}}],
            "issuance": [{"secretName": "app-tls", "namespace": ns, "dnsNames": ["app.smoke.test"]}],
        },
    })

    def status():
        st = custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL,
                                                  unique_name).get("status") or {}
        conds = {c["type"]: c for c in st.get("conditions", [])}
        return st if conds.get("Compliant", {}).get("status") == "True" and st.get("summary", {}).get("selected") else None

    st = wait_for(status, timeout=30, what="Compliant with the issued leaf selected")
    assert st["issued"]["ready"] == 1 and st["bundleTargets"]["verified"] == 1
    assert st["ca"]["fingerprint"].startswith("sha256:")
    cm = core_v1.read_namespaced_config_map("smoke-ca", ns)
    assert "BEGIN CERTIFICATE" in cm.data["ca.crt"] and "truststore.p12" in cm.binary_data
    secret = core_v1.read_namespaced_secret("app-tls", ns)
    assert secret.metadata.labels["certpolicy.io/managed-by"] == unique_name
    assert base64.b64decode(secret.data["ca.crt"]).decode() == cm.data["ca.crt"]
    ca_secret = core_v1.read_namespaced_secret(f"{unique_name}-ca", operator_namespace)
    assert ca_secret.type == "kubernetes.io/tls"

"""Hostile Secrets next to good ones, and no key material anywhere the operator writes or logs.

Every bad Secret must get a finding of its own while the good ones are still evaluated; and with
DEBUG logging on, no log line, event, status field or metric may contain a private key (PEM block
or the base64/DER of any key this test generated, the operator's CA keys included).
"""

from __future__ import annotations

import base64
import logging
import urllib.request
import uuid

import certgen
from cryptography.hazmat.primitives import serialization
from kubernetes import client
from kubewait import wait_for

from certpolicy.kube.namespaces import ensure_namespace

GROUP, VERSION, PLURAL = "certpolicy.io", "v1alpha1", "certificatepolicies"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _key_markers(key) -> list[str]:
    """Substrings that would betray this key: its PEM body lines and base64 of its DER."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    body = [line for line in pem.splitlines() if "-----" not in line]
    return [_b64(der)[:40], body[0], body[1] if len(body) > 1 else body[0], _b64(pem.encode())[:40]]


def test_hostile_secrets_get_findings_and_no_key_material_leaks(
        operator, policies, core_v1, custom_api, unique_name, operator_namespace, caplog):
    caplog.set_level(logging.DEBUG)
    label = uuid.uuid4().hex[:8]
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels={"hostile": label})
    ca = certgen.root("hygiene CA")
    good = certgen.leaf(ca, "good.hostile.test")
    other_key = certgen.new_key()
    loop_a = certgen.root("loop A")
    chain = [certgen.intermediate(ca, "i0")]
    for i in range(1, 500):  # a chain of 500 certificates
        chain.append(certgen.intermediate(chain[-1], f"i{i}"))
    deep_leaf = certgen.leaf(chain[-1], "deep.hostile.test")
    # The API server caps a Secret's data at 1 MiB: a tls.crt just under it.
    huge = b"-----BEGIN CERTIFICATE-----\n" + b"A" * (1024 * 1024 - 8192) + b"\n-----END CERTIFICATE-----\n"
    hostile = {
        "garbage": {"tls.crt": _b64(b"\x00\xffnot a certificate at all\x13"), "tls.key": _b64(b"junk")},
        "der-in-pem-field": {"tls.crt": _b64(good.der), "tls.key": _b64(good.key_pem())},
        "truncated-pem": {"tls.crt": _b64(good.pem[: len(good.pem) // 2]), "tls.key": _b64(good.key_pem())},
        "huge": {"tls.crt": _b64(huge), "tls.key": _b64(good.key_pem())},
        "key-mismatch": {"tls.crt": _b64(good.pem),
                         "tls.key": _b64(certgen.key_pem(other_key))},
        "non-utf8": {"tls.crt": _b64(bytes(range(256)) * 4), "tls.key": _b64(bytes(range(255, -1, -1)))},
        "empty": {"tls.crt": "", "tls.key": ""},
        "self-loop": {"tls.crt": _b64(certgen.pem(loop_a) * 3), "tls.key": _b64(loop_a.key_pem())},
        "long-chain": {"tls.crt": _b64(certgen.pem(deep_leaf, *reversed(chain))), "tls.key": _b64(deep_leaf.key_pem())},
    }
    for name, data in hostile.items():
        core_v1.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name),
                                                             type="kubernetes.io/tls", data=data))
    core_v1.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="good"),
                                                         type="kubernetes.io/tls",
                                                         data=certgen.tls_secret(good)["data"]))
    # The policy's CA is adopted from a Secret made beforehand, so the good leaf chains to it.
    core_v1.create_namespaced_secret(operator_namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=f"{unique_name}-ca"), type="kubernetes.io/tls",
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
    wait_for(lambda: {e.involved_object.name for e in core_v1.list_namespaced_event(ns).items
                      if e.type == "Warning"} == set(violating), timeout=30, what="a Warning on each bad Secret")

    # --- hygiene: gather everything the operator said ---------------------------------------------
    ca_secret = core_v1.read_namespaced_secret(f"{unique_name}-ca", operator_namespace)
    issued = core_v1.read_namespaced_secret("issued-tls", ns)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    keys = [good.key, other_key, loop_a.key, ca.key,
            load_pem_private_key(base64.b64decode(ca_secret.data["tls.key"]), None),
            load_pem_private_key(base64.b64decode(issued.data["tls.key"]), None)]
    markers = [m for k in keys for m in _key_markers(k)]

    from certpolicy import metrics

    with urllib.request.urlopen(f"http://127.0.0.1:{metrics._server[1]}/metrics", timeout=5) as resp:  # noqa: S310
        metrics_text = resp.read().decode()
    events = [f"{e.reason} {e.message}" for e in core_v1.list_namespaced_event(ns).items]
    events += [f"{e.reason} {e.message}" for e in core_v1.list_namespaced_event("default").items]
    status = str(custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name))
    log_text = caplog.text
    assert "DEBUG" in log_text  # the logs really were captured at DEBUG
    for where, text in {"logs": log_text, "events": "\n".join(events), "status": status,
                        "metrics": metrics_text}.items():
        assert "PRIVATE KEY" not in text, where
        leaked = [m for m in markers if m in text]
        assert not leaked, f"key material in {where}"

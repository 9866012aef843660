"""Rotating the CA behind a cert-manager CA Issuer on a real node: no failed handshake.

cert-manager's real controllers (tests/certmanager.py, run against the node cluster) issue two
Certificates from a CA Issuer; two Pods mount their Secrets and the trust bundle the operator
distributes (a ConfigMap), reload them when the kubelet updates the files, and handshake mTLS with
each other every 0.2 s through a Service (kube-proxy). The operator, installed from manifests/ as
shipped, rotates the Issuer's CA through the five steps (``spec.ca.certManager``): the new CA into
the bundle, the Issuer's Secret swapped at step 3 and both Certificates re-issued the way
``cmctl renew`` does it, the old CA out of the bundle at step 5.
"""

from __future__ import annotations

import base64
import time
import uuid

import yaml
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from e2e_workloads import WORKLOAD, assert_no_failed_handshake, bundle_fps, last_counts, pem_fp, workload_spec

import certgen
import certmanager
from kubewait import WaitTimeout, wait_for

USAGES = ["digital signature", "key encipherment", "server auth", "client auth"]
ISSUED = {"controller.cert-manager.io/fao": "true"}  # cert-manager's label on the Secrets it issues


def test_a_ca_issuer_rotation_with_two_mtls_pods_fails_no_handshake(installed, tmp_path):
    k = installed.kubectl
    ns = f"e2e-issuer-{uuid.uuid4().hex[:6]}"
    k("create", "namespace", ns)
    k("-n", ns, "create", "configmap", "mtls-app", f"--from-file={WORKLOAD}")
    k("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "mtls-server", "namespace": ns},
        "spec": {"selector": {"app": "mtls-server"},
                 "ports": [{"name": "workload", "port": 8443}, {"name": "probe", "port": 8444}]}}))

    cm = certmanager.CertManager(installed, tmp_path / "cert-manager")
    cm.start()
    try:
        core, custom = certmanager.clients(installed)
        ca = certgen.root(f"e2e issuer CA {uuid.uuid4().hex[:6]}")
        certmanager.ca_issuer(core, custom, ns, "ca", ca.pem, ca.key_pem())
        for name, dns in (("server-tls", "server.e2e.test"), ("client-tls", "client.e2e.test")):
            certmanager.apply(custom, ns, "certificates", certmanager.certificate(
                name, issuer_name="ca", secret_name=name, dns_names=[dns], usages=USAGES,
                private_key={"algorithm": "ECDSA", "size": 256}))
        for name in ("server-tls", "client-tls"):
            certmanager.wait_issued(custom, ns, name, timeout=120)

        policy_name = ns
        k("apply", "-f", "-", input=yaml.safe_dump({
            "apiVersion": "certpolicy.io/v1alpha1", "kind": "CertificatePolicy", "metadata": {"name": policy_name},
            "spec": {
                "selector": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}},
                             "secretSelector": {"matchLabels": ISSUED}},
                "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"],
                                 "allowedDNSNames": ["*.e2e.test"]},
                "ca": {"secretName": "ca-ca", "keyAlgorithm": "ECDSAP256",
                       "certManager": {"issuerRef": {"kind": "Issuer", "name": "ca", "namespace": ns}}},
                "trustBundles": [{"configMap": {"name": "mtls-ca", "key": "ca.crt"},
                                  "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}],
                # No probes: the operator only probes *.svc names, and this node has no cluster DNS.
                # The kubelet refreshes volumes within ~10 s here: 30 s per step covers it.
                "rotation": {"propagationDelay": "30s"},
            }}))

        def policy() -> dict:
            return installed.get("certpol", policy_name)

        old_fp = pem_fp(ca.pem.decode())
        wait_for(lambda: installed.kubectl("get", "configmap", "-n", ns, "mtls-ca", check=False), timeout=120,
                 interval=1, what="the trust bundle ConfigMap")
        wait_for(lambda: bundle_fps(installed.get("configmap", "-n", ns, "mtls-ca")["data"]["ca.crt"]) == [old_fp],
                 timeout=120, interval=1, what="the Issuer's CA in the bundle")

        image = installed.workload_image
        k("apply", "-f", "-", input=yaml.safe_dump(workload_spec("mtls-server", ns, image, "server", "server-tls")))
        wait_for(lambda: last_counts(installed, ns, "mtls-server"), timeout=120, interval=1, what="the server to serve")
        k("apply", "-f", "-", input=yaml.safe_dump(workload_spec("mtls-client", ns, image, "client", "client-tls")))
        wait_for(lambda: (last_counts(installed, ns, "mtls-client") or {}).get("workload", {}).get("ok", 0) > 5,
                 timeout=120, interval=1, what="the client's first handshakes")

        started = time.monotonic()
        k("annotate", "certpol", policy_name, "certpolicy.io/rotate=e2e-issuer", "--overwrite")

        def completed():
            rotation = policy()["status"].get("rotation") or {}
            history = rotation.get("history") or []
            return not rotation.get("id") and history and history[0]["id"] == "e2e-issuer" and history[0]
        try:
            record = wait_for(completed, timeout=600, interval=2, what="the Issuer's rotation to complete")
        except WaitTimeout as e:
            rotation = policy()["status"].get("rotation") or {}
            raise AssertionError(f"{e}; step {rotation.get('step')} {rotation.get('phase')}: {rotation.get('message')}; "
                                 f"workloads: {rotation.get('workloads')}") from None
        assert record["outcome"] == "Completed", record
        print(f"\nIssuer rotation completed in {time.monotonic() - started:.0f}s: {record}")

        # The Issuer signs with the new CA, both Certificates were re-issued from it, and the bundle
        # holds it alone.
        issuer_ca = x509.load_pem_x509_certificate(base64.b64decode(core.read_namespaced_secret("ca-ca", ns).data["tls.crt"]))
        new_pem = issuer_ca.public_bytes(Encoding.PEM).decode()
        new_fp = pem_fp(new_pem)
        assert new_fp != old_fp
        leaves = {}
        for name in ("server-tls", "client-tls"):
            pem = base64.b64decode(core.read_namespaced_secret(name, ns).data["tls.crt"]).decode()
            x509.load_pem_x509_certificate(pem.encode()).verify_directly_issued_by(issuer_ca)
            leaves[name] = pem_fp(pem)
        bundle = bundle_fps(installed.get("configmap", "-n", ns, "mtls-ca")["data"]["ca.crt"])
        assert bundle == [new_fp]

        assert_no_failed_handshake(installed, ns, leaves["server-tls"], leaves["client-tls"], bundle,
                                   "the Issuer rotation")
        assert cm.alive(), cm.log_text()[-3000:]
    finally:
        cm.stop()

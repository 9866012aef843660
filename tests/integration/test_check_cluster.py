"""``certpolicy check --secret`` against the real API server: the real ``ClusterReader`` (kubeconfig
from the flag or KUBECONFIG, API reads, a trust bundle in a ConfigMap's ``binaryData`` or in a
Secret, the error text of a missing object, a missing key, a refused read and a bad kubeconfig).
tests/unit/test_checkcmd.py covers the same verbs against a fake reader; this is the reader itself.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import kubernetes
import pytest

import certgen
from certpolicy.pki.fingerprint import fingerprint

CLI = Path(sys.executable).parent / "certpolicy"


def check(*args: str, kubeconfig: Path | None = None, env_kubeconfig: Path | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "KUBECONFIG"}
    env["HOME"] = os.environ.get("HOME", "/nonexistent")
    if env_kubeconfig is not None:
        env["KUBECONFIG"] = str(env_kubeconfig)
    flags = ["--kubeconfig", str(kubeconfig)] if kubeconfig is not None else []
    return subprocess.run([str(CLI), "check", *args, *flags], capture_output=True, text=True, timeout=120, env=env)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def world(namespace, core_v1, tmp_path):
    """Two TLS Secrets of one PKI (one lacks clientAuth), its root in a ConfigMap's binaryData and
    in a Secret, and a policy file per bundle source."""
    pki = certgen.pki()
    labfeed = certgen.leaf(pki.intermediate, "labfeed.example.com", eku=["serverAuth"])
    for name, secret in (("mirth-tls", pki.secret()), ("labfeed-tls", certgen.tls_secret(labfeed, [pki.intermediate]))):
        core_v1.create_namespaced_secret(namespace, {"metadata": {"name": name}, "type": secret["type"],
                                                     "data": secret["data"]})
    core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "hl7-ca"},
                                                     "binaryData": {"ca.der": b64(pki.root.der)}})
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "hl7-ca-secret"}, "data": {"ca.crt": b64(pki.root.pem)}})
    policies = {}
    for source, ref in (("configmap", f"configMap: {{namespace: {namespace}, name: hl7-ca, key: ca.der}}"),
                        ("secret", f"secret: {{namespace: {namespace}, name: hl7-ca-secret, key: ca.crt}}"),
                        ("missing-key", f"configMap: {{namespace: {namespace}, name: hl7-ca, key: absent.crt}}")):
        path = tmp_path / f"{source}.yaml"
        path.write_text("kind: CertificatePolicy\nspec:\n  requirements:\n"
                        f"    extendedKeyUsages: [serverAuth, clientAuth]\n    trustBundle: {{{ref}}}\n")
        policies[source] = path
    return namespace, pki, policies


@pytest.mark.parametrize("source", ["configmap", "secret"])
def test_secrets_are_checked_against_a_bundle_read_from_the_cluster(cluster, world, source):
    ns, pki, policies = world
    proc = check("--secret", f"{ns}/mirth-tls", "--secret", f"{ns}/labfeed-tls", "--policy", str(policies[source]),
                 "-o", "json", kubeconfig=cluster.kubeconfig)
    assert proc.returncode == 2, proc.stderr
    by = {r["target"]: r for r in json.loads(proc.stdout)["results"]}
    mirth, labfeed = by[f"secret {ns}/mirth-tls"], by[f"secret {ns}/labfeed-tls"]
    assert mirth["compliant"] and mirth["kind"] == "secret"
    assert mirth["anchorFingerprint"] == fingerprint(pki.root.cert)
    assert [f["reason"] for f in labfeed["findings"] if f["severity"] == "Critical"] == ["MissingClientAuth"]


def test_kubeconfig_from_the_environment(cluster, world):
    ns, _pki, policies = world
    proc = check("--secret", f"{ns}/mirth-tls", "--policy", str(policies["configmap"]), env_kubeconfig=cluster.kubeconfig)
    assert proc.returncode == 0, proc.stderr
    assert f"secret {ns}/mirth-tls" in proc.stdout


def test_read_errors_say_what_could_not_be_read(cluster, world, core_v1, tmp_path):
    ns, _pki, policies = world
    missing = check("--secret", f"{ns}/nope", "-o", "json", kubeconfig=cluster.kubeconfig)
    assert missing.returncode == 3
    (result,) = json.loads(missing.stdout)["results"]
    assert result["error"] == f"cannot read Secret {ns}/nope: 404 Not Found"

    no_key = check("--secret", f"{ns}/mirth-tls", "--policy", str(policies["missing-key"]), kubeconfig=cluster.kubeconfig)
    assert no_key.returncode == 3 and f"ConfigMap {ns}/hl7-ca has no key 'absent.crt'" in no_key.stderr

    bad = check("--secret", f"{ns}/mirth-tls", kubeconfig=tmp_path / "absent.kubeconfig")
    assert bad.returncode == 3 and "cannot load a kubeconfig" in bad.stderr

    # A ServiceAccount without RBAC: the read is refused; the message names status and reason only,
    # never the API's body.
    core_v1.create_namespaced_service_account(ns, {"metadata": {"name": "reader"}})
    token = core_v1.create_namespaced_service_account_token("reader", ns, kubernetes.client.AuthenticationV1TokenRequest(
        spec=kubernetes.client.V1TokenRequestSpec(audiences=[], expiration_seconds=600))).status.token
    denied = check("--secret", f"{ns}/mirth-tls", "-o", "json",
                   kubeconfig=cluster.token_kubeconfig(token, tmp_path / "sa.kubeconfig"))
    assert denied.returncode == 3
    (result,) = json.loads(denied.stdout)["results"]
    assert result["error"] == f"cannot read Secret {ns}/mirth-tls: 403 Forbidden"

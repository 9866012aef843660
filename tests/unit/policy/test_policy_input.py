"""Malformed input becomes findings, never exceptions."""

from __future__ import annotations

import base64

import pytest

import certgen
from certpolicy.pki.publicroots import PublicRoots
from certpolicy.pki.secretdata import material_from_secret
from certpolicy.policy.evaluate import evaluate
from certpolicy.policy.findings import Severity
from certpolicy.policy.spec import requirements_from_spec

REQ = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"], "requirePrivateKey": True})


def ev_of(secret_type, data, bundle=None):
    m = material_from_secret(secret_type, data)
    return evaluate(REQ, m, bundle, certgen.utcnow(), public_roots=PublicRoots.of([]))


@pytest.mark.parametrize(
    ("secret_type", "data", "reason"),
    [
        ("kubernetes.io/tls", {}, "NoCertificate"),
        ("kubernetes.io/tls", None, "NoCertificate"),
        ("kubernetes.io/tls", {"tls.crt": ""}, "NoCertificate"),
        ("kubernetes.io/tls", {"tls.crt": certgen.b64(b"garbage")}, "NoCertificate"),
        ("kubernetes.io/tls", {"tls.crt": "%%%"}, "MalformedSecretData"),
        ("kubernetes.io/tls", {"tls.crt": certgen.b64(b"-----BEGIN CERTIFICATE-----\nMIIB\n")}, "MalformedCertificate"),
        ("kubernetes.io/tls", {"tls.crt": certgen.b64(bytes(range(256)))}, "NoCertificate"),
        ("kubernetes.io/basic-auth", {"username": "dQ=="}, "WrongSecretType"),
        ("Opaque", {"config": certgen.b64(b"x: 1")}, "NoCertificate"),
    ],
)
def test_bad_secrets_are_findings(secret_type, data, reason):
    ev = ev_of(secret_type, data)
    assert reason in [f.reason for f in ev.findings]
    assert not ev.compliant
    assert ev.certificates == () and ev.anchor_fingerprint is None
    assert "CheckFailed" not in [f.reason for f in ev.findings]


def test_wrong_type_is_a_warning():
    ev = ev_of("kubernetes.io/dockerconfigjson", {".dockerconfigjson": "e30="})
    assert ev.worst_severity is Severity.WARNING


def test_double_encoded_secret_is_critical_but_checked(ec_pki):
    data = {"tls.crt": certgen.b64(base64.b64encode(ec_pki.chain_pem)), "tls.key": certgen.b64(ec_pki.leaf.key_pem())}
    ev = ev_of("kubernetes.io/tls", data, ec_pki.bundle)
    reasons = [f.reason for f in ev.findings]
    assert reasons == ["DoubleEncoded"]
    assert ev.anchor_fingerprint is not None


def test_leaf_not_first_is_reported(ec_pki):
    data = {"tls.crt": certgen.b64(ec_pki.intermediate.pem + ec_pki.leaf.pem), "tls.key": certgen.b64(ec_pki.leaf.key_pem())}
    ev = ev_of("kubernetes.io/tls", data, ec_pki.bundle)
    assert [f.reason for f in ev.findings] == ["LeafNotFirst"]


def test_problem_messages_name_the_data_key():
    ev = ev_of("kubernetes.io/tls", {"tls.crt": certgen.b64(b"junk"), "tls.key": certgen.b64(b"junk")})
    assert any(f.message.startswith("tls.crt:") for f in ev.findings)
    assert any(f.reason == "MalformedKey" and "tls.key" in f.message for f in ev.findings)


def test_huge_secret(ec_pki):
    data = {"tls.crt": certgen.b64(ec_pki.leaf.pem + b"\n" + b"x" * (5 * 1024 * 1024)), "tls.key": certgen.b64(ec_pki.leaf.key_pem())}
    ev = ev_of("kubernetes.io/tls", data, ec_pki.bundle)
    assert "InputTooLarge" in [f.reason for f in ev.findings]
    assert ev.leaf is not None

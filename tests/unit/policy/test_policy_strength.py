"""Key and signature findings, and the private-key check."""

from __future__ import annotations

import pytest

import certgen
from certpolicy.policy.findings import Role, Severity
from certpolicy.policy.spec import requirements_from_spec


def test_weak_rsa_leaf(ec_pki, run, pick, now):
    """The verifier ignores leaf key sizes; the policy does not."""
    leaf = certgen.leaf(ec_pki.intermediate, "weak.example.com", key_kind="rsa1024")
    ev = run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now)
    (f,) = pick(ev, "WeakRSAKey")
    assert f.cert.role is Role.LEAF and "1024" in f.message and f.severity is Severity.CRITICAL
    assert ev.anchor_fingerprint is not None  # trusted all the same


def test_rsa_minimum_is_configurable(rsa_pki, run, pick, now):
    assert run(rsa_pki.leaf, [rsa_pki.intermediate], bundle=rsa_pki.bundle, now=now).findings == ()
    req = requirements_from_spec({"minimumRSABits": 3072})
    ev = run(rsa_pki.leaf, [rsa_pki.intermediate], req=req, bundle=rsa_pki.bundle, now=now)
    assert {f.cert.role for f in pick(ev, "WeakRSAKey")} == {Role.LEAF, Role.INTERMEDIATE, Role.ROOT}


def test_weak_rsa_ca_also_untrusted(run, reasons, now):
    root = certgen.root("Weak Root", key_kind="rsa1024")
    leaf = certgen.leaf(root, "x.example.com")
    assert {"WeakRSAKey", "UntrustedChain"} <= set(reasons(run(leaf, bundle=[root.cert], now=now)))


@pytest.mark.parametrize(("kind", "flagged"), [("p256", False), ("p384", False), ("p521", False), ("secp256k1", True), ("brainpoolp256r1", True)])
def test_curves(ec_pki, run, pick, now, kind, flagged):
    leaf = certgen.leaf(ec_pki.intermediate, "c.example.com", key_kind=kind)
    found = pick(run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now), "DisallowedCurve")
    assert bool(found) is flagged


def test_curve_allow_list(ec_pki, run, pick, now):
    leaf = certgen.leaf(ec_pki.intermediate, "c.example.com", key_kind="p384")
    req = requirements_from_spec({"allowedECCurves": ["P-256"]})
    (f,) = pick(run(leaf, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now), "DisallowedCurve")
    assert "P-384" in f.message


def test_ed25519_leaf(ec_pki, run, pick, now):
    leaf = certgen.leaf(ec_pki.intermediate, "ed.example.com", key_kind="ed25519")
    (f,) = pick(run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now), "UnsupportedKeyAlgorithm")
    assert f.severity is Severity.WARNING and "Ed25519" in f.message


@pytest.mark.parametrize("h", ["sha1", "md5"])
def test_weak_signature_hash(run, pick, reasons, now, h):
    root = certgen.root("RSA Root", key_kind="rsa2048")
    leaf = certgen.leaf(root, "old.example.com", key_kind="rsa2048", hash=h)
    ev = run(leaf, bundle=[root.cert], now=now)
    (f,) = pick(ev, "WeakSignatureHash")
    assert f.cert.role is Role.LEAF and h.upper() in f.message
    assert "UntrustedChain" in reasons(ev)


def test_sha224_is_not_allowed_by_default(ec_pki, run, pick, now):
    leaf = certgen.leaf(ec_pki.intermediate, "x.example.com", hash="sha224")
    (f,) = pick(run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now), "DisallowedSignatureHash")
    assert "sha224" in f.message


def test_sha1_self_signature_of_a_root_is_not_held_against_it(run, pick, now):
    root = certgen.root("Legacy Root", key_kind="rsa2048", hash="sha1")
    inter = certgen.intermediate(root, "Modern Intermediate", key_kind="rsa2048")
    leaf = certgen.leaf(inter, "x.example.com")
    ev = run(leaf, [inter], bundle=[root.cert], now=now)
    assert pick(ev, "WeakSignatureHash") == []
    assert ev.anchor_fingerprint is not None


def test_v1_certificate(run, pick, now):
    root = certgen.root("RSA Root", key_kind="rsa2048")
    leaf = certgen.leaf(root, "v1.example.com", key_kind="rsa2048", version=1)
    ev = run(leaf, bundle=[root.cert], now=now)
    (f,) = pick(ev, "V1Certificate")
    assert f.severity is Severity.WARNING
    assert pick(ev, "NoSubjectAltName") and pick(ev, "UntrustedChain")


def test_malformed_extension(run, pick, now):
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID

    bad = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x05\x82\x09oops")
    leaf = certgen.leaf(None, "x.example.com", dns_names=(), extra_extensions=[(bad, False)])
    ev = run(leaf, now=now)
    (f,) = pick(ev, "MalformedExtension")
    assert f.severity is Severity.CRITICAL and not pick(ev, "CheckFailed")


# --- private keys ---


def test_key_mismatch(ec_pki, run, pick, now):
    ev = run(ec_pki.leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now, key=certgen.key("p256", 9))
    (f,) = pick(ev, "KeyMismatch")
    assert f.severity is Severity.CRITICAL and f.cert.role is Role.LEAF


@pytest.mark.parametrize("fmt", ["pkcs8", "sec1"])
def test_matching_key_formats(ec_pki, run, now, fmt):
    assert run(ec_pki.leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now, key_format=fmt).findings == ()


def test_missing_key_only_matters_when_required(ec_pki, run, reasons, now):
    assert run(ec_pki.leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now, key=False).findings == ()
    req = requirements_from_spec({"requirePrivateKey": True})
    assert reasons(run(ec_pki.leaf, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now, key=False)) == ["MissingPrivateKey"]
    assert run(ec_pki.leaf, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now).findings == ()


def test_key_problem_findings(ec_pki, now):
    from certpolicy.pki.publicroots import PublicRoots
    from certpolicy.pki.secretdata import material_from_secret
    from certpolicy.policy.evaluate import evaluate
    from certpolicy.policy.spec import Requirements

    def reasons_for(key_bytes: bytes) -> list[str]:
        data = {"tls.crt": certgen.b64(ec_pki.chain_pem), "tls.key": certgen.b64(key_bytes)}
        ev = evaluate(Requirements(), material_from_secret("kubernetes.io/tls", data), ec_pki.bundle, now, public_roots=PublicRoots.of([]))
        return [f.reason for f in ev.findings]

    assert reasons_for(ec_pki.leaf.key_pem(password=b"pw")) == ["EncryptedKey"]
    assert reasons_for(b"garbage") == ["MalformedKey"]
    assert reasons_for(certgen.key_pem(certgen.key("ed25519"), "openssh")) == ["UnsupportedKey"]


def test_messages_never_contain_key_material(ec_pki, rsa_pki, run, now):
    wrong = certgen.key("rsa2048", 8)
    ev = run(ec_pki.leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now, key=wrong)
    secrets = [line.decode() for line in certgen.key_pem(wrong).splitlines()[1:-1]] + [line.decode() for line in ec_pki.leaf.key_pem().splitlines()[1:-1]]
    text = repr(ev) + str(ev.to_dict())
    assert not any(s in text for s in secrets)
    assert "PRIVATE KEY" not in text

"""From a Secret's data to SecretMaterial: layouts, keys, problems, and what is (not) kept."""

from __future__ import annotations

import dataclasses
import sys

import pytest

import certgen
from certpolicy.pki.secretdata import (
    KeyStatus,
    SecretMaterial,
    classify_data_key,
    material_from_bytes,
    material_from_manifest,
    material_from_pkcs12,
    material_from_secret,
)

b64 = certgen.b64


def reasons(m: SecretMaterial) -> list[str]:
    return [p.reason for p in m.problems]


def test_tls_secret(ec_pki):
    s = ec_pki.secret(ca=[ec_pki.root])
    m = material_from_secret(s["type"], s["data"])
    assert m.leaf == ec_pki.leaf.cert
    assert m.intermediates == (ec_pki.intermediate.cert,)
    assert m.ca_certificates == (ec_pki.root.cert,)
    assert m.key_status is KeyStatus.MATCH and m.problems == ()
    assert m.certificate_source == "tls.crt" and m.key_source == "tls.key" and m.ca_source == "ca.crt"
    assert m.content_digest.startswith("sha256:")
    assert m.certificates == (ec_pki.leaf.cert, ec_pki.intermediate.cert)


@pytest.mark.parametrize("fmt", ["pkcs8", "pkcs1"])
def test_rsa_key_formats_match(rsa_pki, fmt):
    s = rsa_pki.secret(key_format=fmt)
    assert material_from_secret(s["type"], s["data"]).key_status is KeyStatus.MATCH


def test_sec1_key_matches(ec_pki):
    s = ec_pki.secret(key_format="sec1")
    assert material_from_secret(s["type"], s["data"]).key_status is KeyStatus.MATCH


def test_decoded_bytes_values(ec_pki):
    s = ec_pki.secret(encoded=False)
    m = material_from_secret(s["type"], s["data"])
    assert m.leaf == ec_pki.leaf.cert and m.key_status is KeyStatus.MATCH


def test_manifest_forms(ec_pki):
    s = ec_pki.secret()
    assert material_from_manifest(s).leaf == ec_pki.leaf.cert

    class V1Secret:  # what the kubernetes client returns
        type = s["type"]
        data = s["data"]

    assert material_from_manifest(V1Secret()).leaf == ec_pki.leaf.cert
    string_data = {"type": "kubernetes.io/tls", "stringData": {"tls.crt": ec_pki.chain_pem.decode(), "tls.key": ec_pki.leaf.key_pem().decode()}}
    assert material_from_manifest(string_data).key_status is KeyStatus.MATCH


def test_key_mismatch_names_both_keys_but_no_material(ec_pki):
    other = certgen.key("rsa2048", 7)
    s = ec_pki.secret(key=other)
    m = material_from_secret(s["type"], s["data"])
    assert m.key_status is KeyStatus.MISMATCH
    assert m.leaf == ec_pki.leaf.cert  # still the first non-CA certificate
    assert "RSA 2048" in m.key_detail and "EC P-256" in m.key_detail
    pem_lines = certgen.key_pem(other).decode().splitlines()[1:-1]
    assert not any(line in m.key_detail for line in pem_lines)


def test_encrypted_key(ec_pki):
    data = {"tls.crt": b64(ec_pki.chain_pem), "tls.key": b64(ec_pki.leaf.key_pem(password=b"pw"))}
    assert material_from_secret("kubernetes.io/tls", data).key_status is KeyStatus.ENCRYPTED
    assert material_from_secret("kubernetes.io/tls", data, password=b"pw").key_status is KeyStatus.MATCH


@pytest.mark.parametrize(
    ("key", "status"),
    [(b"garbage", KeyStatus.MALFORMED), (b"", KeyStatus.MISSING), (None, KeyStatus.MISSING)],
)
def test_key_problems(ec_pki, key, status):
    data = {"tls.crt": b64(ec_pki.chain_pem)}
    if key is not None:
        data["tls.key"] = b64(key)
    m = material_from_secret("kubernetes.io/tls", data)
    assert m.key_status is status and m.leaf == ec_pki.leaf.cert


def test_openssh_key_is_unsupported():
    leaf = certgen.leaf(None, "ssh.example.com", key_kind="ed25519", hash=None)
    data = {"tls.crt": b64(leaf.pem), "tls.key": b64(leaf.key_pem("openssh"))}
    assert material_from_secret("kubernetes.io/tls", data).key_status is KeyStatus.UNSUPPORTED


def test_material_keeps_no_secret_bytes_or_keys(ec_pki):
    s = ec_pki.secret()
    m = material_from_secret(s["type"], s["data"])
    key_b64 = s["data"]["tls.key"]
    for f in dataclasses.fields(m):
        value = getattr(m, f.name)
        assert not isinstance(value, (bytes, bytearray))
        assert key_b64 not in repr(value)
    assert "PRIVATE" not in repr(m)
    assert not hasattr(m, "__dict__")  # slots: nothing can be stashed on it later
    assert sys.getsizeof(m) < 200


@pytest.mark.parametrize("kind", ["p256", "rsa2048"])
def test_a_held_leaf_keeps_no_public_key_object(kind):
    """cryptography keeps a certificate's public key on the certificate object once asked for it
    (~1.5 KB for P-256); the inventory holds every selected leaf, so the key check and the summary
    read it from a throwaway copy. Seen through tracemalloc: no allocation made on a line that
    calls ``public_key(`` is still alive while the materials are."""
    import linecache
    import tracemalloc

    from certpolicy.pki.cache import clear_all

    clear_all()
    ca = certgen.root("held leaves CA", key_kind=kind)
    secrets = [certgen.tls_secret(certgen.leaf(ca, f"held-{i}.test", key_kind=kind)) for i in range(20)]
    tracemalloc.start(25)
    try:
        materials = [material_from_secret(s["type"], s["data"]) for s in secrets]
        snapshot = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
    assert all(m.key_status is KeyStatus.MATCH for m in materials)
    held = [f"{frame.filename}:{frame.lineno}" for trace in snapshot.traces for frame in trace.traceback[-1:]
            if "public_key(" in linecache.getline(frame.filename, frame.lineno)]
    assert held == []


def test_material_is_cached_by_content(ec_pki):
    s = ec_pki.secret()
    a = material_from_secret(s["type"], dict(s["data"]))
    b = material_from_secret(s["type"], dict(reversed(list(s["data"].items()))))
    assert a is b
    changed = dict(s["data"], extra=b64(b"x"))
    assert material_from_secret(s["type"], changed).content_digest != a.content_digest


def test_leaf_not_first(ec_pki):
    data = {"tls.crt": b64(ec_pki.intermediate.pem + ec_pki.leaf.pem), "tls.key": b64(ec_pki.leaf.key_pem())}
    m = material_from_secret("kubernetes.io/tls", data)
    assert m.leaf == ec_pki.leaf.cert and m.intermediates == (ec_pki.intermediate.cert,)
    assert reasons(m) == ["LeafNotFirst"]


def test_leaf_not_first_without_key(ec_pki):
    m = material_from_secret("kubernetes.io/tls", {"tls.crt": b64(ec_pki.intermediate.pem + ec_pki.leaf.pem)})
    assert m.leaf == ec_pki.leaf.cert and reasons(m) == ["LeafNotFirst"]


def test_duplicate_certificate(ec_pki):
    m = material_from_secret("kubernetes.io/tls", {"tls.crt": b64(ec_pki.leaf.pem + ec_pki.intermediate.pem + ec_pki.intermediate.pem + ec_pki.leaf.pem)})
    assert m.intermediates == (ec_pki.intermediate.cert,)
    assert reasons(m) == ["DuplicateCertificate", "DuplicateCertificate"]


# --- malformed Secrets --------------------------------------------------------------------------


def test_missing_tls_crt():
    m = material_from_secret("kubernetes.io/tls", {"tls.key": b64(b"x")})
    assert m.leaf is None and reasons(m) == ["NoCertificate"]


@pytest.mark.parametrize("data", [None, {}, {"tls.crt": ""}, {"tls.crt": None}])
def test_empty(data):
    m = material_from_secret("kubernetes.io/tls", data)
    assert m.leaf is None and "NoCertificate" in reasons(m)


def test_invalid_base64():
    m = material_from_secret("kubernetes.io/tls", {"tls.crt": "not*base64!"})
    assert m.leaf is None and reasons(m) == ["MalformedSecretData"]


def test_garbage_certificate():
    m = material_from_secret("kubernetes.io/tls", {"tls.crt": b64(b"\x00\xff" * 100)})
    assert m.leaf is None and reasons(m) == ["NoCertificate"]
    assert m.problems[0].source == "tls.crt"


def test_wrong_secret_type():
    m = material_from_secret("kubernetes.io/dockerconfigjson", {".dockerconfigjson": b64(b"{}")})
    assert m.leaf is None and reasons(m) == ["WrongSecretType"]


def test_non_string_values_do_not_raise():
    m = material_from_secret("Opaque", {"a.crt": 12, 3: ["x"]})  # type: ignore[dict-item]
    assert m.leaf is None


# --- Opaque layouts -----------------------------------------------------------------------------


def test_opaque_certbot_layout(ec_pki):
    data = {"cert.pem": b64(ec_pki.leaf.pem), "chain.pem": b64(ec_pki.intermediate.pem), "privkey.pem": b64(ec_pki.leaf.key_pem()), "fullchain.pem": b64(ec_pki.chain_pem)}
    m = material_from_secret("Opaque", data)
    assert m.leaf == ec_pki.leaf.cert and m.intermediates == (ec_pki.intermediate.cert,)
    assert m.certificate_source == "fullchain.pem" and m.key_source == "privkey.pem" and m.key_status is KeyStatus.MATCH


def test_opaque_cert_plus_separate_chain(ec_pki):
    data = {"cert.pem": b64(ec_pki.leaf.pem), "chain.pem": b64(ec_pki.intermediate.pem)}
    m = material_from_secret("Opaque", data)
    assert m.intermediates == (ec_pki.intermediate.cert,)


def test_opaque_custom_names_with_ca(ec_pki):
    data = {"server.crt": b64(ec_pki.chain_pem), "server.key": b64(ec_pki.leaf.key_pem()), "ca.pem": b64(ec_pki.root.pem), "config.yaml": b64(b"a: 1")}
    m = material_from_secret("Opaque", data)
    assert m.leaf == ec_pki.leaf.cert and m.ca_certificates == (ec_pki.root.cert,)
    assert m.key_status is KeyStatus.MATCH and m.ca_source == "ca.pem"


def test_opaque_combined_pem(ec_pki):
    m = material_from_secret("Opaque", {"bundle.pem": b64(ec_pki.leaf.key_pem() + ec_pki.chain_pem)})
    assert m.leaf == ec_pki.leaf.cert and m.key_status is KeyStatus.MATCH and m.key_source == "bundle.pem"


def test_opaque_key_named_pem_is_a_key(ec_pki):
    m = material_from_secret("Opaque", {"tls.pem": b64(ec_pki.chain_pem), "key.pem": b64(ec_pki.leaf.key_pem())})
    assert m.key_status is KeyStatus.MATCH


def test_opaque_pkcs12_with_password_key(ec_pki):
    p12 = certgen.pkcs12_bytes(ec_pki.leaf, b"changeit", [ec_pki.intermediate])
    m = material_from_secret("Opaque", {"keystore.p12": b64(p12), "password": b64(b"changeit\n")})
    assert m.leaf == ec_pki.leaf.cert and m.intermediates == (ec_pki.intermediate.cert,)
    assert m.key_status is KeyStatus.MATCH


def test_opaque_pkcs12_locked(ec_pki):
    p12 = certgen.pkcs12_bytes(ec_pki.leaf, b"changeit")
    m = material_from_secret("Opaque", {"keystore.p12": b64(p12)})
    assert m.leaf is None and reasons(m) == ["KeystoreUnreadable", "NoCertificate"]


def test_opaque_without_certificates():
    m = material_from_secret("Opaque", {"username": b64(b"u"), "password": b64(b"p")})
    assert m.leaf is None and reasons(m) == ["NoCertificate"]
    assert "username" in m.problems[0]


@pytest.mark.parametrize(
    ("name", "role"),
    [("tls.crt", "cert"), ("ca.crt", "ca"), ("ca-bundle.pem", "ca"), ("root-ca.pem", "ca"), ("tls.key", "key"), ("privkey.pem", "key"), ("keystore.p12", "keystore"), ("x.pfx", "keystore"), ("chain.pem", "chain"), ("config.yaml", None), ("password", "password")],
)
def test_classify_data_key(name, role):
    assert classify_data_key(name) == role


# --- files and keystores (the CLI's inputs) -----------------------------------------------------


def test_from_bytes_with_key_and_ca(rsa_pki):
    m = material_from_bytes(rsa_pki.chain_pem, rsa_pki.leaf.key_pem("pkcs1"), rsa_pki.root.pem, cert_source="svc.pem")
    assert m.leaf == rsa_pki.leaf.cert and m.key_status is KeyStatus.MATCH and m.ca_certificates == (rsa_pki.root.cert,)


def test_from_der_bytes(ec_pki):
    m = material_from_bytes(ec_pki.leaf.der)
    assert m.leaf == ec_pki.leaf.cert and m.key_status is KeyStatus.MISSING


def test_from_pkcs12(ec_pki):
    data = certgen.pkcs12_bytes(ec_pki.leaf, b"pw", [ec_pki.intermediate])
    m = material_from_pkcs12(data, b"pw")
    assert m.leaf == ec_pki.leaf.cert and m.intermediates == (ec_pki.intermediate.cert,) and m.key_status is KeyStatus.MATCH
    bad = material_from_pkcs12(data, b"wrong")
    assert bad.leaf is None and "KeystoreUnreadable" in reasons(bad)


def test_fingerprints_of_leaf_and_chain(ec_pki):
    from certpolicy.pki.fingerprint import fingerprint

    s = ec_pki.secret()
    m = material_from_secret(s["type"], s["data"])
    assert m.fingerprints == (fingerprint(ec_pki.leaf.cert), fingerprint(ec_pki.intermediate.cert))


# ---- a private key where certificates belong ---------------------------------------------------


@pytest.mark.parametrize("fmt", ["pkcs8", "pkcs1", "openssh"])
def test_private_key_block_in_tls_crt_is_key_material_in_certificate(fmt):
    leaf = certgen.leaf(certgen.root("KeyInCert Root", key_kind="rsa2048"), "kic.example.com", key_kind="rsa2048")
    data = {"tls.crt": b64(leaf.key_pem(fmt) + leaf.pem), "tls.key": b64(leaf.key_pem())}
    m = material_from_secret("kubernetes.io/tls", data)
    [problem] = [p for p in m.problems if p.reason == "KeyMaterialInCertificate"]
    assert problem.source == "tls.crt"
    assert "PRIVATE KEY" not in str(problem)  # names the marker in words, never echoes the block
    assert m.leaf == leaf.cert  # the certificate itself is still read and checked


def test_private_key_block_in_ca_crt_is_flagged_and_tls_key_is_not():
    root = certgen.root("KeyInCA Root")
    leaf = certgen.leaf(root, "kic.example.com")
    clean = material_from_secret("kubernetes.io/tls", certgen.tls_secret(leaf)["data"])
    assert "KeyMaterialInCertificate" not in reasons(clean)
    data = {"tls.crt": b64(leaf.pem), "tls.key": b64(leaf.key_pem()), "ca.crt": b64(root.key_pem() + root.pem)}
    m = material_from_secret("kubernetes.io/tls", data)
    assert [p.source for p in m.problems if p.reason == "KeyMaterialInCertificate"] == ["ca.crt"]


def test_opaque_combined_pem_is_accepted_but_a_key_in_ca_crt_is_not():
    root = certgen.root("Opaque KIC Root")
    leaf = certgen.leaf(root, "kic.example.com")
    combined = material_from_secret("Opaque", {"tls.pem": b64(leaf.key_pem() + leaf.pem)})
    assert "KeyMaterialInCertificate" not in reasons(combined)  # HAProxy-style combined file: by design
    m = material_from_secret("Opaque", {"tls.pem": b64(leaf.pem), "tls.key": b64(leaf.key_pem()),
                                         "ca.crt": b64(root.key_pem() + root.pem)})
    assert "KeyMaterialInCertificate" in reasons(m)


def test_key_material_in_certificate_is_a_critical_finding():
    from certpolicy.policy.findings import REASONS, Severity

    assert REASONS["KeyMaterialInCertificate"].severity is Severity.CRITICAL

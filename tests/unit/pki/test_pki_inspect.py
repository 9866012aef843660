"""CertSummary: what a certificate says, computed once."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509

import certgen
from certpolicy.pki.fingerprint import certificate_fingerprint, fingerprint
from certpolicy.pki.inspect import CertSummary, summarize
from certpolicy.pki.keys import curve_display_name


def test_leaf_summary(ec_pki):
    s = summarize(ec_pki.leaf.cert)
    assert s.fingerprint == fingerprint(ec_pki.leaf.cert)
    assert s.common_name == "svc.example.com" and s.display_name == "svc.example.com"
    assert "CN=svc.example.com" in s.subject and "CN=certgen Intermediate CA" in s.issuer
    assert s.version == 3 and not s.is_ca and s.has_basic_constraints and s.basic_constraints_critical
    assert s.has_eku and s.extended_key_usages == ("serverAuth", "clientAuth")
    assert s.has_san and s.dns_names == ("svc.example.com",) and s.ip_addresses == ()
    assert s.key_algorithm == "EC" and s.key_curve == "P-256" and s.key_size == 256
    assert s.key_description == "EC P-256"
    assert s.signature_hash == "sha256" and s.signature_algorithm == "ecdsa-with-SHA256"
    assert not s.self_issued and not s.self_signed
    assert s.ski and s.aki == summarize(ec_pki.intermediate.cert).ski
    assert s.not_before.tzinfo is not None and s.not_after.utcoffset() == dt.timedelta(0)
    assert "digitalSignature" in s.key_usage
    assert s.extension_error is None


def test_root_summary(rsa_pki):
    s = summarize(rsa_pki.root.cert)
    assert s.is_ca and s.self_issued and s.self_signed
    assert s.key_algorithm == "RSA" and s.key_size == 2048 and s.key_description == "RSA 2048"
    assert "keyCertSign" in s.key_usage
    assert s.aki is None


def test_summary_is_cached_and_frozen(ec_pki):
    a, b = summarize(ec_pki.leaf.cert), summarize(ec_pki.leaf.cert)
    assert a is b
    with pytest.raises(AttributeError):
        a.fingerprint = "x"  # type: ignore[misc]
    # A lazily computed fact cannot be set either (Python 3.11's frozen, slotted dataclass raises
    # TypeError for a name that is not a field, 3.12+ FrozenInstanceError, an AttributeError).
    with pytest.raises((AttributeError, TypeError)):
        a.subject = "x"  # type: ignore[misc]
    assert a.subject == summarize(ec_pki.leaf.cert).subject != "x"


def test_certificate_fingerprint_matches_the_shared_definition(ec_pki):
    for c in (ec_pki.leaf.cert, ec_pki.root.cert):
        assert certificate_fingerprint(c) == fingerprint(c)


def test_unknown_eku_is_dotted():
    oid = x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")
    s = summarize(certgen.leaf(None, "x.example.com", eku=["serverAuth", oid]).cert)
    assert s.extended_key_usages == ("serverAuth", "1.3.6.1.4.1.99999.1")


def test_no_eku_no_san():
    s = summarize(certgen.leaf(None, "x.example.com", eku=None, dns_names=()).cert)
    assert not s.has_eku and s.extended_key_usages == ()
    assert not s.has_san and s.dns_names == ()


def test_ip_and_other_sans():
    s = summarize(
        certgen.leaf(None, "x", dns_names=["a.example.com"], ip_addresses=["10.0.0.1", "fd00::1"], uris=["spiffe://td/ns/x"], emails=["a@example.com"]).cert
    )
    assert s.ip_addresses == ("10.0.0.1", "fd00::1")
    assert s.uris == ("spiffe://td/ns/x",) and s.emails == ("a@example.com",)


def test_v1_and_sha1_quirks():
    root = certgen.root(key_kind="rsa2048")
    v1 = summarize(certgen.leaf(root, "v1.example.com", key_kind="rsa2048", version=1).cert)
    assert v1.version == 1 and not v1.has_san and not v1.has_basic_constraints
    sha1 = summarize(certgen.leaf(root, "sha1.example.com", key_kind="rsa2048", hash="sha1").cert)
    assert sha1.signature_hash == "sha1"


@pytest.mark.parametrize(("kind", "alg", "curve"), [("ed25519", "Ed25519", None), ("secp256k1", "EC", "secp256k1"), ("p521", "EC", "P-521")])
def test_key_kinds(kind, alg, curve):
    s = summarize(certgen.leaf(None, "k.example.com", key_kind=kind, hash=None if kind == "ed25519" else "default").cert)
    assert s.key_algorithm == alg and s.key_curve == curve


def test_curve_names():
    assert curve_display_name("secp256r1") == "P-256"
    assert curve_display_name("secp256k1") == "secp256k1"


def malformed_san_cert() -> x509.Certificate:
    from cryptography.x509.oid import ExtensionOID

    bad = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x05\x82\x09oops")
    return certgen.leaf(None, "a.example.com", dns_names=(), extra_extensions=[(bad, False)]).cert


def test_malformed_extension_is_an_error_not_an_exception():
    s = summarize(malformed_san_cert())
    assert s.extension_error and "cannot be parsed" in s.extension_error
    assert s.dns_names == () and s.fingerprint.startswith("sha256:")


def test_to_dict_is_json_ready(ec_pki):
    import json

    d = summarize(ec_pki.leaf.cert).to_dict()
    json.dumps(d)
    assert d["notAfter"].endswith("Z") and d["key"] == "EC P-256"
    assert d["serial"] == format(ec_pki.leaf.cert.serial_number, "x")  # read from the certificate when asked


def test_summary_type():
    assert CertSummary.__dataclass_params__.frozen  # type: ignore[attr-defined]


def test_every_field_is_set(ec_pki):
    import dataclasses

    s = summarize(certgen.leaf(ec_pki.intermediate, "fields.example.com").cert)
    for f in dataclasses.fields(s):  # the constructor's fields are all set by summarize's fast path
        if f.init:
            getattr(s, f.name)
    assert s.subject and s.issuer and s.common_name == "fields.example.com" and not s.self_issued and not s.self_signed
    for f in dataclasses.fields(s):
        getattr(s, f.name)
    assert s == summarize(s.certificate) and hash(s) == hash(s.fingerprint)


def test_names_are_lazy_but_right(ec_pki):
    c = certgen.leaf(ec_pki.intermediate, "lazy.example.com").cert
    s = summarize(c)
    assert not hasattr(s, "_subject") and not hasattr(s, "_issuer")  # not computed until asked
    assert s.subject == c.subject.rfc4514_string() and s.issuer == c.issuer.rfc4514_string()


def test_sha1_self_signed_root_is_recognised():
    root = certgen.root("SHA-1 Root", key_kind="rsa2048", hash="sha1")
    assert summarize(root.cert).self_signed


def test_a_held_leaf_keeps_no_decoded_name():
    """cryptography keeps a decoded Name on the certificate once ``subject`` or ``issuer`` is read
    (~0.8 KB of Python objects); the summary's names, asked of every leaf by the renewal guard,
    are read from a throwaway copy, so only their strings stay. Counted with the garbage collector:
    before the change, 20 held leaves kept 40 Names alive."""
    import gc

    from certpolicy.pki.secretdata import material_from_secret

    ca = certgen.root("held names CA")
    materials = [material_from_secret(s["type"], s["data"])
                 for s in (certgen.tls_secret(certgen.leaf(ca, f"held-{i}.test")) for i in range(20))]
    gc.collect()
    before = sum(1 for o in gc.get_objects() if isinstance(o, x509.Name))
    for m in materials:
        s = summarize(m.leaf)
        assert "CN=held names CA" in s.issuer and s.common_name == f"held-{materials.index(m)}.test"
        assert s.subject
    gc.collect()
    assert sum(1 for o in gc.get_objects() if isinstance(o, x509.Name)) == before

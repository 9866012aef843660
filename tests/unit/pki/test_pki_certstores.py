"""Stores by content (PEM, DER, PKCS#12, JKS, JCEKS), key patterns, passwords from sibling keys."""

from __future__ import annotations

import pytest

import certgen
from certpolicy.pki.certstores import detect_format, read_certstore, sibling_password, truststore_keys
from certpolicy.pki.inspect import certificate_fingerprint
from certpolicy.pki.javakeystore import encode_jks_truststore
from certpolicy.pki.secretdata import KeyStatus, classify_data_key, material_from_secret

PKI = certgen.golden_pki("p256")  # the PKI of the golden Java stores (tests/data/java)
OTHER = certgen.pki("rsa2048")
PW = certgen.GOLDEN_PASSWORD


def fps(certs):
    return [certificate_fingerprint(c) for c in certs]


STORES = {
    "PEM": lambda: certgen.pem(PKI.root, PKI.intermediate),
    "DER": lambda: PKI.root.der,
    "PKCS12": lambda: certgen.pkcs12_bytes(PKI.leaf, PW.encode(), [PKI.intermediate]),
    "JKS": lambda: certgen.golden_store("p256/leaf.jks"),
    "JCEKS": lambda: certgen.golden_store("p256/leaf.jceks"),
}


@pytest.mark.parametrize("fmt", STORES)
def test_format_is_recognised_by_content(fmt):
    data = STORES[fmt]()
    assert detect_format(data) == fmt
    store = read_certstore(data, PW.encode(), source="x")
    assert store.format == fmt and store.certificates and not store.problems


@pytest.mark.parametrize("fmt", ["PKCS12", "JKS", "JCEKS"])
def test_keystore_with_wrong_password_is_unreadable_and_names_no_password(fmt):
    store = read_certstore(STORES[fmt](), b"wrong-pass-123", source="keystore")
    assert store.unreadable
    (p,) = store.problems
    assert p.reason == "KeystoreUnreadable" and p.source == "keystore"
    assert "wrong-pass-123" not in str(p) and PW not in str(p)


def test_truststore_keys_follow_the_patterns():
    keys = ["tls.crt", "tls.key", "ca.crt", "truststore.jks", "truststore", "cacerts", "peer-truststore.p12",
            "keystore.jks", "password", "truststore.jks.password", "notes.txt", "root-ca.pem"]
    assert truststore_keys(keys) == ("ca.crt", "cacerts", "peer-truststore.p12", "root-ca.pem", "truststore",
                                     "truststore.jks")


@pytest.mark.parametrize("name, sibling", [
    ("keystore.jks", "keystore.jks.password"), ("keystore.jks", "keystore-password"), ("keystore.p12", "keystorePassword"),
    ("truststore.jks", "truststore.password"), ("store.pfx", "password"), ("keystore", "storepass"),
])
def test_sibling_password(name, sibling):
    data = {name: b"x", sibling: b" pw\n", "unrelated": b"y"}
    assert sibling_password(name, data) == (sibling, b"pw")


def test_sibling_password_absent():
    assert sibling_password("keystore.jks", {"keystore.jks": b"x"}) == (None, None)


@pytest.mark.parametrize("name, role", [
    ("keystore.jks", "keystore"), ("app.jceks", "keystore"), ("keystore", "keystore"), ("server.p12", "keystore"),
    ("truststore.jks", "truststore"), ("truststore", "truststore"), ("cacerts", "truststore"),
    ("keystore-password", "password"), ("truststorePassword", "password"), ("cert.der", "cert"), ("tls.cer", "cert"),
])
def test_data_key_roles(name, role):
    assert classify_data_key(name) == role


# keytool refuses to write a JKS/JCEKS key entry with an empty password: "empty" is PKCS#12 only.
@pytest.mark.parametrize("fmt, source", [(f, s) for f in ("PKCS12", "JKS", "JCEKS") for s in ("sibling", "reference")]
                         + [("PKCS12", "empty")])
def test_opaque_keystore_password_sources(fmt, source):
    pw = b"" if source == "empty" else PW.encode()
    store = (certgen.pkcs12_bytes(PKI.leaf, pw or None, [PKI.intermediate]) if fmt == "PKCS12"
             else STORES[fmt]())
    data = {"keystore": store, "truststore.jks": encode_jks_truststore([("root", PKI.root.cert)], PW)}
    if source == "sibling":
        data["keystore.password"] = PW.encode() + b"\n"
    m = material_from_secret("Opaque", data, password=PW.encode() if source == "reference" else None)
    assert m.key_status is KeyStatus.MATCH, m.key_detail
    assert fps(m.certificates) == fps([PKI.leaf.cert, PKI.intermediate.cert])
    assert not m.problems
    assert m.ca_certificates == ()  # a truststore is checked as a store of its own, not as ca.crt


def test_opaque_jks_without_password_reads_the_chain_and_reports_the_key_unchecked():
    m = material_from_secret("Opaque", {"keystore.jks": STORES["JKS"]()})
    assert m.key_status is KeyStatus.ENCRYPTED and "no password" in m.key_detail
    assert fps(m.certificates) == fps([PKI.leaf.cert, PKI.intermediate.cert])


def test_opaque_keystore_wrong_sibling_password():
    m = material_from_secret("Opaque", {"keystore.jks": STORES["JKS"](),
                                        "keystore.jks.password": b"guess-123"})
    assert m.leaf is None
    assert [p.reason for p in m.problems] == ["KeystoreUnreadable", "NoCertificate"]
    assert all("guess-123" not in str(p) for p in m.problems)


@pytest.mark.parametrize("encode", [lambda i: i.pem, lambda i: i.der], ids=["pem", "der"])
def test_opaque_certificate_in_pem_or_der(encode):
    m = material_from_secret("Opaque", {"server.cer": encode(PKI.leaf)})
    assert m.leaf is not None and certificate_fingerprint(m.leaf) == certificate_fingerprint(PKI.leaf.cert)

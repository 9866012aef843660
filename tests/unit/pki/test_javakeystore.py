"""JKS and JCEKS: stores written by the JDK's keytool are read; what we write, keytool reads."""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives import serialization

import certgen
from certpolicy.pki.inspect import certificate_fingerprint
from certpolicy.pki.javakeystore import encode_jks_truststore, keystore_format, load_java_keystore
from certpolicy.pki.truststore import build_jks_truststore as build_truststore_jks
from certpolicy.pki.truststore import read_jks_truststore, truststore_matches

PKI = certgen.pki()
RSA = certgen.pki("rsa2048")
PW = "s3cret-pässword"


def _pub(key):
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("storetype", ["JKS", "JCEKS"])
@pytest.mark.parametrize("pki", [PKI, RSA], ids=["p256", "rsa2048"])
def test_keytool_keystore_is_read_with_its_key(storetype, pki):
    data = certgen.java_keystore(pki.leaf, "changeit", (pki.intermediate,), storetype)
    assert keystore_format(data) == storetype
    ks = load_java_keystore(data, b"changeit")
    assert ks.problem is None and ks.verified and ks.format == storetype
    (entry,) = ks.entries
    assert entry.kind == "privateKey" and entry.alias == "leaf"
    assert [certificate_fingerprint(c) for c in entry.certificates] == [
        certificate_fingerprint(pki.leaf.cert), certificate_fingerprint(pki.intermediate.cert)]
    assert entry.key is not None and _pub(entry.key) == _pub(pki.leaf.key)


@pytest.mark.parametrize("storetype", ["JKS", "JCEKS"])
def test_wrong_password_is_unreadable_and_returns_nothing(storetype):
    data = certgen.java_keystore(PKI.leaf, "changeit", (), storetype)
    ks = load_java_keystore(data, b"not-the-password")
    assert ks.problem == "KeystoreUnreadable" and not ks.entries
    assert "password is wrong" in ks.detail and "not-the-password" not in ks.detail


def test_no_password_reads_certificates_unverified_and_keeps_the_key_encrypted():
    data = certgen.java_keystore(PKI.leaf, "changeit")
    ks = load_java_keystore(data, None)
    assert ks.problem is None and not ks.verified
    (entry,) = ks.entries
    assert entry.key is None and entry.key_problem == "no password was given"
    assert certificate_fingerprint(entry.certificates[0]) == certificate_fingerprint(PKI.leaf.cert)


def test_truststore_from_keytool():
    certs = (PKI.root.cert, RSA.root.cert)
    data = certgen.java_truststore(certs, "changeit")
    ks = load_java_keystore(data, b"changeit")
    assert ks.verified and {e.alias for e in ks.entries} == {"ca0", "ca1"}
    assert {certificate_fingerprint(c) for c in ks.certificates} == {certificate_fingerprint(c) for c in certs}


def test_jceks_secret_key_entry_stops_reading_and_says_so():
    # keytool writes entries in hash order; build a store with only a secret key after a cert.
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "s.jceks"
        subprocess.run(["keytool", "-genseckey", "-alias", "aes", "-keyalg", "AES", "-keysize", "128", "-keystore", str(f),
                        "-storetype", "JCEKS", "-storepass", "changeit", "-keypass", "changeit"], check=True,
                       capture_output=True, timeout=120)
        data = f.read_bytes()
    ks = load_java_keystore(data, b"changeit")
    assert ks.problem == "KeystorePartlyRead" and "secret key" in ks.detail and ks.verified


def test_our_jks_truststore_is_listed_by_keytool_and_read_back():
    data = build_truststore_jks([PKI.root.cert, RSA.root.cert], "HL7-CA", PW, certificate_fingerprint(RSA.root.cert))
    listing = certgen.keytool_list(data, PW)
    assert "Your keystore contains 2 entries" in listing
    assert "Alias name: hl7-ca\n" in listing and "trustedCertEntry" in listing
    primary = certificate_fingerprint(RSA.root.cert).removeprefix("sha256:").upper()
    assert ":".join(primary[i:i + 2] for i in range(0, 64, 2)) in listing
    assert read_jks_truststore(data, PW) is not None
    primary_fp = certificate_fingerprint(RSA.root.cert)
    assert truststore_matches(data, PW, [RSA.root.cert, PKI.root.cert], "hl7-ca", primary_fp, jks=True)
    assert not truststore_matches(data, "other", [RSA.root.cert, PKI.root.cert], "hl7-ca", primary_fp, jks=True)
    assert not truststore_matches(data, PW, [RSA.root.cert], "hl7-ca", jks=True)
    assert not truststore_matches(data, PW, [RSA.root.cert, PKI.root.cert], "hl7-ca", primary_fp)  # not PKCS#12
    # Deterministic: the same content is the same bytes (no rewrite, no pod restart).
    assert data == build_truststore_jks([RSA.root.cert, PKI.root.cert], "hl7-ca", PW, certificate_fingerprint(RSA.root.cert))


def test_keytool_refuses_our_store_with_another_password():
    import subprocess

    data = encode_jks_truststore([("a", PKI.root.cert)], "right-password")
    with pytest.raises(subprocess.CalledProcessError) as e:
        certgen.keytool_list(data, "wrong-password")
    assert "password was incorrect" in (e.value.stderr or "") + (e.value.stdout or "")


def test_empty_password_truststore_opens_with_and_without_storepass():
    data = encode_jks_truststore([("a", PKI.root.cert)], None)
    assert "Your keystore contains 1 entry" in certgen.keytool_list(data, "")
    assert load_java_keystore(data, None).verified


@pytest.mark.parametrize("mangle, password, detail", [
    (lambda d: d[:30], b"changeit", "truncated"),
    (lambda d: d[:4] + struct.pack(">I", 7) + d[8:], None, "version 7"),
    (lambda d: d[:4] + struct.pack(">I", 7) + d[8:], b"changeit", "integrity"),
    (lambda d: d[:-21] + bytes([d[-21] ^ 1]) + d[-20:], b"changeit", "integrity"),
    (lambda d: d[:12] + b"\x00\x00\x00\x09" + d[16:], None, "unknown entry type 9"),
    (lambda d: b"\x00\x00\x00\x00" + d[4:], b"changeit", "not a JKS"),
])
def test_damaged_stores_are_unreadable_with_a_reason(mangle, password, detail):
    data = encode_jks_truststore([("a", PKI.root.cert)], "changeit")
    ks = load_java_keystore(mangle(data), password)
    assert ks.problem == "KeystoreUnreadable" and detail in ks.detail and not ks.entries


def test_unverified_damage_is_reported_not_raised():
    data = encode_jks_truststore([("a", PKI.root.cert)], "changeit")
    body = bytearray(data)
    body[40] ^= 0xFF  # inside the certificate; no password given, so the check cannot catch it
    ks = load_java_keystore(bytes(body), None)
    assert ks.problem == "KeystoreUnreadable" or ks.entries


def test_duplicate_alias_is_refused_on_write():
    with pytest.raises(ValueError, match="used twice"):
        encode_jks_truststore([("a", PKI.root.cert), ("A", RSA.root.cert)])

"""JKS and JCEKS: stores written by the JDK's keytool are read; what we write, keytool reads.

The read tests use the golden stores keytool wrote (tests/data/java, no Java at run time); the
tests that run keytool on what we write carry ``certgen.needs_keytool``.
"""

from __future__ import annotations

import struct

import pytest
from cryptography.hazmat.primitives import serialization

import certgen
from certpolicy.pki.inspect import certificate_fingerprint
from certpolicy.pki.javakeystore import (
    decode_modified_utf8,
    encode_jks_truststore,
    encode_modified_utf8,
    keystore_format,
    load_java_keystore,
)
from certpolicy.pki.truststore import build_jks_truststore as build_truststore_jks
from certpolicy.pki.truststore import read_jks_truststore, truststore_matches

PKI = certgen.golden_pki("p256")
RSA = certgen.golden_pki("rsa2048")
GOLDEN_PW = certgen.GOLDEN_PASSWORD.encode()
PW = "s3cret-pässword"
#: An alias outside the BMP, as tests/data/java/non-bmp-alias.jks holds it.
NON_BMP = "ca-\U0001F600-\u00e4"


def _pub(key):
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("storetype", ["JKS", "JCEKS"])
@pytest.mark.parametrize("kind", ["p256", "rsa2048"])
def test_keytool_keystore_is_read_with_its_key(storetype, kind):
    pki = certgen.golden_pki(kind)
    data = certgen.golden_store(f"{kind}/leaf.{storetype.lower()}")
    assert keystore_format(data) == storetype
    ks = load_java_keystore(data, GOLDEN_PW)
    assert ks.problem is None and ks.verified and ks.format == storetype
    (entry,) = ks.entries
    assert entry.kind == "privateKey" and entry.alias == "leaf"
    assert [certificate_fingerprint(c) for c in entry.certificates] == [
        certificate_fingerprint(pki.leaf.cert), certificate_fingerprint(pki.intermediate.cert)]
    assert entry.key is not None and _pub(entry.key) == _pub(pki.leaf.key) == _pub(pki.leaf.cert)


@pytest.mark.parametrize("storetype", ["JKS", "JCEKS"])
def test_wrong_password_is_unreadable_and_returns_nothing(storetype):
    data = certgen.golden_store(f"p256/leaf.{storetype.lower()}")
    ks = load_java_keystore(data, b"not-the-password")
    assert ks.problem == "KeystoreUnreadable" and not ks.entries
    assert "password is wrong" in ks.detail and "not-the-password" not in ks.detail


def test_no_password_reads_certificates_unverified_and_keeps_the_key_encrypted():
    ks = load_java_keystore(certgen.golden_store("p256/leaf.jks"), None)
    assert ks.problem is None and not ks.verified
    (entry,) = ks.entries
    assert entry.key is None and entry.key_problem == "no password was given"
    assert certificate_fingerprint(entry.certificates[0]) == certificate_fingerprint(PKI.leaf.cert)


def test_truststore_from_keytool():
    certs = (PKI.root.cert, RSA.root.cert)
    ks = load_java_keystore(certgen.golden_store("truststore.jks"), GOLDEN_PW)
    assert ks.verified and ks.problem is None
    assert {(e.alias, e.kind, certificate_fingerprint(e.certificates[0])) for e in ks.entries} == {
        ("ca0", "trustedCert", certificate_fingerprint(certs[0])), ("ca1", "trustedCert", certificate_fingerprint(certs[1]))}


def test_jceks_secret_key_entry_stops_reading_and_says_so():
    ks = load_java_keystore(certgen.golden_store("secretkey.jceks"), GOLDEN_PW)
    assert ks.problem == "KeystorePartlyRead" and "secret key" in ks.detail and ks.verified
    assert "'aes'" in ks.detail and not ks.entries


def test_alias_outside_the_bmp_written_by_keytool_is_read():
    """keytool writes U+1F600 as a surrogate pair, 3 bytes each (modified UTF-8)."""
    data = certgen.golden_store("non-bmp-alias.jks")
    ks = load_java_keystore(data, GOLDEN_PW)
    assert ks.problem is None and ks.verified
    (entry,) = ks.entries
    assert entry.alias == NON_BMP
    assert certificate_fingerprint(entry.certificates[0]) == certificate_fingerprint(PKI.root.cert)
    # What we write for that alias is byte for byte what keytool wrote (length prefix included).
    encoded = encode_modified_utf8(NON_BMP)
    assert struct.pack(">H", len(encoded)) + encoded == data[16:18 + len(encoded)]
    assert b"\xed\xa0\xbd\xed\xb8\x80" in encoded and "\U0001F600".encode() not in encoded


@pytest.mark.parametrize("text, raw", [
    ("", b""), ("leaf", b"leaf"), ("\u00e4", b"\xc3\xa4"), ("a\x00b", b"a\xc0\x80b"),
    ("\U0001F600", b"\xed\xa0\xbd\xed\xb8\x80"), ("\uffff", b"\xef\xbf\xbf"),
])
def test_modified_utf8_round_trips(text, raw):
    assert encode_modified_utf8(text) == raw and decode_modified_utf8(raw) == text


@pytest.mark.parametrize("raw", [b"\xff", b"\xed\xa0\xbd", b"\xf0\x9f\x98\x80"[:2], b"\xc0"])
def test_malformed_modified_utf8_is_replaced_not_raised(raw):
    assert "\ufffd" in decode_modified_utf8(raw)


@certgen.needs_keytool
def test_our_non_bmp_alias_is_listed_by_keytool():
    data = encode_jks_truststore([(NON_BMP, PKI.root.cert), ("nul\x00in-alias", RSA.root.cert)], PW)
    listing = certgen.keytool_list(data, PW)
    assert "Your keystore contains 2 entries" in listing
    assert f"Alias name: {NON_BMP}\n" in listing and "Alias name: nul\x00in-alias\n" in listing
    assert {e.alias for e in load_java_keystore(data, PW.encode()).entries} == {NON_BMP, "nul\x00in-alias"}


@certgen.needs_keytool
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


@certgen.needs_keytool
def test_keytool_refuses_our_store_with_another_password():
    import subprocess

    data = encode_jks_truststore([("a", PKI.root.cert)], "right-password")
    with pytest.raises(subprocess.CalledProcessError) as e:
        certgen.keytool_list(data, "wrong-password")
    assert "password was incorrect" in (e.value.stderr or "") + (e.value.stdout or "")


@certgen.needs_keytool
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
    """Without a password the integrity check cannot catch damage: a certificate that no longer
    parses makes the store unreadable; one that still parses is returned, unverified."""
    data = encode_jks_truststore([("a", PKI.root.cert)], "changeit")
    der_at = 12 + 4 + 3 + 8 + 7 + 4  # header, tag, alias "a", date, "X.509", DER length
    assert data[der_at] == 0x30
    length_byte = bytearray(data)
    length_byte[der_at + 2] ^= 0xFF  # the certificate's DER length
    ks = load_java_keystore(bytes(length_byte), None)
    assert ks.problem == "KeystoreUnreadable" and "invalid X.509 certificate" in ks.detail and not ks.entries
    signature_byte = bytearray(data)
    signature_byte[-21] ^= 0x01  # the last byte of the certificate: its signature
    ks = load_java_keystore(bytes(signature_byte), None)
    assert ks.problem is None and not ks.verified
    (entry,) = ks.entries
    assert certificate_fingerprint(entry.certificates[0]) != certificate_fingerprint(PKI.root.cert)


def test_duplicate_alias_is_refused_on_write():
    with pytest.raises(ValueError, match="used twice"):
        encode_jks_truststore([("a", PKI.root.cert), ("A", RSA.root.cert)])

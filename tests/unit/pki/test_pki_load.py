"""Loading certificates, keys and keystores from the bytes people actually store."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

import certgen
from certpolicy.pki.fingerprint import fingerprint, known_fingerprint
from certpolicy.pki.load import (
    MAX_CERTIFICATES,
    MAX_INPUT_BYTES,
    LoadProblem,
    load_certificates,
    load_pkcs12,
    load_private_key,
)


def reasons(load) -> list[str]:
    return [p.reason for p in load.problems]


# --- certificates: good input in its many shapes ------------------------------------------------


def test_pem_chain_in_order(ec_pki):
    loaded = load_certificates(ec_pki.chain_pem)
    assert loaded.certificates == (ec_pki.leaf.cert, ec_pki.intermediate.cert)
    assert loaded.problems == ()


def test_pem_with_text_around_and_crlf(ec_pki):
    data = b"subject=CN = svc\r\nissuer=whatever\r\n" + ec_pki.leaf.pem.replace(b"\n", b"\r\n") + b"\r\n# trailing comment\r\n" + ec_pki.intermediate.pem
    loaded = load_certificates(data)
    assert loaded.certificates == (ec_pki.leaf.cert, ec_pki.intermediate.cert)
    assert loaded.problems == ()


def test_pem_rewrapped_on_one_line(ec_pki):
    body = b"".join(ec_pki.leaf.pem.splitlines()[1:-1])
    data = b"-----BEGIN CERTIFICATE----- " + body + b" -----END CERTIFICATE-----"
    assert load_certificates(data).certificates == (ec_pki.leaf.cert,)


def test_trusted_certificate_block(ec_pki):
    # OpenSSL's "TRUSTED CERTIFICATE": the certificate followed by its X509_CERT_AUX trust settings.
    aux = bytes.fromhex("300c300a06082b06010505070301")  # SEQUENCE { trust: SEQUENCE { serverAuth } }
    der = ec_pki.root.der + aux
    b64 = base64.encodebytes(der)
    data = b"-----BEGIN TRUSTED CERTIFICATE-----\n" + b64 + b"-----END TRUSTED CERTIFICATE-----\n"
    loaded = load_certificates(data)
    assert loaded.certificates == (ec_pki.root.cert,)
    assert loaded.problems == ()


def test_der_single(ec_pki):
    assert load_certificates(ec_pki.leaf.der).certificates == (ec_pki.leaf.cert,)


def test_der_concatenated(ec_pki):
    loaded = load_certificates(ec_pki.leaf.der + ec_pki.intermediate.der)
    assert loaded.certificates == (ec_pki.leaf.cert, ec_pki.intermediate.cert)


def test_pkcs7_pem_and_der(ec_pki):
    certs = [ec_pki.leaf.cert, ec_pki.intermediate.cert]
    pem = pkcs7.serialize_certificates(certs, serialization.Encoding.PEM)
    der = pkcs7.serialize_certificates(certs, serialization.Encoding.DER)
    assert set(load_certificates(pem).certificates) == set(certs)
    assert set(load_certificates(der).certificates) == set(certs)


def test_str_input_accepted(ec_pki):
    assert load_certificates(ec_pki.leaf.pem.decode()).certificates == (ec_pki.leaf.cert,)


def test_key_blocks_next_to_certificates_are_quiet(ec_pki):
    loaded = load_certificates(ec_pki.leaf.pem + ec_pki.leaf.key_pem())
    assert loaded.certificates == (ec_pki.leaf.cert,)
    assert loaded.problems == ()


def test_same_certificate_is_parsed_once(ec_pki):
    a = load_certificates(ec_pki.leaf.pem).certificates[0]
    b = load_certificates(ec_pki.leaf.der).certificates[0]
    assert a is b
    assert known_fingerprint(a) == fingerprint(a)


def test_known_fingerprints_are_kept_per_object_not_per_content(ec_pki):
    """Issue 28: looking a certificate object up by content made cryptography hash its whole
    parsed structure on every lookup. Keyed by identity, an equal certificate in another object is
    not "known" (it is fingerprinted once more, to the same value)."""
    from cryptography import x509

    from certpolicy.pki.fingerprint import certificate_fingerprint

    a = load_certificates(ec_pki.leaf.pem).certificates[0]
    other = x509.load_der_x509_certificate(ec_pki.leaf.der)
    assert other == a and other is not a
    assert known_fingerprint(a) == fingerprint(a)
    assert known_fingerprint(other) is None
    assert certificate_fingerprint(other) == fingerprint(a) == known_fingerprint(other)


# --- certificates: bad input --------------------------------------------------------------------


@pytest.mark.parametrize("data", [b"", b"   \n\t ", None, 42])
def test_empty_or_wrong_type(data):
    loaded = load_certificates(data)
    assert loaded.certificates == ()
    assert reasons(loaded) == ["NoCertificate"]


def test_garbage_text():
    loaded = load_certificates(b"this is not a certificate, it is a shopping list")
    assert loaded.certificates == ()
    assert reasons(loaded) == ["NoCertificate"]


def test_binary_noise():
    loaded = load_certificates(bytes(range(256)) * 10)
    assert loaded.certificates == ()
    assert reasons(loaded) == ["NoCertificate"]


def test_der_noise_starting_with_sequence_tag():
    loaded = load_certificates(b"\x30\x82\x01\x00" + b"\x00" * 300)
    assert loaded.certificates == ()
    assert reasons(loaded) == ["MalformedCertificate"]


def test_truncated_pem(ec_pki):
    data = ec_pki.leaf.pem[: len(ec_pki.leaf.pem) // 2]
    loaded = load_certificates(data)
    assert loaded.certificates == ()
    assert reasons(loaded) == ["MalformedCertificate"]
    assert "truncated" in loaded.problems[0]


def test_truncated_second_block_keeps_first(ec_pki):
    data = ec_pki.leaf.pem + ec_pki.intermediate.pem[:200]
    loaded = load_certificates(data)
    assert loaded.certificates == (ec_pki.leaf.cert,)
    assert reasons(loaded) == ["MalformedCertificate"]


def test_bad_base64_in_block(ec_pki):
    lines = ec_pki.leaf.pem.splitlines()
    lines[2] = b"!!!!" + lines[2][4:]
    loaded = load_certificates(b"\n".join(lines))
    assert loaded.certificates == ()
    assert reasons(loaded) == ["MalformedCertificate"]
    assert "PEM block 1" in loaded.problems[0]


def test_valid_base64_that_is_not_a_certificate():
    data = b"-----BEGIN CERTIFICATE-----\n" + base64.encodebytes(b"\x30\x03\x02\x01\x01") + b"-----END CERTIFICATE-----\n"
    loaded = load_certificates(data)
    assert reasons(loaded) == ["MalformedCertificate"]


def test_mismatched_end_label(ec_pki):
    data = ec_pki.leaf.pem.replace(b"END CERTIFICATE", b"END PRIVATE KEY")
    loaded = load_certificates(data)
    assert loaded.certificates == ()
    assert "MalformedCertificate" in reasons(loaded)


def test_csr_is_an_unexpected_block(ec_pki):
    data = ec_pki.leaf.pem + b"-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"
    loaded = load_certificates(data)
    assert loaded.certificates == (ec_pki.leaf.cert,)
    assert reasons(loaded) == ["UnexpectedPEMBlock"]


def test_only_a_key_is_no_certificate(ec_pki):
    loaded = load_certificates(ec_pki.leaf.key_pem())
    assert loaded.certificates == ()
    assert reasons(loaded) == ["NoCertificate"]


def test_double_base64_encoded_pem(ec_pki):
    data = base64.b64encode(ec_pki.chain_pem)
    loaded = load_certificates(data)
    assert loaded.certificates == (ec_pki.leaf.cert, ec_pki.intermediate.cert)
    assert reasons(loaded) == ["DoubleEncoded"]


def test_huge_input_is_capped_and_fast(ec_pki):
    data = ec_pki.leaf.pem + b"A" * (MAX_INPUT_BYTES + 10)
    start = time.perf_counter()
    loaded = load_certificates(data)
    assert time.perf_counter() - start < 2
    assert loaded.certificates == (ec_pki.leaf.cert,)
    assert "InputTooLarge" in reasons(loaded)


def test_many_unterminated_begin_lines_stay_linear():
    data = b"-----BEGIN CERTIFICATE-----\n" * 150_000  # ~4 MB of openings, no END
    start = time.perf_counter()
    loaded = load_certificates(data)
    assert time.perf_counter() - start < 5
    assert loaded.certificates == ()
    assert len(loaded.problems) <= 25  # capped, with a "... and N more"


def test_too_many_certificates(ec_pki, monkeypatch):
    from certpolicy.pki import load

    assert MAX_CERTIFICATES >= 10_000  # far above real bundles (a 1 MiB ConfigMap holds ~2,300)
    monkeypatch.setattr(load, "MAX_CERTIFICATES", 50)
    loaded = load_certificates(ec_pki.leaf.pem * 55)
    assert len(loaded.certificates) == 50
    assert "TooManyCertificates" in reasons(loaded)


def test_a_bundle_of_1700_cas_is_read_in_full():
    _key, cas = certgen.many_cas(1700)
    loaded = load_certificates(b"".join(certgen.pem(c) for c in cas))
    assert len(loaded.certificates) == 1700 and loaded.problems == ()


def test_problem_is_a_string_with_a_reason():
    p = LoadProblem("NoCertificate", "empty", "tls.crt")
    assert isinstance(p, str) and p == "tls.crt: empty"
    assert p.reason == "NoCertificate" and p.source == "tls.crt"
    assert p.with_source("x").reason == "NoCertificate"


# --- private keys -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "fmt"),
    [("p256", "pkcs8"), ("p256", "sec1"), ("p384", "sec1"), ("rsa2048", "pkcs8"), ("rsa2048", "pkcs1"), ("ed25519", "pkcs8")],
)
def test_key_formats(kind, fmt):
    k = certgen.key(kind)
    loaded = load_private_key(certgen.key_pem(k, fmt))
    assert loaded.ok and loaded.problem is None
    assert loaded.key.public_key() == k.public_key()


def test_key_der():
    k = certgen.key("p256")
    der = k.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    assert load_private_key(der).key.public_key() == k.public_key()


def test_key_with_crlf_and_text():
    k = certgen.key("rsa2048")
    data = b"Bag Attributes\r\n" + certgen.key_pem(k, "pkcs1").replace(b"\n", b"\r\n")
    assert load_private_key(data).ok


@pytest.mark.parametrize("fmt", ["pkcs8", "pkcs1"])
def test_encrypted_key(fmt):
    k = certgen.key("rsa2048")
    data = certgen.key_pem(k, fmt, password=b"s3cret")
    no_pw = load_private_key(data)
    assert no_pw.problem == "EncryptedKey" and no_pw.encrypted and no_pw.key is None
    wrong = load_private_key(data, b"wrong")
    assert wrong.problem == "EncryptedKey"
    right = load_private_key(data, b"s3cret")
    assert right.ok and right.key.public_key() == k.public_key()


def test_password_given_for_unencrypted_key_is_ignored():
    k = certgen.key("p256")
    assert load_private_key(certgen.key_pem(k), b"unneeded").ok


def test_openssh_key_is_unsupported():
    k = certgen.key("ed25519")
    loaded = load_private_key(certgen.key_pem(k, "openssh"))
    assert loaded.problem == "UnsupportedKey"


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"", "NoPrivateKey"),
        (b"garbage", "MalformedKey"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "MalformedKey"),
        (b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "NoPrivateKey"),
        (b"-----BEGIN PRIVATE KEY-----\nMIIB", "MalformedKey"),
        (b"\x30\x82\x01\x00garbage", "MalformedKey"),
    ],
)
def test_bad_keys(data, problem):
    loaded = load_private_key(data)
    assert loaded.problem == problem and loaded.key is None


def test_key_repr_never_shows_material():
    k = certgen.key("p256")
    loaded = load_private_key(certgen.key_pem(k))
    text = repr(loaded)
    assert "key=" not in text
    body = certgen.key_pem(k).splitlines()[1].decode()
    assert body not in text


# --- PKCS#12 ------------------------------------------------------------------------------------


def test_pkcs12_with_password(ec_pki):
    data = certgen.pkcs12_bytes(ec_pki.leaf, b"changeit", [ec_pki.intermediate])
    loaded = load_pkcs12(data, b"changeit")
    assert loaded.problem is None
    assert loaded.certificate == ec_pki.leaf.cert
    assert loaded.additional_certificates == (ec_pki.intermediate.cert,)
    assert loaded.key.public_key() == ec_pki.leaf.key.public_key()


def test_pkcs12_without_password(ec_pki):
    data = certgen.pkcs12_bytes(ec_pki.leaf, None)
    assert load_pkcs12(data).certificate == ec_pki.leaf.cert


def test_pkcs12_wrong_or_missing_password(ec_pki):
    data = certgen.pkcs12_bytes(ec_pki.leaf, b"changeit")
    assert load_pkcs12(data, b"nope").problem == "KeystoreUnreadable"
    assert load_pkcs12(data).problem == "EncryptedKey"


@pytest.mark.parametrize("data", [b"", b"garbage", b"\x30\x03\x02\x01\x03", None])
def test_pkcs12_garbage(data):
    loaded = load_pkcs12(data, b"x")
    assert loaded.problem is not None and loaded.certificate is None


def test_fingerprints_come_with_the_certificates(ec_pki):
    for data in (ec_pki.chain_pem, ec_pki.leaf.der + ec_pki.intermediate.der, b"junk\n" + ec_pki.chain_pem + ec_pki.leaf.key_pem()):
        loaded = load_certificates(data)
        assert loaded.fingerprints == tuple(fingerprint(c) for c in loaded.certificates)

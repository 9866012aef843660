"""Fuzzing the loaders: no input may raise out of them."""

from __future__ import annotations

import base64
import binascii
import re

from hypothesis import given
from hypothesis import strategies as st

import certgen
from certpolicy.pki.load import (
    CertificateLoad,
    KeyLoad,
    _load_pem_fast,
    load_certificates,
    load_pkcs12,
    load_private_key,
    parse_der,
)

_PKI = certgen.pki()
CHAIN = _PKI.chain_pem
KEY = _PKI.leaf.key_pem()
KEY_ENC = _PKI.leaf.key_pem(password=b"pw")
DER = _PKI.leaf.der
P12 = certgen.pkcs12_bytes(_PKI.leaf, b"pw", [_PKI.intermediate])

MARKERS = [
    b"-----BEGIN CERTIFICATE-----",
    b"-----END CERTIFICATE-----",
    b"-----BEGIN TRUSTED CERTIFICATE-----",
    b"-----END TRUSTED CERTIFICATE-----",
    b"-----BEGIN PKCS7-----",
    b"-----END PKCS7-----",
    b"-----BEGIN PRIVATE KEY-----",
    b"-----END PRIVATE KEY-----",
    b"-----BEGIN RSA PRIVATE KEY-----",
    b"Proc-Type: 4,ENCRYPTED",
    b"-----BEGIN",
    b"-----END ",
    b"\r\n",
    b"\n",
    b"=",
    b"\x30\x82",
    b"\x30\x80",
    b"\x00",
]


@st.composite
def mutated(draw, base: bytes) -> bytes:
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 4))):
        op = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "dup"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if op == "truncate":
            del data[i:]
        elif op == "flip":
            data[i] ^= draw(st.integers(1, 255))
        elif op == "insert":
            data[i:i] = draw(st.one_of(st.sampled_from(MARKERS), st.binary(max_size=16)))
        elif op == "delete":
            del data[i : i + draw(st.integers(1, 64))]
        else:
            data += data[i:]
    return bytes(data)


pem_soup = st.lists(
    st.one_of(st.sampled_from(MARKERS), st.binary(max_size=40), st.text(alphabet="ABCDEFabcdef0123456789+/=\n", max_size=80).map(str.encode)),
    max_size=30,
).map(b"".join)

anything = st.one_of(
    st.binary(max_size=2048),
    pem_soup,
    mutated(CHAIN),
    mutated(DER),
    mutated(KEY),
    mutated(P12),
    mutated(base64.b64encode(CHAIN)),
)


@given(anything)
def test_load_certificates_never_raises(data):
    loaded = load_certificates(data)
    assert isinstance(loaded, CertificateLoad)
    assert all(isinstance(p, str) and p.reason for p in loaded.problems)
    assert len(loaded.problems) <= 25


# The PEM fast path's block finder as it was written first (one regex); the bytes.find version that
# replaced it (issue 28: ~50,000 instructions per Secret less) must take and refuse the same inputs.
_REGEX_CERT_BLOCK = re.compile(rb"-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]*)-----END CERTIFICATE-----")


def _regex_fast_path(raw: bytes) -> CertificateLoad | None:
    bodies = _REGEX_CERT_BLOCK.findall(raw)
    if not bodies or len(bodies) != raw.count(b"-----BEGIN") or len(bodies) != raw.count(b"-----END"):
        return None
    try:
        parsed = [parse_der(binascii.a2b_base64(body)) for body in bodies]
    except Exception:
        return None
    return CertificateLoad(tuple(c for c, _ in parsed), (), tuple(fp for _, fp in parsed))


@given(st.one_of(anything, mutated(CHAIN + b"\n" + CHAIN), mutated(b"subject=CN x\n" + CHAIN + b"junk\r\n")))
def test_the_pem_fast_path_takes_exactly_what_the_regex_took(data):
    if not isinstance(data, bytes):
        return
    assert _load_pem_fast(data) == _regex_fast_path(data)


def test_the_pem_fast_path_on_well_formed_and_damaged_chains():
    crlf = CHAIN.replace(b"\n", b"\r\n")
    for data in (CHAIN, crlf, b"text before\n" + CHAIN + b"\ntext after", CHAIN + KEY, CHAIN.replace(b"A", b"-", 1),
                 CHAIN.replace(b"-----END CERTIFICATE-----", b"", 1), b"", b"-----BEGIN CERTIFICATE----------END CERTIFICATE-----",
                 # not strict base64 once the line breaks are gone: judged character by character
                 CHAIN.replace(b"-----\nM", b"-----\n M", 1), CHAIN.replace(b"-----\nM", b"-----\n\tM", 1),
                 CHAIN.replace(b"-----\nM", b"-----\nM=", 1), CHAIN.replace(b"-----\nM", b"-----\nM*", 1)):
        assert _load_pem_fast(data) == _regex_fast_path(data), data[:40]
    assert _load_pem_fast(crlf) is not None and len(_load_pem_fast(crlf).certificates) == CHAIN.count(b"-----BEGIN")


@given(st.one_of(anything, mutated(KEY_ENC)), st.one_of(st.none(), st.binary(max_size=8), st.just(b"pw")))
def test_load_private_key_never_raises(data, password):
    loaded = load_private_key(data, password)
    assert isinstance(loaded, KeyLoad)
    assert (loaded.key is None) == (loaded.problem is not None)


@given(st.one_of(mutated(P12), st.binary(max_size=512)), st.one_of(st.none(), st.just(b"pw"), st.binary(max_size=4)))
def test_load_pkcs12_never_raises(data, password):
    loaded = load_pkcs12(data, password)
    assert loaded.problem is not None or loaded.certificate is not None or loaded.additional_certificates


# --- Java keystores and the store reader ---------------------------------------------------------

from certpolicy.pki.certstores import CertstoreRead, read_certstore  # noqa: E402
from certpolicy.pki.javakeystore import JavaKeystoreLoad, encode_jks_truststore, load_java_keystore  # noqa: E402
from certpolicy.pki.secretdata import SecretMaterial, material_from_secret  # noqa: E402

JKS_KS = certgen.golden_store("p256/leaf.jks")  # written by keytool, password changeit
JCEKS_KS = certgen.golden_store("p256/leaf.jceks")
JKS_TS = encode_jks_truststore([("root", _PKI.root.cert), ("inter", _PKI.intermediate.cert)], "changeit")
java_stores = st.one_of(mutated(JKS_KS), mutated(JCEKS_KS), mutated(JKS_TS),
                        st.binary(max_size=64).map(lambda b: b"\xfe\xed\xfe\xed" + b),
                        st.binary(max_size=64).map(lambda b: b"\xce\xce\xce\xce" + b))
passwords = st.one_of(st.none(), st.just(b"changeit"), st.binary(max_size=6), st.just(b"\xff\xfe"))


@given(java_stores, passwords)
def test_load_java_keystore_never_raises(data, password):
    loaded = load_java_keystore(data, password)
    assert isinstance(loaded, JavaKeystoreLoad)
    assert loaded.problem is not None or loaded.entries or loaded.format
    if password and len(password) > 3:
        assert password.decode("latin-1") not in loaded.detail


@given(st.one_of(java_stores, anything), passwords)
def test_read_certstore_never_raises(data, password):
    assert isinstance(read_certstore(data, password, source="store"), CertstoreRead)


@given(st.one_of(java_stores, mutated(P12)), st.sampled_from(["keystore.jks", "keystore", "store.p12", "truststore.jks"]),
       st.one_of(st.none(), st.just(b"changeit"), st.binary(max_size=6)))
def test_opaque_secret_with_a_store_never_raises(data, name, password):
    secret = {name: data} if password is None else {name: data, "password": password}
    m = material_from_secret("Opaque", secret)
    assert isinstance(m, SecretMaterial)
    assert m.leaf is not None or m.problems

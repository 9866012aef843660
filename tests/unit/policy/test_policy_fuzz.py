"""Fuzzing Secret data through material_from_secret and evaluate: no input may raise."""

from __future__ import annotations

import base64
import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

import certgen
from certpolicy.pki.publicroots import PublicRoots
from certpolicy.pki.secretdata import SecretMaterial, material_from_secret
from certpolicy.policy.evaluate import Evaluation, Evaluator, evaluate
from certpolicy.policy.spec import requirements_from_spec

_PKI = certgen.pki()
_OTHER = certgen.pki()
CERT_BLOBS = [_PKI.chain_pem, _PKI.leaf.pem, _PKI.intermediate.der, _OTHER.chain_pem, _PKI.root.pem, base64.b64encode(_PKI.chain_pem)]
KEY_BLOBS = [_PKI.leaf.key_pem(), _OTHER.leaf.key_pem("sec1"), _PKI.leaf.key_pem(password=b"pw"), certgen.pkcs12_bytes(_PKI.leaf, b"pw")]
NAMES = ["tls.crt", "tls.key", "ca.crt", "cert.pem", "privkey.pem", "chain.pem", "fullchain.pem", "keystore.p12", "password", "x.crt", "ca.pem", "a.key", "config"]
TYPES = ["kubernetes.io/tls", "Opaque", "", None, "kubernetes.io/dockerconfigjson", "example.com/custom"]
REQS = [
    requirements_from_spec({}),
    requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"], "allowedDNSNames": ["*.example.com"], "requirePrivateKey": True}),
    requirements_from_spec({"allowedIPRanges": ["10.0.0.0/8"], "requiredDNSNames": ["svc.example.com"], "requireSAN": False, "minimumRSABits": 4096}),
]
NO_ROOTS = PublicRoots.of([_OTHER.root.cert])


@st.composite
def blob(draw) -> bytes:
    base = draw(st.sampled_from(CERT_BLOBS + KEY_BLOBS + [b"", b"garbage"]))
    data = bytearray(base)
    for _ in range(draw(st.integers(0, 3))):
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["cut", "flip", "splice"]))
        if op == "cut":
            del data[i:]
        elif op == "flip":
            data[i] ^= draw(st.integers(1, 255))
        else:
            data[i:i] = draw(st.sampled_from(CERT_BLOBS + KEY_BLOBS))[: draw(st.integers(0, 400))]
    return bytes(data)


value = st.one_of(
    blob().map(lambda b: base64.b64encode(b).decode()),
    blob(),
    st.text(max_size=40),
    st.none(),
    st.integers(),
    st.lists(st.integers(), max_size=2),
)
secret_data = st.one_of(st.none(), st.dictionaries(st.one_of(st.sampled_from(NAMES), st.text(max_size=12)), value, max_size=6))


@given(st.sampled_from(TYPES), secret_data)
def test_material_from_secret_never_raises(secret_type, data):
    m = material_from_secret(secret_type, data)
    assert isinstance(m, SecretMaterial)
    assert m.leaf is not None or m.problems or secret_type == "kubernetes.io/dockerconfigjson"


@given(
    st.sampled_from(TYPES),
    secret_data,
    st.sampled_from(REQS),
    st.sampled_from([None, (), (_PKI.root.cert,), (_PKI.root.cert, _OTHER.root.cert), (_PKI.leaf.cert, _PKI.intermediate.cert)]),
    st.datetimes(min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2060, 1, 1), timezones=st.just(dt.UTC)),
)
def test_evaluate_never_raises(secret_type, data, req, bundle, now):
    m = material_from_secret(secret_type, data)
    ev = evaluate(req, m, bundle, now, public_roots=NO_ROOTS)
    assert isinstance(ev, Evaluation)
    assert "CheckFailed" not in [f.reason for f in ev.findings]
    assert ev.valid_until is None or ev.valid_until > now
    assert list(ev.findings) == sorted(ev.findings, key=lambda f: f.sort_key())


@given(secret_data, st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2040, 1, 1), timezones=st.just(dt.UTC)))
def test_evaluator_agrees_with_evaluate(data, now):
    m = material_from_secret("kubernetes.io/tls", data)
    ev = Evaluator(public_roots=NO_ROOTS)
    cached = ev.evaluate(REQS[1], m, (_PKI.root.cert,), now)
    fresh = evaluate(REQS[1], m, (_PKI.root.cert,), now, public_roots=NO_ROOTS)
    assert cached.findings == fresh.findings

"""What the CA store makes of a CA Secret as read (``castore.parse_ca_secret``): the policy's CA,
or why not, in a message that names no key material."""

from __future__ import annotations

import base64

import pytest

import certgen
from certpolicy.handlers.castore import parse_ca_secret
from certpolicy.kube.ownership import MANAGED_BY, OWNER_UID, ROLE_LABEL, Owner

OWNER = Owner("pol", "uid-1")


def _secret(body: dict, *, labels: dict | None = None, annotations: dict | None = None) -> dict:
    return {**body, "metadata": {
        "name": "pol-ca", "namespace": "certpolicy-system",
        "labels": {MANAGED_BY: "pol", ROLE_LABEL: "ca"} if labels is None else labels,
        "annotations": {OWNER_UID: "uid-1"} if annotations is None else annotations}}


def test_the_policys_ca_is_loaded():
    ca = certgen.root("castore CA")
    pair, problem = parse_ca_secret(_secret(certgen.tls_secret(ca)), OWNER)
    assert problem is None and pair is not None
    assert pair.secret_name == "pol-ca" and pair.key_pair.cert == ca.cert


def test_a_ca_handed_over_by_label_alone_is_the_policys():
    pair, problem = parse_ca_secret(_secret(certgen.tls_secret(certgen.root("handed")), annotations={}), OWNER)
    assert problem is None and pair is not None


@pytest.mark.parametrize(("labels", "annotations", "says"), [
    ({MANAGED_BY: "other", ROLE_LABEL: "ca"}, {}, "belongs to"),
    ({}, {}, "belongs to"),
    ({MANAGED_BY: "pol", ROLE_LABEL: "leaf"}, {OWNER_UID: "uid-1"}, "belongs to"),
    ({MANAGED_BY: "pol", ROLE_LABEL: "ca"}, {OWNER_UID: "uid-0"}, "earlier CertificatePolicy pol (uid uid-0)"),
])
def test_a_secret_that_is_not_this_policys_is_not_owned(labels, annotations, says):
    pair, problem = parse_ca_secret(_secret(certgen.tls_secret(certgen.root("x")), labels=labels,
                                            annotations=annotations), OWNER)
    assert pair is None and problem is not None
    assert problem.reason == "CANotOwned" and says in problem.message


def _key_b64(issued: certgen.Issued) -> str:
    return base64.b64encode(certgen.key_pem(issued.key)).decode()


@pytest.mark.parametrize("case", ["no key", "not base64", "garbage PEM", "mismatched key", "not a CA", "empty"])
def test_unusable_ca_secrets_say_why_without_key_material(case):
    ca, other = certgen.root("usable"), certgen.root("other", key_slot=1)
    body = certgen.tls_secret(ca)
    if case == "no key":
        body = certgen.tls_secret(ca, key=False)
    elif case == "not base64":
        body["data"]["tls.crt"] = "%%% not base64 %%%"
    elif case == "garbage PEM":
        body["data"]["tls.crt"] = base64.b64encode(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n").decode()
    elif case == "mismatched key":
        body["data"]["tls.key"] = _key_b64(other)
    elif case == "not a CA":
        body = certgen.tls_secret(certgen.leaf(ca, "app.test"))
    elif case == "empty":
        body = {"type": "kubernetes.io/tls"}
    pair, problem = parse_ca_secret(_secret(body), OWNER)
    assert pair is None and problem is not None and problem.reason == "CAUnusable", (case, problem)
    assert "certpolicy-system/pol-ca" in problem.message
    for secret in (body.get("data") or {}).values():
        assert secret[:40] not in problem.message
    assert "PRIVATE KEY" not in problem.message


# --- spec.ca.certManager: the Issuer's Secret -----------------------------------------------------

class _Reads:
    """A RawClient that answers GETs from a dict of paths (404 otherwise) and refuses every write."""

    def __init__(self, objects: dict) -> None:
        self.objects, self.gets = objects, []

    def get(self, path, query=None, **_kw):
        from kubernetes.client import ApiException

        self.gets.append(path)
        if path not in self.objects:
            raise ApiException(status=404, reason="Not Found")
        return self.objects[path]

    def post(self, *a, **k):
        raise AssertionError("no write expected")

    put = patch = delete = post


ISSUER_PATH = "/apis/cert-manager.io/v1/namespaces/apps/issuers/ca"
SECRET_PATH = "/api/v1/namespaces/apps/secrets/ca-key"


def _issuer_store(objects: dict):
    from certpolicy.handlers.castore import IssuerCASecret, ca_store

    spec = {"ca": {"secretName": "ca-key", "certManager": {"issuerRef": {"kind": "Issuer", "name": "ca",
                                                                         "namespace": "apps"}}}}
    raw = _Reads(objects)
    store = ca_store(raw, OWNER, "certpolicy-system", spec)  # type: ignore[arg-type]
    assert isinstance(store, IssuerCASecret)
    return store, raw


def _issuer(secret_name: str | None = "ca-key") -> dict:
    return {"spec": {"ca": {"secretName": secret_name}} if secret_name else {"selfSigned": {}}}


def test_the_issuers_ca_is_the_active_ca_without_any_ownership_label():
    ca = certgen.root("issuer CA")
    secret = {**certgen.tls_secret(ca), "metadata": {"name": "ca-key", "namespace": "apps"}}
    store, raw = _issuer_store({ISSUER_PATH: _issuer(), SECRET_PATH: secret})
    pair, problem = store.load("ca-key")
    assert problem is None and pair is not None and pair.key_pair.cert == ca.cert
    assert store.load("ca-key")[0] is not None and raw.gets.count(SECRET_PATH) == 1  # read once per pass
    assert store.create("ca-key", pair.key_pair) is False  # never created, deleted or adopted
    assert store.delete("ca-key", pair.fingerprint) is False and store.adopt("ca-key", frozenset()) is False
    # The rotation's other CA Secrets stay in the operator's namespace.
    assert store.object("ca-key-next-r1") is None
    assert raw.gets[-1] == "/api/v1/namespaces/certpolicy-system/secrets/ca-key-next-r1"


@pytest.mark.parametrize(("objects", "reason", "says"), [
    ({}, "IssuerNotFound", "Issuer apps/ca (spec.ca.certManager.issuerRef) does not exist"),
    ({ISSUER_PATH: _issuer("other-key")}, "IssuerSecretMismatch", "set spec.ca.secretName to 'other-key'"),
    ({ISSUER_PATH: _issuer(None)}, "IssuerSecretMismatch", "is not a CA Issuer"),
    ({ISSUER_PATH: _issuer()}, "CAUnusable", "certpolicy never creates it"),
    ({ISSUER_PATH: _issuer(), SECRET_PATH: {**certgen.tls_secret(certgen.root("cm")), "metadata": {
        "name": "ca-key", "namespace": "apps", "annotations": {"cert-manager.io/certificate-name": "ca-cert"}}}},
     "IssuerSecretFromCertificate", "cert-manager Certificate apps/ca-cert"),
])
def test_an_issuer_that_cannot_be_rotated_says_why(objects, reason, says):
    store, _ = _issuer_store(objects)
    pair, problem = store.load("ca-key")
    assert pair is None and problem is not None
    assert problem.reason == reason and says in problem.message, problem
    assert "PRIVATE KEY" not in problem.message

"""Findings on a Secret that cert-manager writes name its Certificate and what to change there
(policy/certmanager.py): annotations read defensively, the reason→field mapping, the admission
refusal that cert-manager reports."""

from __future__ import annotations

import pytest

import certgen
from certpolicy.pki.secretdata import material_from_secret
from certpolicy.policy.admission import Enforcement, judge_secret
from certpolicy.policy.certmanager import (
    CERTIFICATE_FIX,
    USAGE_NAMES,
    CertManagerOwner,
    judge_certificate_spec,
    name_owner,
    owner_of,
)
from certpolicy.policy.evaluate import Evaluator
from certpolicy.policy.findings import MISSING_EKU_REASON, REASONS
from certpolicy.policy.spec import requirements_from_spec

NOW = certgen.utcnow()
CA = certgen.root("cert-manager unit CA")
MTLS = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"], "allowedDNSNames": ["*.example.com"]})
EVALUATOR = Evaluator()
ANNOTATIONS = {
    "cert-manager.io/certificate-name": "mirth",
    "cert-manager.io/issuer-name": "ca",
    "cert-manager.io/issuer-kind": "Issuer",
    "cert-manager.io/issuer-group": "cert-manager.io",
}
MIRTH = CertManagerOwner("integration", "mirth", "ca")


def material(issued):
    return material_from_secret("kubernetes.io/tls", certgen.tls_secret(issued)["data"])


def test_annotations_name_the_certificate_and_its_issuer():
    assert owner_of("integration", ANNOTATIONS) == MIRTH
    assert MIRTH.describe() == "Certificate integration/mirth (Issuer integration/ca)"


def test_cluster_issuer_and_external_issuer():
    cluster = owner_of("ns", {**ANNOTATIONS, "cert-manager.io/issuer-kind": "ClusterIssuer"})
    assert cluster is not None and cluster.issuer_ref == "ClusterIssuer ca"
    external = owner_of("ns", {**ANNOTATIONS, "cert-manager.io/issuer-kind": "AWSPCAIssuer",
                               "cert-manager.io/issuer-group": "awspca.cert-manager.io"})
    assert external is not None and external.issuer_ref == "AWSPCAIssuer.awspca.cert-manager.io ns/ca"


@pytest.mark.parametrize("annotations", [
    None, {}, {"cert-manager.io/issuer-name": "ca"},  # no Certificate: nothing to name
    {"cert-manager.io/certificate-name": ""}, {"cert-manager.io/certificate-name": "a b"},
    {"cert-manager.io/certificate-name": "x" * 254}, {"cert-manager.io/certificate-name": "bad\nname"},
])
def test_no_or_malformed_certificate_annotation_names_nothing(annotations):
    assert owner_of("ns", annotations) is None


@pytest.mark.parametrize("kind", ["", "Issuer X", "\x00"])
def test_a_malformed_issuer_annotation_falls_back_and_never_fails(kind):
    owner = owner_of("ns", {**ANNOTATIONS, "cert-manager.io/issuer-kind": kind, "cert-manager.io/issuer-name": "x y"})
    assert owner == CertManagerOwner("ns", "mirth", None)
    assert owner.describe() == "Certificate ns/mirth"


def test_every_mapped_reason_exists_and_every_eku_reason_has_a_usage():
    assert set(CERTIFICATE_FIX) <= set(REASONS)
    for eku, reason in MISSING_EKU_REASON.items():
        assert CERTIFICATE_FIX[reason] == f"add `{USAGE_NAMES[eku]}` to spec.usages"


def test_missing_client_auth_names_the_certificate_and_the_field():
    ev = EVALUATOR.evaluate(MTLS, material(certgen.leaf(CA, "mirth.example.com", eku=("serverAuth",))), [CA.cert], NOW)
    named = name_owner(ev, MIRTH)
    [f] = [f for f in named.findings if f.reason == "MissingClientAuth"]
    assert f.message.endswith("Certificate integration/mirth (Issuer integration/ca): add `client auth` to spec.usages")
    assert [g.reason for g in named.findings] == [g.reason for g in ev.findings]  # same verdict, named
    assert name_owner(ev, None) is ev


def test_a_name_outside_the_allowed_names_points_at_spec_dnsnames():
    ev = EVALUATOR.evaluate(MTLS, material(certgen.leaf(CA, "mirth.prod.test")), [CA.cert], NOW)
    [f] = [f for f in name_owner(ev, MIRTH).findings if f.reason == "DNSNameNotAllowed"]
    assert "mirth.prod.test" in f.message and f.message.endswith("remove the name from spec.dnsNames")


def test_a_chain_finding_points_at_the_issuer():
    other = certgen.root("another CA")
    ev = EVALUATOR.evaluate(MTLS, material(certgen.leaf(other, "mirth.example.com")), [CA.cert], NOW)
    chain = [f for f in name_owner(ev, MIRTH).findings if f.reason in ("UntrustedChain", "UnknownRoot", "IncompleteChain")]
    assert chain and all("Issuer integration/ca (of Certificate integration/mirth): its CA" in f.message for f in chain)


def test_a_finding_about_a_ca_is_not_a_certificate_spec_fix():
    expired_ca = certgen.root("expired CA", not_before=NOW.replace(year=NOW.year - 3), valid_for=certgen.dt.timedelta(days=1))
    ev = EVALUATOR.evaluate(MTLS, material(certgen.leaf(expired_ca, "mirth.example.com")), [expired_ca.cert], NOW)
    ca_expired = [f for f in name_owner(ev, MIRTH).findings
                  if f.reason == "Expired" and f.cert is not None and f.cert.role.value != "leaf"]
    assert ca_expired and all(f.message.endswith("written by Certificate integration/mirth (Issuer integration/ca)")
                              for f in ca_expired)


def test_deny_refusal_names_the_certificate_cert_manager_reports():
    def evaluate(m, bundle):
        return EVALUATOR.evaluate(MTLS, m, bundle, NOW)

    old = material(certgen.leaf(CA, "mirth.example.com"))
    new = material(certgen.leaf(CA, "mirth.example.com", eku=("serverAuth",)))
    v = judge_secret("mtls", Enforcement.DENY, "Secret integration/mirth-tls", old, new, [CA.cert], evaluate,
                     owner=MIRTH)
    assert not v.allowed
    assert "Certificate integration/mirth (Issuer integration/ca): add `client auth` to spec.usages" in v.message
    unnamed = judge_secret("mtls", Enforcement.DENY, "Secret integration/mirth-tls", old, new, [CA.cert], evaluate)
    assert "Certificate integration/mirth" not in unnamed.message


# --- CertificateSpecViolates: judging what the next issuance will produce ----------------------------

def cm_certificate(spec: dict | None = None, renewal: str | None = "2027-01-10T04:00:00Z", **extra) -> dict:
    body = {"metadata": {"namespace": "integration", "name": "mirth"},
            "spec": {"secretName": "mirth-tls", "dnsNames": ["mirth.example.com"],
                     "usages": ["digital signature", "key encipherment", "server auth", "client auth"],
                     **(spec or {})}, **extra}
    if renewal:
        body["status"] = {"renewalTime": renewal}
    return body


def messages(certificate, req=MTLS) -> list[str]:
    found = judge_certificate_spec(certificate, req)
    assert all(f.reason == "CertificateSpecViolates" and f.severity.label == "Warning" for f in found)
    return [f.message for f in found]


def test_a_spec_that_issues_a_compliant_leaf_is_no_finding():
    assert messages(cm_certificate()) == []


def test_dropping_client_auth_names_the_renewal_time_and_the_field():
    [m] = messages(cm_certificate({"usages": ["digital signature", "key encipherment", "server auth"]}))
    assert m == ("the renewal at 2027-01-10T04:00:00Z will lack clientAuth — Certificate integration/mirth: "
                 "add `client auth` to spec.usages")


def test_empty_usages_are_cert_managers_defaults_with_no_eku():
    found = messages(cm_certificate({"usages": []}, renewal=None))
    assert found == ["the next issuance will lack serverAuth — Certificate integration/mirth: add `server auth` to spec.usages",
                     "the next issuance will lack clientAuth — Certificate integration/mirth: add `client auth` to spec.usages"]
    assert messages(cm_certificate({"usages": ["any"]}))  # `any` is not the usages listed


def test_names_keys_and_duration():
    found = messages(cm_certificate({"dnsNames": ["mirth.prod.test"], "privateKey": {"algorithm": "RSA", "size": 1024},
                                     "duration": "24h"}))
    assert any("'mirth.prod.test', which allowedDNSNames does not allow" in m for m in found)
    assert any("RSA 1024-bit key, below minimumRSABits 2048 — Certificate integration/mirth: raise spec.privateKey.size"
               in m for m in found)
    assert any("within expiry.criticalBefore" in m and "lengthen spec.duration" in m for m in found)
    assert len(found) == 3
    assert any("P-521 key, not in allowedECCurves" in m for m in messages(
        cm_certificate({"privateKey": {"algorithm": "ECDSA", "size": 521}}),
        requirements_from_spec({"allowedECCurves": ["P-256"]})))
    assert any("Ed25519 key" in m for m in messages(cm_certificate({"privateKey": {"algorithm": "Ed25519"}})))
    assert messages(cm_certificate({"dnsNames": []})) == [
        "the renewal at 2027-01-10T04:00:00Z will have no subjectAltName — Certificate integration/mirth: "
        "set spec.dnsNames (or spec.ipAddresses)"]


@pytest.mark.parametrize("spec", [
    {"usages": "client auth"}, {"usages": [None, 3, {"x": 1}]}, {"dnsNames": "mirth.example.com"},
    {"dnsNames": [None]}, {"privateKey": "RSA"}, {"privateKey": {"algorithm": 7, "size": "big"}},
    {"privateKey": {"size": True}}, {"duration": 90}, {"duration": "90d"}, {"duration": "-1h"}, {"duration": ""},
])
def test_malformed_specs_never_raise(spec):
    judge_certificate_spec(cm_certificate(spec), MTLS)


@pytest.mark.parametrize("certificate", [{}, {"spec": None}, {"spec": [], "status": "x", "metadata": 3},
                                         {"spec": {"usages": None}, "status": {"renewalTime": 5}}])
def test_malformed_certificates_are_judged_as_cert_managers_defaults(certificate):
    found = messages(certificate)
    assert found and all(m.startswith("the next issuance will") for m in found)

"""Trust stores on their own: CA expiry, weak keys, duplicates; trustedBy anchors; caBundles."""

from __future__ import annotations

import datetime as dt

import pytest

import certgen
from certpolicy.pki.load import LoadProblem
from certpolicy.pki.secretdata import material_from_secret
from certpolicy.policy.evaluate import evaluate
from certpolicy.policy.findings import Severity
from certpolicy.policy.spec import PolicySpecError, Requirements, requirements_from_spec, truststore_selection_from_spec
from certpolicy.policy.truststores import LeafAnchor, anchors, check_truststore, missing_anchors

NOW = certgen.utcnow()
REQ = Requirements()
PKI = certgen.pki()
OTHER = certgen.pki("p384")


def reasons(check):
    return [f.reason for f in check.findings]


def test_a_healthy_store_has_no_findings_and_knows_when_to_look_again():
    check = check_truststore(REQ, [PKI.root.cert, OTHER.root.cert], (), NOW)
    assert check.findings == ()
    assert check.valid_until is not None and check.valid_until > NOW


def test_every_ca_is_checked_for_expiry():
    expiring = certgen.root("expiring CA", valid_for=dt.timedelta(days=3), key_kind="p384", key_slot=5)
    expired = certgen.root("expired CA", not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1),
                           key_slot=6)
    check = check_truststore(REQ, [PKI.root.cert, expiring.cert, expired.cert], (), NOW, what="ConfigMap hl7/peers ca.crt")
    by = {f.reason: f for f in check.findings}
    assert by["ExpiringSoon"].severity is Severity.CRITICAL and "expiring CA" in by["ExpiringSoon"].message
    assert by["Expired"].severity is Severity.CRITICAL and "expired CA" in by["Expired"].message


def test_weak_key_duplicate_and_non_ca():
    weak = certgen.root("weak CA", key_kind="rsa1024")
    check = check_truststore(REQ, [weak.cert, PKI.root.cert, PKI.root.cert, PKI.leaf.cert], (), NOW, what="the store")
    assert set(reasons(check)) >= {"WeakRSAKey", "DuplicateCertificate", "NonCACertificateInBundle"}
    dup = next(f for f in check.findings if f.reason == "DuplicateCertificate")
    assert "2 times" in dup.message


def test_unreadable_and_empty_stores():
    unreadable = check_truststore(REQ, [], [LoadProblem("KeystoreUnreadable", "JKS keystore integrity check failed", "truststore.jks")], NOW)
    assert reasons(unreadable) == ["KeystoreUnreadable"]
    assert reasons(check_truststore(REQ, [], (), NOW)) == ["NoCertificate"]


def _anchor(pki, name="hl7/engine-tls"):
    m = material_from_secret("kubernetes.io/tls", pki.secret(encoded=False)["data"])
    ev = evaluate(REQ, m, [pki.root.cert], NOW)
    return LeafAnchor.of(name, m, ev.chain_path, [pki.root.cert])


def test_one_of_three_peer_stores_lacks_the_anchor():
    leaf = _anchor(PKI)
    stores = {"peer-a": [PKI.root.cert], "peer-b": [OTHER.root.cert, PKI.root.cert], "peer-c": [OTHER.root.cert]}
    found = {name: missing_anchors(certs, [leaf], what=f"Secret hl7/{name}") for name, certs in stores.items()}
    assert found["peer-a"] == () and found["peer-b"] == ()
    (f,) = found["peer-c"]
    assert f.reason == "TruststoreMissingAnchor" and f.severity is Severity.CRITICAL
    assert "hl7/engine-tls" in f.message and "svc.example.com" in f.message and "certgen Root CA" in f.message


def test_an_intermediate_or_the_leaf_itself_anchors():
    leaf = _anchor(PKI)
    assert anchors([PKI.intermediate.cert], leaf)
    assert anchors([PKI.leaf.cert], leaf)


def test_unverified_chain_is_anchored_by_the_ca_that_signed_its_top():
    # No trust bundle, no ca.crt: the root is known only to the store, by signature.
    m = material_from_secret("kubernetes.io/tls", PKI.secret(encoded=False)["data"])
    leaf = LeafAnchor.of("ns/s", m)
    assert anchors([PKI.root.cert], leaf)
    # Same name, another key: a re-keyed root does not anchor.
    rekeyed = certgen.root(key_slot=9)
    assert rekeyed.cert.subject == PKI.root.cert.subject
    assert not anchors([rekeyed.cert], leaf)
    (f,) = missing_anchors([rekeyed.cert], [leaf])
    assert "a CA named 'O=certgen,CN=certgen Root CA'" in f.message


def test_missing_anchor_findings_are_bounded():
    leaves = [_anchor(PKI, f"ns/s{i}") for i in range(30)]
    out = missing_anchors([OTHER.root.cert], leaves, limit=5)
    assert len(out) == 6 and "25 more" in out[-1].message


def test_webhook_cabundle_expiring_in_three_days_and_not_anchoring_its_leaf():
    ca = certgen.root("webhook CA", valid_for=dt.timedelta(days=3), key_slot=7)
    served = certgen.leaf(ca, "webhook.svc")
    bundle = [ca.cert]
    check = check_truststore(REQ, bundle, (), NOW, what="caBundle of ValidatingWebhookConfiguration guard")
    (f,) = check.findings
    assert f.reason == "ExpiringSoon" and f.severity is Severity.CRITICAL and "webhook CA" in f.message
    m = material_from_secret("kubernetes.io/tls", certgen.tls_secret(served, encoded=False)["data"])
    assert missing_anchors(bundle, [LeafAnchor.of("sys/webhook-tls", m)]) == ()
    assert missing_anchors([OTHER.root.cert], [LeafAnchor.of("sys/webhook-tls", m)])


def test_trusted_by_spec():
    sel = truststore_selection_from_spec({"selector": {"matchLabels": {"role": "peer"}}, "keys": ["truststore.jks"],
                                     "passwordSecretRef": {"name": "pw"}}, "requirements.trustedBy")
    assert sel.selector_spec() == {"matchLabels": {"role": "peer"}} and sel.keys == ("truststore.jks",)
    assert (sel.password_secret, sel.password_key) == ("pw", "password")
    assert requirements_from_spec({"trustedBy": {"selector": {"matchLabels": {"a": "b"}}}}) == Requirements()
    with pytest.raises(PolicySpecError, match="select by label"):
        requirements_from_spec({"trustedBy": {"selector": {}}})
    with pytest.raises(PolicySpecError, match="unknown field"):
        truststore_selection_from_spec({"selector": {"matchLabels": {"a": "b"}}, "nmes": []}, "trustStores")


def test_a_recheck_of_a_trusted_by_anchor_costs_no_signature(monkeypatch):
    """The store CA that signed the top of an unverified chain anchors it by signature; asking
    again (the next pass) is answered from the (child, issuer) fingerprint cache, for a match and
    for a same-named CA with another key alike."""
    from certpolicy.pki import cache, inspect

    cache.clear_all()
    checked: list[tuple[str, str]] = []
    real = inspect._signature_verifies

    def counting(child, issuer):
        checked.append((child.subject.rfc4514_string(), issuer.subject.rfc4514_string()))
        return real(child, issuer)

    monkeypatch.setattr(inspect, "_signature_verifies", counting)
    m = material_from_secret("kubernetes.io/tls", PKI.secret(encoded=False)["data"])
    leaf = LeafAnchor.of("ns/s", m)
    rekeyed = certgen.root(key_slot=9)
    first = [anchors([PKI.root.cert], leaf), anchors([rekeyed.cert], leaf)]
    signatures = len(checked)
    assert first == [True, False] and signatures == 2
    again = [anchors([PKI.root.cert], leaf), anchors([rekeyed.cert], leaf)]
    assert again == first and len(checked) == signatures

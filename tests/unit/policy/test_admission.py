"""The pure admission decisions (policy/admission.py): enforcement values, the no-worse rule,
Warn vs Deny, the bundle guard, malformed input."""

from __future__ import annotations

import datetime as dt

import pytest

import certgen
from certpolicy.pki.secretdata import material_from_secret
from certpolicy.policy.admission import (
    ALLOW,
    Enforcement,
    added_critical,
    enforcement_from_spec,
    judge_bundle,
    judge_secret,
    orphans,
    removed_cas,
)
from certpolicy.policy.evaluate import Evaluator
from certpolicy.policy.spec import PolicySpecError, requirements_from_spec

NOW = certgen.utcnow()
MTLS = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"]})
CA = certgen.root("admission unit CA")
EVALUATOR = Evaluator()


def evaluate(material, bundle):
    return EVALUATOR.evaluate(MTLS, material, bundle, NOW)


def material(issued, ca=CA):
    return material_from_secret("kubernetes.io/tls", certgen.tls_secret(issued)["data"])


def good(cn="svc.example.com"):
    return material(certgen.leaf(CA, cn))


def no_client_auth(cn="svc.example.com"):
    return material(certgen.leaf(CA, cn, eku=("serverAuth",)))


@pytest.mark.parametrize(("spec", "expected"), [
    ({}, Enforcement.AUDIT), (None, Enforcement.AUDIT), ({"enforcement": "audit"}, Enforcement.AUDIT),
    ({"enforcement": "Audit"}, Enforcement.AUDIT), ({"enforcement": "Warn"}, Enforcement.WARN),
    ({"enforcement": "Deny"}, Enforcement.DENY),
])
def test_enforcement_values(spec, expected):
    assert enforcement_from_spec(spec) is expected


@pytest.mark.parametrize("value", ["enforce", "deny", "", 3])
def test_unknown_enforcement_is_a_spec_error(value):
    with pytest.raises(PolicySpecError, match="Audit, Warn, Deny"):
        enforcement_from_spec({"enforcement": value})


def test_deny_refuses_a_renewal_that_drops_client_auth_and_says_what_to_fix():
    v = judge_secret("mtls", Enforcement.DENY, "Secret ns/api", good(), no_client_auth(), [CA.cert], evaluate)
    assert not v.allowed
    assert v.message.startswith("CertificatePolicy mtls (enforcement: Deny) refuses this write to Secret ns/api")
    assert "MissingClientAuth" in v.message and "Re-issue it with clientAuth" in v.message
    assert v.reason == "MissingClientAuth"


def test_warn_admits_the_same_write_with_a_short_warning():
    v = judge_secret("mtls", Enforcement.WARN, "Secret ns/api", good(), no_client_auth(), [CA.cert], evaluate)
    assert v.allowed and not v.message
    assert v.warnings[0].startswith("CertificatePolicy mtls: Secret ns/api: MissingClientAuth")
    assert "RenewalDroppedUsage" in v.warnings[1]
    assert all(len(w) <= 256 for w in v.warnings)


def test_audit_never_judges():
    assert judge_secret("mtls", Enforcement.AUDIT, "Secret ns/api", good(), no_client_auth(), [CA.cert], evaluate) is ALLOW


def test_a_create_is_judged_on_everything_it_has():
    assert not judge_secret("mtls", Enforcement.DENY, "Secret ns/api", None, no_client_auth(), [CA.cert], evaluate).allowed
    assert judge_secret("mtls", Enforcement.DENY, "Secret ns/api", None, good(), [CA.cert], evaluate).allowed


def test_no_worse_passes_an_equally_bad_leaf_and_the_fix():
    bad = no_client_auth()
    assert judge_secret("p", Enforcement.DENY, "s", bad, no_client_auth(), [CA.cert], evaluate).allowed  # a new key
    assert judge_secret("p", Enforcement.DENY, "s", bad, bad, [CA.cert], evaluate).allowed  # a label change
    assert judge_secret("p", Enforcement.DENY, "s", bad, good(), [CA.cert], evaluate).allowed


def test_a_new_kind_of_critical_finding_on_a_violating_secret_is_refused():
    bad = no_client_auth()
    other_ca = certgen.root("another CA")
    worse = material(certgen.leaf(other_ca, "svc.example.com", eku=("serverAuth",)))  # and now untrusted too
    v = judge_secret("p", Enforcement.DENY, "s", bad, worse, [CA.cert], evaluate)
    assert not v.allowed and "IncompleteChain" in v.message and "MissingClientAuth" not in v.message


@pytest.mark.parametrize("data", [
    {}, {"tls.crt": "not base64!!"}, {"tls.crt": certgen.b64(b"-----BEGIN CERTIFICATE-----\nAAAA\n")},
    {"tls.crt": certgen.b64(b"\x00" * 64)},
])
def test_malformed_new_data_is_refused_under_deny(data):
    new = material_from_secret("kubernetes.io/tls", data)
    v = judge_secret("p", Enforcement.DENY, "Secret ns/x", good(), new, [CA.cert], evaluate)
    assert not v.allowed
    assert v.worse and all(f.severity.label == "Critical" for f in v.worse)


def test_many_findings_are_counted_not_listed():
    base = evaluate(good(), [CA.cert])
    worst = material(certgen.leaf(certgen.root("x"), "svc.example.com", eku=("codeSigning",),
                                  valid_for=dt.timedelta(days=1)))
    added = added_critical(base, evaluate(worst, [CA.cert]))
    assert len(added) >= 3
    v = judge_secret("p", Enforcement.DENY, "s", good(), worst, [CA.cert], evaluate)
    assert len(v.worse) > 3 and f"; and {len(v.worse) - 3} more." in v.message


# --- the bundle guard -------------------------------------------------------------------------

def test_removing_the_ca_that_anchors_a_leaf_is_refused_naming_the_leaf():
    other = certgen.root("other CA")
    leaves = [("payments", "api-tls", good()), ("payments", "web-tls", material(certgen.leaf(other, "w.example.com")))]
    found = orphans(leaves, [CA.cert, other.cert], [other.cert], evaluate)
    assert [(o.namespace, o.name) for o in found] == [("payments", "api-tls")]
    v = judge_bundle("mtls", Enforcement.DENY, "ConfigMap payments/trust", found)
    assert not v.allowed and "Secret payments/api-tls" in v.message and "admission unit CA" in v.message
    assert judge_bundle("mtls", Enforcement.WARN, "ConfigMap payments/trust", found).warnings


def test_removing_a_ca_that_anchors_nothing_passes():
    unused = certgen.root("unused CA")
    leaves = [("payments", "api-tls", good())]
    assert removed_cas([CA.cert, unused.cert], [CA.cert])
    assert orphans(leaves, [CA.cert, unused.cert], [CA.cert], evaluate) == []
    assert judge_bundle("mtls", Enforcement.DENY, "ConfigMap payments/trust", []) is ALLOW


def test_a_leaf_still_anchored_elsewhere_is_not_orphaned():
    # The same CA certificate re-added under a second copy: nothing is removed.
    assert orphans([("n", "a", good())], [CA.cert], [CA.cert], evaluate) == []


# --- renewal regressions (policy/renewal.py) ---------------------------------------------------

def two_names():
    return material(certgen.leaf(CA, "a.example.com", dns_names=("a.example.com", "b.example.com")))


def one_name():
    return material(certgen.leaf(CA, "a.example.com", dns_names=("a.example.com",)))


def test_a_renewal_regression_no_requirement_names_is_refused_under_deny():
    v = judge_secret("p", Enforcement.DENY, "Secret ns/x", two_names(), one_name(), [CA.cert], evaluate)
    assert not v.allowed and "RenewalDroppedDNSName" in v.message and "b.example.com" in v.message


def test_a_renewal_regression_is_a_warning_under_warn():
    v = judge_secret("p", Enforcement.WARN, "Secret ns/x", two_names(), one_name(), [CA.cert], evaluate)
    assert v.allowed and any("RenewalDroppedDNSName" in w for w in v.warnings)


def test_dropping_client_auth_is_both_a_finding_and_a_regression():
    v = judge_secret("p", Enforcement.DENY, "s", good(), no_client_auth(), [CA.cert], evaluate)
    assert [f.reason for f in v.worse] == ["MissingClientAuth", "RenewalDroppedUsage"]


def test_an_accepted_or_ignored_regression_passes():
    new = one_name()
    from certpolicy.pki.fingerprint import certificate_fingerprint
    from certpolicy.policy.renewal import plain_fingerprint

    accepted = plain_fingerprint(certificate_fingerprint(new.leaf))
    assert judge_secret("p", Enforcement.DENY, "s", two_names(), new, [CA.cert], evaluate, accepted=accepted).allowed
    assert not judge_secret("p", Enforcement.DENY, "s", two_names(), new, [CA.cert], evaluate,
                            accepted="00" * 32).allowed
    assert judge_secret("p", Enforcement.DENY, "s", two_names(), new, [CA.cert], evaluate,
                        ignore=frozenset({"RenewalDroppedDNSName"})).allowed


def test_a_move_between_the_policys_own_cas_is_no_changed_anchor():
    from certpolicy.pki.fingerprint import certificate_fingerprint

    new_ca = certgen.root("admission unit CA 2")
    moved = material(certgen.leaf(new_ca, "svc.example.com"))
    bundle = [CA.cert, new_ca.cert]
    v = judge_secret("p", Enforcement.DENY, "s", good(), moved, bundle, evaluate)
    assert not v.allowed and "RenewalChangedAnchor" in v.message
    own = frozenset({certificate_fingerprint(CA.cert), certificate_fingerprint(new_ca.cert)})
    assert judge_secret("p", Enforcement.DENY, "s", good(), moved, bundle, evaluate, own_anchors=own).allowed

"""What a policy reports from its Secrets' evaluations: counts, worst-first bounded list, reason."""

from __future__ import annotations

import datetime as dt

import certgen
from certpolicy.pki.secretdata import material_from_secret
from certpolicy.policy.evaluate import evaluate
from certpolicy.policy.report import MAX_VIOLATIONS, SecretResult, build_report
from certpolicy.policy.spec import requirements_from_spec

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.UTC)


def _result(name, leaf, ca, req):
    material = material_from_secret("kubernetes.io/tls", certgen.tls_secret(leaf)["data"])
    return SecretResult("ns", name, evaluate(req, material, [ca.cert], NOW))


def test_counts_worst_first_and_reason():
    ca = certgen.root("report CA", now=NOW - dt.timedelta(days=1))
    req = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"]})
    results = [
        _result("ok", certgen.leaf(ca, "ok.example.com", now=NOW - dt.timedelta(days=1)), ca, req),
        _result("no-client", certgen.leaf(ca, "a.example.com", eku=["serverAuth"], now=NOW - dt.timedelta(days=1)),
                ca, req),
        _result("soon", certgen.leaf(ca, "b.example.com", now=NOW - dt.timedelta(days=80),
                                     valid_for=dt.timedelta(days=100)), ca, req),
    ]
    report = build_report(results, NOW)
    assert report.summary() == {"selected": 3, "compliant": 1, "violating": 2, "expiringSoon": 1}
    assert report.violations[0]["name"] == "no-client"  # Critical before Warning
    assert report.compliant_reason == "MissingClientAuth" and not report.is_compliant
    assert NOW < report.next_evaluation <= NOW + dt.timedelta(minutes=10)


def test_violations_are_bounded_and_empty_selection_is_explained():
    ca = certgen.root("report CA 2", now=NOW - dt.timedelta(days=1))
    req = requirements_from_spec({"extendedKeyUsages": ["clientAuth"]})
    bad = certgen.leaf(ca, "x.example.com", eku=["serverAuth"], now=NOW - dt.timedelta(days=1))
    one = _result("x", bad, ca, req)
    many = [SecretResult("ns", f"s{i:03d}", one.evaluation) for i in range(MAX_VIOLATIONS + 25)]
    report = build_report(many, NOW)
    assert report.violating == MAX_VIOLATIONS + 25 and len(report.violations) == MAX_VIOLATIONS
    empty = build_report([], NOW)
    assert empty.is_compliant is None and empty.compliant_reason == "NothingSelected"  # condition Unknown


def test_compliant_reason_and_message_agree():
    """The message's example is a finding of the condition's reason, even when the worst Secret's
    first finding is another reason."""
    ca = certgen.root("report CA", now=NOW - dt.timedelta(days=1))
    req = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"],
                                  "allowedDNSNames": ["*.uat.example.com"]})
    t0 = NOW - dt.timedelta(days=1)
    results = [
        _result("x", certgen.leaf(ca, "x.example.com", eku=["serverAuth"], now=t0), ca, req),  # two reasons
        _result("y", certgen.leaf(ca, "y.uat.example.com", eku=["serverAuth"], now=t0), ca, req),
        _result("z", certgen.leaf(ca, "z.uat.example.com", eku=["serverAuth"], now=t0), ca, req),
    ]
    report = build_report(results, NOW)
    assert report.compliant_reason == "MissingClientAuth"
    assert "MissingClientAuth on 3" in report.compliant_message
    example = report.compliant_message.split("e.g. ", 1)[1]
    x_findings = {f.reason: f.message for f in results[0].evaluation.findings}
    assert example == f"ns/x: {x_findings['MissingClientAuth']}"


def test_findings_are_counted_per_namespace_reason_and_severity():
    """The source of the certpolicy_findings series: one count per (namespace, reason, severity),
    each Secret counted once per reason however many certificates carry it."""
    ca = certgen.root("report CA 3", now=NOW - dt.timedelta(days=1))
    req = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"]})
    bad = _result("x", certgen.leaf(ca, "x.example.com", eku=["serverAuth"], now=NOW - dt.timedelta(days=1)), ca, req)
    results = [SecretResult("a", "s1", bad.evaluation), SecretResult("a", "s2", bad.evaluation),
               SecretResult("b", "s1", bad.evaluation)]
    counts = {(ns, reason, sev): n for ns, reason, sev, n in build_report(results, NOW).findings_by_namespace}
    assert counts[("a", "MissingClientAuth", "Critical")] == 2
    assert counts[("b", "MissingClientAuth", "Critical")] == 1
    assert {ns for ns, _r, _s in counts} == {"a", "b"}


def test_compliant_is_true_only_when_everything_was_checked_and_a_violation_still_wins():
    """Issue 22 item 2: the one rule behind Compliant, the metric, the event, the plugin's STATE and
    check --cluster's exit code."""
    from certpolicy.policy.report import UNCHECKED_REASONS, Unchecked, compliance

    missing = Unchecked("TrustBundleMissing", "the trust bundle ConfigMap a/b does not exist")
    assert compliance(3, 0) is True
    assert compliance(0, 0) is None  # nothing selected
    assert compliance(3, 0, [missing]) is None  # judged, but the chains were not checked
    assert compliance(3, 1, [missing]) is False  # what was checked already fails
    assert {"TrustBundleMissing", "TrustBundleUnreadable", "TrustBundleEmpty", "SecretNotFound"} <= UNCHECKED_REASONS
    # a damaged renewal baseline is retaken from a leaf compared with nothing: not checked either
    assert {"RenewalBaselineUnavailable", "RenewalBaselineFull", "RenewalBaselineUnreadable"} <= UNCHECKED_REASONS

    ca = certgen.root("report CA 3", now=NOW - dt.timedelta(days=1))
    req = requirements_from_spec({"extendedKeyUsages": ["serverAuth"]})
    good = _result("good", certgen.leaf(ca, "g.example.com", now=NOW - dt.timedelta(days=1)), ca, req)
    others = [Unchecked("SecretNotFound", f"the Secret ns/gone-{i} named in spec.selector.names does not exist")
              for i in range(5)]
    report = build_report([good], NOW, unchecked=[missing, *others])
    assert report.is_compliant is None and report.compliant_reason == "TrustBundleMissing"
    assert "not everything was checked" in report.compliant_message and "a/b does not exist" in report.compliant_message
    assert "gone-1" in report.compliant_message and "gone-2" not in report.compliant_message
    assert "(+3 more)" in report.compliant_message
    bad_req = requirements_from_spec({"extendedKeyUsages": ["clientAuth"]})
    bad = _result("bad", certgen.leaf(ca, "b.example.com", eku=["serverAuth"], now=NOW - dt.timedelta(days=1)), ca,
                  bad_req)
    report = build_report([good, bad], NOW, unchecked=[missing])
    assert report.is_compliant is False and report.compliant_reason == "MissingClientAuth"
    assert "Not checked: the trust bundle ConfigMap a/b does not exist" in report.compliant_message
    assert build_report([good], NOW).is_compliant is True
    empty = build_report([], NOW, nothing_selected="namespaceSelector matches 0 namespaces")
    assert empty.compliant_reason == "NothingSelected" and "(namespaceSelector matches 0 namespaces)" in \
        empty.compliant_message

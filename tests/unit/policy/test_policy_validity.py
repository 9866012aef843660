"""Expiry findings for every role, and the instants at which results change."""

from __future__ import annotations

import datetime as dt

import pytest

import certgen
from certpolicy.policy.findings import Role, Severity

D = dt.timedelta(days=1)


def leaf_expiring(pki, now, left: dt.timedelta, **kw):
    return certgen.leaf(pki.intermediate, "x.example.com", not_before=now - 10 * D, not_after=now + left, **kw)


@pytest.mark.parametrize(
    ("left", "severity"),
    [(60 * D, None), (29 * D, Severity.WARNING), (6 * D, Severity.CRITICAL), (dt.timedelta(hours=1), Severity.CRITICAL)],
)
def test_expiring_soon_thresholds(ec_pki, run, pick, now, left, severity):
    ev = run(leaf_expiring(ec_pki, now, left), [ec_pki.intermediate], bundle=ec_pki.bundle, now=now)
    found = pick(ev, "ExpiringSoon")
    if severity is None:
        assert found == []
    else:
        (f,) = found
        assert f.severity is severity and f.cert.role is Role.LEAF
        assert "expires" in f.message and ("criticalBefore" in f.message) == (severity is Severity.CRITICAL)


def test_expired_leaf(ec_pki, run, pick, now):
    leaf = certgen.leaf(ec_pki.intermediate, "old.example.com", not_before=now - 100 * D, not_after=now - 2 * D)
    ev = run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now)
    (f,) = pick(ev, "Expired")
    assert f.severity is Severity.CRITICAL and "2d ago" in f.message
    assert pick(ev, "UntrustedChain")  # the verifier refuses it too


def test_not_yet_valid(ec_pki, run, pick, now):
    leaf = certgen.leaf(ec_pki.intermediate, "future.example.com", not_before=now + D, not_after=now + 90 * D)
    (f,) = pick(run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now), "NotYetValid")
    assert f.severity is Severity.CRITICAL and "in 1d" in f.message


def test_expiring_intermediate_and_root_are_reported_with_their_roles(run, pick, now):
    root = certgen.root("Old Root", not_before=now - 3650 * D, not_after=now + 20 * D)
    inter = certgen.intermediate(root, "Old Intermediate", not_before=now - 100 * D, not_after=now + 5 * D)
    leaf = certgen.leaf(inter, "x.example.com")
    ev = run(leaf, [inter], bundle=[root.cert], now=now)
    by_role = {f.cert.role: f for f in pick(ev, "ExpiringSoon")}
    assert by_role[Role.INTERMEDIATE].severity is Severity.CRITICAL
    assert by_role[Role.ROOT].severity is Severity.WARNING
    assert Role.LEAF not in by_role


def test_expired_bundle_ca_off_path_is_capped_at_warning(ec_pki, run, pick, now):
    stale = certgen.root("Stale Root", not_before=now - 400 * D, not_after=now - D)
    ev = run(ec_pki.leaf, [ec_pki.intermediate], bundle=[ec_pki.root.cert, stale.cert], now=now)
    (f,) = pick(ev, "Expired")
    assert f.cert.role is Role.BUNDLE_CA and f.severity is Severity.WARNING
    assert ev.anchor_fingerprint is not None


def test_expired_ca_on_path_is_critical(ec_pki, run, pick, now):
    inter = certgen.intermediate(ec_pki.root, "Expired Intermediate", not_before=now - 400 * D, not_after=now - D)
    leaf = certgen.leaf(inter, "x.example.com", not_before=now - 10 * D)
    ev = run(leaf, [inter], bundle=ec_pki.bundle, now=now)
    (f,) = pick(ev, "Expired")
    assert f.cert.role is Role.INTERMEDIATE and f.severity is Severity.CRITICAL


def test_custom_thresholds(ec_pki, run, pick, now):
    from certpolicy.policy.spec import requirements_from_spec

    req = requirements_from_spec({"expiry": {"warningBefore": "2160h", "criticalBefore": "720h"}})
    ev = run(leaf_expiring(ec_pki, now, 60 * D), [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now)
    assert pick(ev, "ExpiringSoon")[0].severity is Severity.WARNING


def test_boundaries_and_valid_until(ec_pki, run, reasons, now):
    leaf = leaf_expiring(ec_pki, now, 60 * D)
    na = leaf.cert.not_valid_after_utc
    ev = run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now)
    assert ev.findings == ()
    assert ev.valid_until == na - dt.timedelta(hours=720)  # the warning threshold comes first
    assert ev.holds_at(now) and not ev.holds_at(ev.valid_until)
    # at each instant the answer changes, and holds until the next
    ev_warn = run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=ev.valid_until)
    assert reasons(ev_warn) == ["ExpiringSoon"] and ev_warn.findings[0].severity is Severity.WARNING
    assert ev_warn.valid_until == na - dt.timedelta(hours=168)
    ev_at_not_after = run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=na)
    assert "Expired" not in reasons(ev_at_not_after)  # valid *at* notAfter
    assert ev_at_not_after.valid_until == na + dt.timedelta(microseconds=1)
    ev_after = run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=ev_at_not_after.valid_until)
    assert "Expired" in reasons(ev_after)


def test_valid_until_none_when_nothing_can_change(run):
    from certpolicy.pki.secretdata import material_from_secret
    from certpolicy.policy.evaluate import evaluate
    from certpolicy.policy.spec import Requirements

    ev = evaluate(Requirements(), material_from_secret("kubernetes.io/tls", {}), None, certgen.utcnow())
    assert ev.valid_until is None and not ev.compliant

"""EKU findings: leaf usages, missing EKU, anyExtendedKeyUsage, CA nesting, public CAs."""

from __future__ import annotations

import pytest

import certgen
from certpolicy.pki.publicroots import PublicRoots
from certpolicy.policy.findings import Role, Severity
from certpolicy.policy.spec import requirements_from_spec

MTLS = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"]})


def test_leaf_with_both_usages_is_compliant(any_pki, run, now):
    ev = run(any_pki.leaf, [any_pki.intermediate], req=MTLS, bundle=any_pki.bundle, now=now)
    assert ev.findings == () and ev.compliant


@pytest.mark.parametrize(
    ("eku", "missing"),
    [(["serverAuth"], "MissingClientAuth"), (["clientAuth"], "MissingServerAuth")],
)
def test_missing_usage(ec_pki, run, pick, now, eku, missing):
    leaf = certgen.leaf(ec_pki.intermediate, "a.example.com", eku=eku)
    ev = run(leaf, [ec_pki.intermediate], req=MTLS, bundle=ec_pki.bundle, now=now)
    (f,) = pick(ev, missing)
    assert f.severity is Severity.CRITICAL and f.cert.role is Role.LEAF
    assert eku[0] in f.message and "a.example.com" in f.message
    assert not ev.compliant and ev.worst_severity is Severity.CRITICAL


@pytest.mark.parametrize(
    ("usage", "reason"),
    [("codeSigning", "MissingCodeSigning"), ("emailProtection", "MissingEmailProtection"), ("timeStamping", "MissingTimeStamping"), ("ocspSigning", "MissingOCSPSigning"), ("serverAuth", "MissingServerAuth"), ("clientAuth", "MissingClientAuth")],
)
def test_every_usage_has_its_reason(ec_pki, run, reasons, now, usage, reason):
    req = requirements_from_spec({"extendedKeyUsages": [usage]})
    other = "emailProtection" if usage != "emailProtection" else "codeSigning"
    without = certgen.leaf(ec_pki.intermediate, "a.example.com", eku=[other])
    with_it = certgen.leaf(ec_pki.intermediate, "b.example.com", eku=[usage])
    assert reason in reasons(run(without, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now))
    assert run(with_it, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now).findings == ()


def test_no_eku_extension(ec_pki, run, pick, reasons, now):
    leaf = certgen.leaf(ec_pki.intermediate, "a.example.com", eku=None)
    ev = run(leaf, [ec_pki.intermediate], req=MTLS, bundle=ec_pki.bundle, now=now)
    assert reasons(ev) == ["NoExtendedKeyUsage"]
    assert pick(ev, "NoExtendedKeyUsage")[0].severity is Severity.WARNING
    # without EKU requirements, a missing EKU is nobody's business
    assert run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now).findings == ()


def test_any_eku_only(ec_pki, run, reasons, now):
    leaf = certgen.leaf(ec_pki.intermediate, "a.example.com", eku=["any"])
    ev = run(leaf, [ec_pki.intermediate], req=MTLS, bundle=ec_pki.bundle, now=now)
    assert reasons(ev) == ["AnyExtendedKeyUsageOnly"]
    assert "serverAuth, clientAuth" in ev.findings[0].message


def test_any_eku_next_to_the_explicit_usages_is_fine(ec_pki, run, now):
    leaf = certgen.leaf(ec_pki.intermediate, "a.example.com", eku=["serverAuth", "clientAuth", "any"])
    assert run(leaf, [ec_pki.intermediate], req=MTLS, bundle=ec_pki.bundle, now=now).findings == ()


@pytest.mark.parametrize(
    ("ca_eku", "excluded"),
    [(["serverAuth"], "clientAuth"), (["clientAuth"], "serverAuth"), (None, None), (["serverAuth", "clientAuth"], None), (["any"], None)],
)
def test_intermediate_eku_nesting(ec_pki, run, pick, now, ca_eku, excluded):
    inter = certgen.intermediate(ec_pki.root, "Constrained CA", eku=ca_eku)
    leaf = certgen.leaf(inter, "a.example.com")
    ev = run(leaf, [inter], req=MTLS, bundle=ec_pki.bundle, now=now)
    found = pick(ev, "IntermediateExcludesUsage")
    if excluded is None:
        assert found == []
    else:
        (f,) = found
        assert f.cert.role is Role.INTERMEDIATE and f.severity is Severity.CRITICAL
        assert excluded in f.message and "Constrained CA" in f.message


def test_root_eku_nesting_reported_as_root(run, pick, now):
    root = certgen.root("Server-only Root", eku=["serverAuth"])
    leaf = certgen.leaf(root, "a.example.com")
    ev = run(leaf, req=MTLS, bundle=[root.cert], now=now)
    (f,) = pick(ev, "IntermediateExcludesUsage")
    assert f.cert.role is Role.ROOT


def test_public_ca_client_auth(run, pick, now):
    """A leaf from a public CA that still has clientAuth: fine today, broken at renewal."""
    public = certgen.pki()
    roots = PublicRoots.of([public.root.cert])
    # no bundle configured: found by walking to the public root
    ev = run(public.leaf, [public.intermediate], req=MTLS, now=now, public_roots=roots)
    (f,) = pick(ev, "PublicCAClientAuth")
    assert f.severity is Severity.WARNING and "certgen Root CA" in f.message and "2026" in f.message
    # the policy's bundle *is* the public root: flagged via the anchor
    ev = run(public.leaf, [public.intermediate], req=MTLS, bundle=[public.root.cert], now=now, public_roots=roots)
    assert pick(ev, "PublicCAClientAuth")


def test_a_chain_the_bundle_verifies_never_parses_the_public_roots(ec_pki, run, pick, now):
    """Roots read from bundle files are fingerprinted at once and parsed only to place a chain
    that no bundle verified (pki/publicroots.py): ~11 ms off each operator start's first pass."""
    public = certgen.pki()
    roots = PublicRoots.from_bundles([("roots.pem", certgen.pem(public.root))])
    assert not pick(run(ec_pki.leaf, [ec_pki.intermediate], req=MTLS, bundle=ec_pki.bundle, now=now,
                        public_roots=roots), "PublicCAClientAuth")
    assert not roots.parsed
    # The policy's bundle is the public root: the anchor's fingerprint says so, still no parse.
    assert pick(run(public.leaf, [public.intermediate], req=MTLS, bundle=[public.root.cert], now=now,
                    public_roots=roots), "PublicCAClientAuth")
    assert not roots.parsed
    # No bundle: the chain is placed among the roots, which parses them.
    assert pick(run(public.leaf, [public.intermediate], req=MTLS, now=now, public_roots=roots), "PublicCAClientAuth")
    assert roots.parsed


def test_public_ca_leaf_already_without_client_auth(run, reasons, now):
    public = certgen.pki()
    leaf = certgen.leaf(public.intermediate, "renewed.example.com", eku=["serverAuth"])
    ev = run(leaf, [public.intermediate], req=MTLS, now=now, public_roots=PublicRoots.of([public.root.cert]))
    assert {"MissingClientAuth", "PublicCAClientAuth"} <= set(reasons(ev))


def test_public_ca_not_flagged_when_client_auth_not_required_or_private(ec_pki, run, pick, now):
    public = certgen.pki()
    roots = PublicRoots.of([public.root.cert])
    server_only = requirements_from_spec({"extendedKeyUsages": ["serverAuth"]})
    assert not pick(run(public.leaf, [public.intermediate], req=server_only, now=now, public_roots=roots), "PublicCAClientAuth")
    assert not pick(run(ec_pki.leaf, [ec_pki.intermediate], req=MTLS, bundle=ec_pki.bundle, now=now, public_roots=roots), "PublicCAClientAuth")

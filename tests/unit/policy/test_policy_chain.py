"""Chain findings: trusted, untrusted, incomplete, which CA anchors, the no-bundle fallback."""

from __future__ import annotations

import certgen

from certpolicy.pki.fingerprint import fingerprint
from certpolicy.policy.findings import Role, Severity


def test_anchor_is_reported(any_pki, run, now):
    ev = run(any_pki.leaf, [any_pki.intermediate], bundle=any_pki.bundle, now=now)
    assert ev.anchor_fingerprint == fingerprint(any_pki.root.cert)
    assert ev.chain_path[-1] == ev.anchor_fingerprint and ev.chain_path[0] == fingerprint(any_pki.leaf.cert)
    roles = [(e.role, e.summary.common_name) for e in ev.certificates]
    assert roles == [(Role.LEAF, "svc.example.com"), (Role.INTERMEDIATE, "certgen Intermediate CA"), (Role.ROOT, "certgen Root CA")]


def test_two_ca_bundle_names_the_right_anchor(ec_pki, run, now):
    new = certgen.pki()
    bundle = [ec_pki.root.cert, new.root.cert]
    ev = run(new.leaf, [new.intermediate], bundle=bundle, now=now)
    assert ev.anchor_fingerprint == fingerprint(new.root.cert)
    roles = {e.summary.fingerprint: e.role for e in ev.certificates}
    assert roles[fingerprint(ec_pki.root.cert)] is Role.BUNDLE_CA
    assert roles[fingerprint(new.root.cert)] is Role.ROOT


def test_private_ca_quirks_are_trusted(run, now):
    root = certgen.root("Quirky Root", key_usage=None, basic_constraints="noncritical")
    inter = certgen.intermediate(root, "Quirky Intermediate", basic_constraints="noncritical")
    leaf = certgen.leaf(inter, "q.example.com", aki=False)
    ev = run(leaf, [inter], bundle=[root.cert], now=now)
    assert ev.findings == () and ev.anchor_fingerprint == fingerprint(root.cert)


def test_untrusted(ec_pki, run, pick, now):
    other = certgen.pki()
    ev = run(other.leaf, [other.intermediate], bundle=ec_pki.bundle, now=now)
    (f,) = pick(ev, "UntrustedChain")
    assert f.severity is Severity.CRITICAL and f.cert.role is Role.LEAF
    assert ev.anchor_fingerprint is None


def test_incomplete(ec_pki, run, reasons, now):
    ev = run(ec_pki.leaf, [], bundle=ec_pki.bundle, now=now)
    assert reasons(ev) == ["IncompleteChain"]
    assert "certgen Intermediate CA" in ev.findings[0].message


def test_self_signed_leaf(ec_pki, run, reasons, now):
    leaf = certgen.leaf(None, "self.example.com")
    assert sorted(reasons(run(leaf, bundle=ec_pki.bundle, now=now))) == ["SelfSignedLeaf", "UntrustedChain"]


def test_leaf_is_ca(ec_pki, run, reasons, now):
    ev = run(ec_pki.intermediate, [], bundle=ec_pki.bundle, now=now)
    assert "LeafIsCA" in reasons(ev)


def test_non_ca_in_bundle(ec_pki, run, pick, now):
    stray = certgen.leaf(None, "stray.example.com")
    ev = run(ec_pki.leaf, [ec_pki.intermediate], bundle=[ec_pki.root.cert, stray.cert], now=now)
    (f,) = pick(ev, "NonCACertificateInBundle")
    assert f.severity is Severity.WARNING and f.cert.role is Role.BUNDLE_CA
    assert ev.anchor_fingerprint == fingerprint(ec_pki.root.cert)


def test_no_bundle_uses_the_secrets_ca_crt(ec_pki, run, now):
    ev = run(ec_pki.leaf, [ec_pki.intermediate], ca=[ec_pki.root], now=now)
    assert ev.findings == () and ev.anchor_fingerprint == fingerprint(ec_pki.root.cert)


def test_no_bundle_ca_crt_mismatch_is_a_warning(ec_pki, run, pick, now):
    other = certgen.root("Someone else's root")
    ev = run(ec_pki.leaf, [ec_pki.intermediate], ca=[other], now=now)
    (f,) = pick(ev, "IncompleteChain")  # its issuer, certgen Root CA, is nowhere
    assert f.severity is Severity.WARNING and "ca.crt" in f.message
    self_signed = certgen.leaf(None, "self.example.com")
    (g,) = pick(run(self_signed, ca=[other], now=now), "UntrustedChain")
    assert g.severity is Severity.WARNING


def test_no_bundle_no_ca_crt(ec_pki, run, reasons, now):
    ev = run(ec_pki.leaf, [ec_pki.intermediate], now=now)
    assert reasons(ev) == ["ChainNotVerified"]
    assert ev.compliant and ev.worst_severity is Severity.INFO


def test_bundle_given_ignores_ca_crt_as_intermediates(ec_pki, run, reasons, now):
    """Peers get tls.crt, not ca.crt: an intermediate only in ca.crt does not complete the chain."""
    ev = run(ec_pki.leaf, [], ca=[ec_pki.intermediate], bundle=ec_pki.bundle, now=now)
    assert "IncompleteChain" in reasons(ev)


def test_prebuilt_trust_anchors(ec_pki, run, now):
    from certpolicy.pki.chain import TrustAnchors

    ev = run(ec_pki.leaf, [ec_pki.intermediate], bundle=TrustAnchors.of(ec_pki.bundle), now=now)
    assert ev.anchor_fingerprint == fingerprint(ec_pki.root.cert)

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


# --- a certificate from a root the bundle does not hold (issue 17, item 4) -----------------------


def _assert_names_the_root(f, root) -> None:
    """The finding says, in words, that the chain ends at a root the bundle lacks, and which one."""
    assert f.severity is Severity.CRITICAL and f.cert.role is Role.LEAF
    assert "ends at a root that the policy's trust bundle does not hold" in f.message
    assert root.subject in f.message and fingerprint(root.cert) in f.message
    for jargon in ("candidates exhausted", "max depth", "intermediate", "neither in the Secret"):
        assert jargon not in f.message


def test_unknown_root_in_ca_crt(ec_pki, run, pick, reasons, now):
    """The leaf comes straight from a root shipped only in ca.crt: not 'add the missing intermediate'."""
    other = certgen.root("Someone else's root")
    leaf = certgen.leaf(other, "a.uat.example.com")
    ev = run(leaf, [], ca=[other], bundle=ec_pki.bundle, now=now)
    assert "IncompleteChain" not in reasons(ev)
    (f,) = pick(ev, "UnknownRoot")
    _assert_names_the_root(f, other)
    assert "found in the Secret's ca.crt" in f.message


def test_unknown_root_appended_to_tls_crt(ec_pki, run, pick, reasons, now):
    """The root appended to tls.crt: the verifier's 'max depth' wording never reaches the user."""
    other = certgen.root("Someone else's root")
    leaf = certgen.leaf(other, "a.uat.example.com")
    ev = run(leaf, [other], bundle=ec_pki.bundle, now=now)
    assert "UntrustedChain" not in reasons(ev)
    (f,) = pick(ev, "UnknownRoot")
    _assert_names_the_root(f, other)
    assert "found in tls.crt" in f.message


def test_unknown_root_behind_an_intermediate(ec_pki, run, pick, now):
    other_root = certgen.root("Other Root")
    inter = certgen.intermediate(other_root, "Other Intermediate")
    leaf = certgen.leaf(inter, "a.uat.example.com")
    (f,) = pick(run(leaf, [inter, other_root], bundle=ec_pki.bundle, now=now), "UnknownRoot")
    _assert_names_the_root(f, other_root)
    (g,) = pick(run(leaf, [inter], ca=[other_root], bundle=ec_pki.bundle, now=now), "UnknownRoot")
    _assert_names_the_root(g, other_root)


def test_unknown_root_with_the_bundles_name_says_re_keyed(ec_pki, run, pick, now):
    impostor = certgen.root("certgen Root CA")  # same subject as ec_pki's root, another key
    leaf = certgen.leaf(impostor, "a.uat.example.com")
    (f,) = pick(run(leaf, [impostor], bundle=ec_pki.bundle, now=now), "UnknownRoot")
    assert "same subject" in f.message and fingerprint(impostor.cert) in f.message


def test_intermediate_only_in_ca_crt_is_incomplete_and_says_so(ec_pki, run, pick, now):
    (f,) = pick(run(ec_pki.leaf, [], ca=[ec_pki.intermediate, ec_pki.root], bundle=ec_pki.bundle, now=now),
                "IncompleteChain")
    assert "certgen Intermediate CA" in f.message and "only tls.crt" in f.message

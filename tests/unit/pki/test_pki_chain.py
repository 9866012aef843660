"""Chain verification with the private-CA profile, and the diagnosis of failures."""

from __future__ import annotations

import datetime as dt

import pytest

import certgen
from certpolicy.pki.chain import TrustAnchors, as_utc, verify_chain
from certpolicy.pki.fingerprint import fingerprint


def test_trusted_chain(any_pki, now):
    r = verify_chain(any_pki.leaf.cert, [any_pki.intermediate.cert], any_pki.bundle, now)
    assert r.trusted and r.reason is None
    assert r.anchor_fingerprint == fingerprint(any_pki.root.cert)
    assert r.path == tuple(fingerprint(c.cert) for c in (any_pki.leaf, any_pki.intermediate, any_pki.root))
    assert r.anchor == any_pki.root.cert


def test_private_ca_quirks_still_verify(now):
    """A root without keyUsage, non-critical basicConstraints, a leaf without AKI: all trusted."""
    root = certgen.root("Quirky Root", key_usage=None, basic_constraints="noncritical", ski=False)
    inter = certgen.intermediate(root, "Quirky Intermediate", basic_constraints="noncritical", aki=False, ski=False)
    leaf = certgen.leaf(inter, "q.example.com", aki=False, ski=False)
    r = verify_chain(leaf.cert, [inter.cert], [root.cert], now)
    assert r.trusted, r.detail


@pytest.mark.parametrize(
    "leaf_kw",
    [
        {"dns_names": (), "ip_addresses": ["10.1.2.3"]},  # IP SANs only
        {"dns_names": ()},  # no SAN at all
        {"eku": ["serverAuth"]},  # no clientAuth: the client verifier must not care
        {"eku": None},
        {"eku": ["codeSigning"]},
    ],
)
def test_names_and_usages_do_not_affect_trust(ec_pki, now, leaf_kw):
    leaf = certgen.leaf(ec_pki.intermediate, "n.example.com", **leaf_kw)
    assert verify_chain(leaf.cert, [ec_pki.intermediate.cert], ec_pki.bundle, now).trusted


def test_incomplete_chain(ec_pki, now):
    r = verify_chain(ec_pki.leaf.cert, [], ec_pki.bundle, now)
    assert not r.trusted and r.reason == "IncompleteChain"
    assert "certgen Intermediate CA" in r.detail
    assert r.anchor_fingerprint is None and r.path == ()


def test_untrusted_other_root(ec_pki, now):
    other = certgen.pki()
    r = verify_chain(other.leaf.cert, [other.intermediate.cert], ec_pki.bundle, now)
    assert not r.trusted and r.reason == "UntrustedChain"


def test_chain_ending_at_a_self_signed_root_in_the_secret(ec_pki, now):
    other = certgen.pki()
    r = verify_chain(other.leaf.cert, [other.intermediate.cert, other.root.cert], ec_pki.bundle, now)
    assert r.reason == "UnknownRoot" and other.root.subject in r.detail


def test_self_signed_leaf_is_never_trusted_by_itself(now):
    leaf = certgen.leaf(None, "self.example.com")
    r = verify_chain(leaf.cert, [], [leaf.cert], now)  # a leaf in its own bundle
    assert not r.trusted


def test_ca_leaf_in_bundle_is_kept_out_of_its_own_store(now):
    ca = certgen.root("Lonely CA")
    r = verify_chain(ca.cert, [], [ca.cert], now)
    assert not r.trusted and "no CA" in r.detail


def test_non_ca_in_bundle_is_not_an_anchor(ec_pki, now):
    stray_leaf = certgen.leaf(None, "stray.example.com")
    ta = TrustAnchors.of([ec_pki.root.cert, stray_leaf.cert])
    assert ta.certificates == (ec_pki.root.cert,) and ta.rejected == (stray_leaf.cert,)
    child = certgen.leaf(stray_leaf, "child.example.com")
    assert not verify_chain(child.cert, [], ta, now).trusted


def test_issuer_that_is_not_a_ca(now):
    not_ca = certgen.build("Not A CA", ca=False)
    leaf = certgen.leaf(not_ca, "x.example.com")
    ca_like = certgen.root("Real Root")
    inter_posing = certgen.build("Posing Intermediate", issuer=ca_like, ca=False)
    leaf2 = certgen.leaf(inter_posing, "y.example.com")
    r = verify_chain(leaf2.cert, [inter_posing.cert], [ca_like.cert], now)
    assert not r.trusted and r.reason == "UntrustedChain" and "not a CA" in r.detail
    assert not verify_chain(leaf.cert, [], [ca_like.cert], now).trusted


def test_expired_intermediate_makes_the_chain_untrusted(ec_pki, now):
    inter = certgen.intermediate(ec_pki.root, "Expired Intermediate", not_before=now - dt.timedelta(days=30), not_after=now - dt.timedelta(days=1))
    leaf = certgen.leaf(inter, "e.example.com", not_before=now - dt.timedelta(days=2), not_after=now + dt.timedelta(days=30))
    r = verify_chain(leaf.cert, [inter.cert], ec_pki.bundle, now)
    assert r.reason == "UntrustedChain" and "expired" in r.detail


def test_sha1_leaf_is_untrusted_with_reason(now):
    root = certgen.root(key_kind="rsa2048")
    leaf = certgen.leaf(root, "sha1.example.com", key_kind="rsa2048", hash="sha1")
    r = verify_chain(leaf.cert, [], [root.cert], now)
    assert r.reason == "UntrustedChain" and "SHA-1" in r.detail


def test_weak_rsa_ca_is_untrusted(now):
    root = certgen.root("Weak Root", key_kind="rsa1024")
    leaf = certgen.leaf(root, "w.example.com")
    r = verify_chain(leaf.cert, [], [root.cert], now)
    assert r.reason == "UntrustedChain" and "2048" in r.detail


def test_rekeyed_ca_with_the_same_name(ec_pki, now):
    impostor = certgen.root("certgen Root CA")  # same subject, different key
    r = verify_chain(ec_pki.leaf.cert, [ec_pki.intermediate.cert], [impostor.cert], now)
    assert r.reason == "UntrustedChain" and "re-keyed" in r.detail


def test_rotation_bundle_names_the_anchor(ec_pki, now):
    new = certgen.pki()
    bundle = [ec_pki.root.cert, new.root.cert]
    old_r = verify_chain(ec_pki.leaf.cert, [ec_pki.intermediate.cert], bundle, now)
    new_r = verify_chain(new.leaf.cert, [new.intermediate.cert], bundle, now)
    assert old_r.anchor_fingerprint == fingerprint(ec_pki.root.cert)
    assert new_r.anchor_fingerprint == fingerprint(new.root.cert)


def test_intermediate_as_anchor(ec_pki, now):
    r = verify_chain(ec_pki.leaf.cert, [], [ec_pki.intermediate.cert], now)
    assert r.trusted and r.anchor_fingerprint == fingerprint(ec_pki.intermediate.cert)


def test_empty_bundle(ec_pki, now):
    r = verify_chain(ec_pki.leaf.cert, [ec_pki.intermediate.cert], [], now)
    assert r.reason == "UntrustedChain" and "no CA" in r.detail


def test_naive_and_other_timezones(ec_pki, now):
    naive = now.replace(tzinfo=None)
    other_tz = now.astimezone(dt.timezone(dt.timedelta(hours=5)))
    for t in (naive, other_tz):
        assert verify_chain(ec_pki.leaf.cert, [ec_pki.intermediate.cert], ec_pki.bundle, t).trusted
    assert as_utc(naive).tzinfo == dt.UTC


def test_trust_anchors_are_cached_and_digested(ec_pki):
    a = TrustAnchors.of([ec_pki.root.cert])
    b = TrustAnchors.of((ec_pki.root.cert,))
    assert a is b and a.digest.startswith("sha256:")
    assert TrustAnchors.of([ec_pki.root.cert, ec_pki.intermediate.cert]).digest != a.digest


def test_issuer_without_key_cert_sign_is_untrusted(now):
    root = certgen.root("Root")
    inter = certgen.intermediate(root, "No-keyCertSign CA", key_usage={"digital_signature": True})
    leaf = certgen.leaf(inter, "k.example.com")
    r = verify_chain(leaf.cert, [inter.cert], [root.cert], now)
    assert r.reason == "UntrustedChain" and "keyCertSign" in r.detail


def test_leaf_claiming_ca_is_untrusted(ec_pki, now):
    leaf = certgen.build("ca-leaf.example.com", issuer=ec_pki.intermediate, ca=True, dns_names=["ca-leaf.example.com"])
    r = verify_chain(leaf.cert, [ec_pki.intermediate.cert], ec_pki.bundle, now)
    assert r.reason == "UntrustedChain" and "leaf" in r.detail


def test_given_fingerprints_are_used(ec_pki, now):
    fps = (fingerprint(ec_pki.leaf.cert), fingerprint(ec_pki.intermediate.cert))
    r = verify_chain(ec_pki.leaf.cert, [ec_pki.intermediate.cert], ec_pki.bundle, now, fingerprints=fps)
    assert r.path == (*fps, fingerprint(ec_pki.root.cert))


def test_verifier_is_reused_per_instant_but_time_still_counts(ec_pki, now):
    """The verifier cache is keyed by time: a later instant sees an expired certificate."""
    leaf = certgen.leaf(ec_pki.intermediate, "soon.example.com", valid_for=dt.timedelta(days=2))
    assert verify_chain(leaf.cert, [ec_pki.intermediate.cert], ec_pki.bundle, now).trusted
    assert verify_chain(leaf.cert, [ec_pki.intermediate.cert], ec_pki.bundle, now).trusted
    assert not verify_chain(leaf.cert, [ec_pki.intermediate.cert], ec_pki.bundle, now + dt.timedelta(days=3)).trusted


def test_unknown_root_is_named_with_where_it_was_found(ec_pki, now):
    other = certgen.pki()
    r = verify_chain(other.leaf.cert, [other.intermediate.cert, other.root.cert], ec_pki.bundle, now)
    assert r.reason == "UnknownRoot" and r.root is not None
    assert r.root.fingerprint == fingerprint(other.root.cert) and r.root.found_in == "tls.crt"
    assert r.root.same_name_in_bundle  # certgen's roots share a subject
    r = verify_chain(other.leaf.cert, [other.intermediate.cert], ec_pki.bundle, now, described_by=[other.root.cert])
    assert r.reason == "UnknownRoot" and r.root.found_in == "ca.crt"


def test_the_same_bundle_tuple_is_found_by_identity_without_hashing_its_certificates(any_pki):
    """Issue 28: TrustAnchors.of(bundle) ran for every evaluation and looked the tuple up by
    content, which hashes each certificate's parsed structure (~35,000 instructions per CA). The
    same tuple object is now found by identity; an equal tuple still finds the same anchors by
    content."""
    from certpolicy.pki import cache, chain

    cache.clear_all()
    bundle = tuple(any_pki.bundle)
    first = TrustAnchors.of(bundle)
    content_lookups = chain._ANCHORS.hits + chain._ANCHORS.misses
    assert TrustAnchors.of(bundle) is first
    assert chain._ANCHORS.hits + chain._ANCHORS.misses == content_lookups  # not looked up by content
    assert TrustAnchors.of(tuple(list(bundle))) is first  # another tuple, same certificates
    assert chain._ANCHORS.hits == 1
    assert TrustAnchors.of(list(bundle)) is first and TrustAnchors.of(bundle + (any_pki.intermediate.cert,)) is not first


def test_path_certificates_are_named_by_identity_else_by_equality(any_pki, now):
    """The verifier hands back the objects it was given, so the path is named by identity (an
    equality test costs ~2 µs: cryptography compares parsed structures); an equal certificate in
    another object is still found by equality."""
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    ta = TrustAnchors.of(any_pki.bundle)
    r = verify_chain(any_pki.leaf.cert, [any_pki.intermediate.cert], ta, now)
    assert r.certificates[1] is any_pki.intermediate.cert and r.certificates[-1] is ta.certificates[0]
    assert r.path[-1] == ta.fingerprint_of(ta.certificates[0]) == fingerprint(any_pki.root.cert)
    copy = x509.load_der_x509_certificate(any_pki.root.cert.public_bytes(Encoding.DER))
    assert copy is not ta.certificates[0] and ta.fingerprint_of(copy) == fingerprint(any_pki.root.cert)

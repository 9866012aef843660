"""Recognising chains that lead to a public Web PKI root."""

from __future__ import annotations

import certgen
from certpolicy.pki.publicroots import PublicRoots, default_public_roots


def test_default_roots_load_from_certifi_or_the_system():
    roots = default_public_roots()
    assert len(roots) > 50, roots.sources
    assert roots is default_public_roots()


def test_find_anchor(now):
    public = certgen.pki()
    roots = PublicRoots.of([public.root.cert], ["test"])
    assert roots.find_anchor(public.leaf.cert, [public.intermediate.cert], now) == public.root.cert
    assert roots.is_public(public.root.cert)


def test_private_chain_is_not_public(ec_pki, now):
    public = certgen.pki()
    roots = PublicRoots.of([public.root.cert])
    assert roots.find_anchor(ec_pki.leaf.cert, [ec_pki.intermediate.cert], now) is None
    assert not roots.is_public(ec_pki.root.cert)


def test_missing_intermediate_cannot_be_placed(now):
    public = certgen.pki()
    roots = PublicRoots.of([public.root.cert])
    assert roots.find_anchor(public.leaf.cert, [], now) is None


def test_empty_roots(ec_pki, now):
    assert PublicRoots.of([]).find_anchor(ec_pki.leaf.cert, [], now) is None


# --- roots read from bundle files: fingerprinted at once, parsed when a chain must be placed ------


def _bundle(*issued: certgen.Issued, comments: bool = True) -> bytes:
    """A CA bundle file as certifi writes one: a comment before each PEM block."""
    return b"".join((b"# Issuer: " + i.cert.subject.rfc4514_string().encode() + b"\n" if comments else b"")
                    + certgen.pem(i) for i in issued)


def test_bundle_roots_answer_from_fingerprints_without_parsing(now):
    public, other = certgen.pki(), certgen.pki()
    roots = PublicRoots.from_bundles([("bundle.pem", _bundle(public.root, other.root))])
    parsed = PublicRoots.of([public.root.cert, other.root.cert])
    assert roots.fingerprints == parsed.fingerprints
    assert roots.is_public(public.root.cert) and not roots.is_public(public.intermediate.cert)
    assert not roots.parsed  # the question a verified chain asks needs no parse
    assert roots.find_anchor(public.leaf.cert, [public.intermediate.cert], now) == public.root.cert
    assert roots.parsed and len(roots) == 2 and roots.sources == ("bundle.pem",)


def test_a_block_that_is_no_ca_is_fingerprinted_but_never_an_anchor(now):
    public = certgen.pki()
    roots = PublicRoots.from_bundles([("bundle.pem", _bundle(public.root, public.leaf))])
    assert roots.fingerprints >= roots.anchors.fingerprints
    assert list(roots.anchors.certificates) == [public.root.cert]
    assert roots.find_anchor(public.leaf.cert, [public.intermediate.cert], now) == public.root.cert


def test_a_bundle_the_fast_scan_cannot_take_is_read_at_once(now):
    public = certgen.pki()
    odd = b"-----BEGIN TRUSTED CERTIFICATE-----\nnot base64\n-----END TRUSTED CERTIFICATE-----\n" + _bundle(public.root)
    roots = PublicRoots.from_bundles([("odd.pem", odd), ("empty.pem", b""), ("junk.pem", b"no certificates")])
    assert roots.is_public(public.root.cert)
    assert roots.sources == ("odd.pem",)
    assert roots.find_anchor(public.leaf.cert, [public.intermediate.cert], now) == public.root.cert


def test_the_default_roots_agree_with_parsing_every_bundle():
    from pathlib import Path

    from certpolicy.pki.load import load_certificates

    roots = default_public_roots()
    parsed = PublicRoots.of([c for s in roots.sources
                             for c in load_certificates(Path(s).resolve().read_bytes()).certificates])
    assert parsed.fingerprints <= roots.fingerprints
    assert roots.anchors.fingerprints == parsed.fingerprints

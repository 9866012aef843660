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

"""Trust bundles: merged as sets, canonical text, foreign certificates kept, garbage reported."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization

import certgen
from certpolicy.pki.bundle import contains, encode_bundle, merge, read_bundle
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.pki.issue import KeyPair, create_ca, issue_leaf

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def cas() -> dict[str, KeyPair]:
    return {
        "old": create_ca("hl7 uat CA", now=NOW),
        "new": create_ca("hl7 uat CA", now=NOW),  # same subject: ownership is never guessed from it
        "foreign": create_ca("Partner Root", now=NOW),
        "other": create_ca("Another Team CA", now=NOW),
    }


@pytest.fixture(scope="module")
def leaf(cas: dict[str, KeyPair]) -> KeyPair:
    return issue_leaf(cas["foreign"], dns_names=["pinned.example.com"], now=NOW)


def pem(*pairs: KeyPair) -> bytes:
    return b"".join(p.cert_pem for p in pairs)


def test_merge_adds_and_keeps_foreign(cas: dict[str, KeyPair]) -> None:
    existing = pem(cas["foreign"], cas["old"])
    m = merge(existing, [cas["old"].cert, cas["new"].cert], [], exclusive=False)
    assert m.changed
    assert m.fingerprints == {cas[k].fingerprint for k in ("old", "new", "foreign")}
    assert m.added == (cas["new"].fingerprint,)
    assert m.removed == ()
    assert m.kept_foreign == (cas["foreign"].fingerprint,)
    assert m.problems == ()


def test_merge_removes_only_the_retired_fingerprints_given(cas: dict[str, KeyPair]) -> None:
    existing = pem(cas["old"], cas["new"], cas["foreign"])
    m = merge(existing, [cas["new"].cert], [cas["old"].fingerprint], exclusive=False)
    assert m.fingerprints == {cas["new"].fingerprint, cas["foreign"].fingerprint}
    assert m.removed == (cas["old"].fingerprint,)
    assert m.changed


def test_exclusive_target_holds_exactly_the_policy_cas(cas: dict[str, KeyPair]) -> None:
    m = merge(pem(cas["foreign"], cas["old"]), [cas["new"].cert], [], exclusive=True)
    assert m.fingerprints == {cas["new"].fingerprint}
    assert set(m.removed) == {cas["foreign"].fingerprint, cas["old"].fingerprint}
    assert m.kept_foreign == ()


def test_same_set_in_another_rendering_is_unchanged(cas: dict[str, KeyPair]) -> None:
    """Reordered, CRLF, comments: not a change, so the operator never rewrites (and never churns pods)."""
    text = (b"# managed by someone\r\n" + cas["new"].cert_pem.replace(b"\n", b"\r\n")
            + b"\nsubject=whatever\n" + cas["old"].cert_pem)
    m = merge(text, [cas["old"].cert, cas["new"].cert], [], exclusive=False)
    assert not m.changed and m.added == () and m.removed == ()


def test_output_is_canonical_and_deterministic(cas: dict[str, KeyPair]) -> None:
    a = merge(pem(cas["foreign"]), [cas["new"].cert, cas["old"].cert], [], False).pem
    b = merge(pem(cas["foreign"], cas["old"]), [cas["old"].cert, cas["new"].cert], [], False).pem
    assert a == b == encode_bundle([cas["new"].cert, cas["foreign"].cert, cas["old"].cert])
    # Sorted by subject, then fingerprint; every block is cryptography's own PEM, nothing between.
    bundle = read_bundle(a)
    keys = [(c.subject.rfc4514_string(), fingerprint(c)) for c in bundle.certificates]
    assert [fingerprint(c) for c in bundle.certificates] == [k[1] for k in sorted(keys)]
    assert a == "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in bundle.certificates)
    assert merge(a, [], [], False).changed is False


def test_garbage_is_reported_and_never_destroys_valid_foreign_certs(cas: dict[str, KeyPair]) -> None:
    existing = (
        b"junk before\n" + cas["foreign"].cert_pem
        + b"-----BEGIN CERTIFICATE-----\nnot base64 at all!!\n-----END CERTIFICATE-----\n"
        + cas["other"].cert_pem
        + b"-----BEGIN CERTIFICATE-----\nMIIB"  # truncated paste
    )
    m = merge(existing, [cas["new"].cert], [], exclusive=False)
    assert {cas["foreign"].fingerprint, cas["other"].fingerprint} <= m.fingerprints
    assert len(m.problems) >= 2
    assert m.changed  # the write drops the garbage; the valid certificates stay


def test_binary_garbage_and_empty_targets(cas: dict[str, KeyPair]) -> None:
    for empty in (None, b"", "", b"  \n"):
        m = merge(empty, [cas["new"].cert], [], False)
        assert m.changed and m.problems == () and m.fingerprints == {cas["new"].fingerprint}
    m = merge(b"\x00\xff" * 100, [cas["new"].cert], [], False)
    assert m.fingerprints == {cas["new"].fingerprint} and m.problems


def test_der_target_is_read(cas: dict[str, KeyPair]) -> None:
    der = cas["foreign"].cert.public_bytes(serialization.Encoding.DER)
    m = merge(der, [cas["new"].cert], [], False)
    assert m.kept_foreign == (cas["foreign"].fingerprint,)


def test_foreign_leaf_is_kept_but_flagged(cas: dict[str, KeyPair], leaf: KeyPair) -> None:
    m = merge(pem(leaf, cas["old"]), [cas["old"].cert], [], exclusive=False)
    assert leaf.fingerprint in m.fingerprints
    assert m.foreign_leaves == (leaf.fingerprint,)
    assert any("not a CA" in p for p in m.problems)
    assert not m.changed
    m = merge(pem(leaf, cas["old"]), [cas["old"].cert], [], exclusive=True)
    assert leaf.fingerprint not in m.fingerprints


def test_duplicates_collapse_and_are_reported(cas: dict[str, KeyPair]) -> None:
    m = merge(pem(cas["old"], cas["old"]), [cas["old"].cert], [], False)
    assert m.fingerprints == {cas["old"].fingerprint}
    assert any("more than once" in p for p in m.problems)
    assert not m.changed  # the set did not change


def test_add_and_remove_of_the_same_ca_is_a_caller_bug(cas: dict[str, KeyPair]) -> None:
    with pytest.raises(ValueError):
        merge(None, [cas["old"].cert], [cas["old"].fingerprint], False)


def test_contains_checks_presence_and_absence(cas: dict[str, KeyPair]) -> None:
    text = pem(cas["old"], cas["new"])
    assert contains(text, [cas["old"].fingerprint, cas["new"].fingerprint])
    c = contains(text, [cas["foreign"].fingerprint], absent=[cas["old"].fingerprint])
    assert not c and c.missing == {cas["foreign"].fingerprint} and c.unexpected == {cas["old"].fingerprint}
    assert not contains(None, [cas["old"].fingerprint])
    assert contains(None, [])


def test_messages_carry_no_certificate_bodies(cas: dict[str, KeyPair], leaf: KeyPair) -> None:
    m = merge(pem(leaf) + b"-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n", [], [], False)
    for p in m.problems:
        assert "BEGIN" not in p and "MII" not in p


# ---- large bundles: never a certificate dropped silently ------------------------------------------


def test_merge_into_1700_foreign_cas_keeps_them_all():
    _k, foreign = certgen.many_cas(1700)
    ours = certgen.root("Our CA")
    merged = merge(certgen.pem(*foreign), [ours.cert], [])
    assert not merged.truncated and len(merged.fingerprints) == 1701 and merged.removed == ()


def test_a_bundle_the_loader_did_not_read_in_full_is_marked_truncated(monkeypatch):
    from certpolicy.pki import load

    monkeypatch.setattr(load, "MAX_CERTIFICATES", 100)
    _k, foreign = certgen.many_cas(150)
    merged = merge(certgen.pem(*foreign), [certgen.root("Our CA").cert], [])
    assert merged.truncated  # the driver refuses to write this (it would drop 50 certificates)
    assert read_bundle(certgen.pem(*foreign)).truncated


def test_a_leaf_signed_by_ca_1500_of_1700_verifies():
    from certpolicy.pki.chain import verify_chain

    k, cas = certgen.many_cas(1700)
    anchors = read_bundle(certgen.pem(*cas)).certificates
    assert len(anchors) == 1700
    leaf, _ = certgen.leaf_signed_by(cas[1499], k, "big.example.com")
    result = verify_chain(leaf, (), anchors, certgen.utcnow())
    assert result.trusted, result

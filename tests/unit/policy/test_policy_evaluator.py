"""Evaluation values and the Evaluator cache."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

import certgen
from certpolicy.pki.chain import TrustAnchors
from certpolicy.pki.publicroots import PublicRoots
from certpolicy.pki.secretdata import material_from_secret
from certpolicy.policy.evaluate import Evaluation, Evaluator, evaluate
from certpolicy.policy.findings import Severity
from certpolicy.policy.spec import Requirements, requirements_from_spec

REQ = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"]})


@pytest.fixture
def evaluator():
    return Evaluator(public_roots=PublicRoots.of([]))


def material(pki_or_leaf, inters=()):
    s = certgen.tls_secret(pki_or_leaf, list(inters))
    return material_from_secret(s["type"], s["data"])


def test_findings_sorted_worst_first(ec_pki, now):
    leaf = certgen.leaf(ec_pki.intermediate, "x.example.com", eku=None, dns_names=["10.0.0.1"], valid_for=dt.timedelta(days=3))
    ev = evaluate(REQ, material(leaf, [ec_pki.intermediate]), ec_pki.bundle, now, public_roots=PublicRoots.of([]))
    sev = [f.severity for f in ev.findings]
    assert sev == sorted(sev, reverse=True)
    assert ev.worst_severity is Severity.CRITICAL and ev.reasons[0] == ev.findings[0].reason


def test_evaluation_is_frozen_and_serialisable(ec_pki, now):
    import json

    ev = evaluate(REQ, material(ec_pki.leaf, [ec_pki.intermediate]), ec_pki.bundle, now)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ev.findings = ()  # type: ignore[misc]
    d = json.loads(json.dumps(ev.to_dict()))
    assert d["compliant"] is True and d["anchorFingerprint"] == ev.anchor_fingerprint
    assert [c["role"] for c in d["certificates"]] == ["leaf", "intermediate", "root"]
    assert ev.leaf.common_name == "svc.example.com"


def test_cache_hit_returns_the_same_object(evaluator, ec_pki, now):
    m = material(ec_pki.leaf, [ec_pki.intermediate])
    bundle = tuple(ec_pki.bundle)
    a = evaluator.evaluate(REQ, m, bundle, now)
    b = evaluator.evaluate(REQ, m, bundle, now + dt.timedelta(hours=1))
    assert a is b and evaluator.hits == 1


def test_cache_respects_valid_until(evaluator, ec_pki, now):
    m = material(ec_pki.leaf, [ec_pki.intermediate])
    a = evaluator.evaluate(REQ, m, ec_pki.bundle, now)
    later = evaluator.evaluate(REQ, m, ec_pki.bundle, a.valid_until)
    assert later is not a and later.findings and later.findings[0].reason == "ExpiringSoon"
    earlier = evaluator.evaluate(REQ, m, ec_pki.bundle, now)  # time going back re-evaluates too
    assert earlier.findings == ()


def test_cache_key_includes_requirements_material_and_bundle(evaluator, ec_pki, now):
    m = material(ec_pki.leaf, [ec_pki.intermediate])
    a = evaluator.evaluate(REQ, m, ec_pki.bundle, now)
    assert evaluator.evaluate(Requirements(), m, ec_pki.bundle, now) is not a
    other = certgen.pki()
    untrusted = evaluator.evaluate(REQ, m, other.bundle, now)
    assert untrusted is not a and untrusted.findings[0].reason == "UntrustedChain"
    assert evaluator.evaluate(REQ, m, None, now) is not a
    m2 = material(other.leaf, [other.intermediate])
    assert evaluator.evaluate(REQ, m2, ec_pki.bundle, now) is not a


def test_bundle_forms_share_a_digest(evaluator, ec_pki, now):
    m = material(ec_pki.leaf, [ec_pki.intermediate])
    a = evaluator.evaluate(REQ, m, list(ec_pki.bundle), now)
    assert evaluator.evaluate(REQ, m, tuple(ec_pki.bundle), now) is a
    assert evaluator.evaluate(REQ, m, TrustAnchors.of(ec_pki.bundle), now) is a


def test_naive_now(evaluator, ec_pki, now):
    m = material(ec_pki.leaf, [ec_pki.intermediate])
    assert evaluator.evaluate(REQ, m, ec_pki.bundle, now.replace(tzinfo=None)).compliant


def test_cache_is_bounded(ec_pki, now):
    ev = Evaluator(max_entries=2, public_roots=PublicRoots.of([]))
    ms = [material(certgen.leaf(ec_pki.intermediate, f"n{i}.example.com"), [ec_pki.intermediate]) for i in range(4)]
    for m in ms:
        ev.evaluate(REQ, m, ec_pki.bundle, now)
    assert len(ev._cache) == 2


def test_a_pass_larger_than_the_bound_still_hits_on_the_next_pass(ec_pki, now):
    """FIFO under a scan larger than its bound hits nothing: with a fixed bound, every pass over
    more Secrets than that re-verified every chain (100,000 Secrets: 18-68 s per Secret change)."""
    ev = Evaluator(max_entries=4, public_roots=PublicRoots.of([]))
    ms = [material(certgen.leaf(ec_pki.intermediate, f"n{i}.example.com"), [ec_pki.intermediate]) for i in range(10)]
    other = requirements_from_spec({"extendedKeyUsages": ["serverAuth"]})
    ev.evaluate_many(REQ, ms, ec_pki.bundle, now)
    ev.evaluate_many(other, ms[:6], ec_pki.bundle, now)
    misses = ev.misses
    ev.evaluate_many(REQ, ms, ec_pki.bundle, now)
    ev.evaluate_many(other, ms[:6], ec_pki.bundle, now)
    assert ev.misses == misses and ev.hits == 16, "the second pass of both policies must be all hits"


def test_two_policies_with_the_same_requirements_each_size_the_caches(ec_pki, now):
    """Two teams' policies, identical requirements, different Secrets: sized by requirements
    alone, the caches held one team's batch, and every pass of both missed on every Secret."""
    ev = Evaluator(max_entries=4, public_roots=PublicRoots.of([]))
    ms = [material(certgen.leaf(ec_pki.intermediate, f"t{i}.example.com"), [ec_pki.intermediate]) for i in range(12)]
    team_a, team_b = ms[:6], ms[6:]
    ev.evaluate_many(REQ, team_a, ec_pki.bundle, now, batch="team-a")
    ev.evaluate_many(REQ, team_b, ec_pki.bundle, now, batch="team-b")
    misses = ev.misses
    ev.evaluate_many(REQ, team_a, ec_pki.bundle, now, batch="team-a")
    ev.evaluate_many(REQ, team_b, ec_pki.bundle, now, batch="team-b")
    assert ev.misses == misses and ev.hits == 12, "the second pass of both policies must be all hits"
    ev.forget_batch("team-b")  # deleted: no longer held for
    assert set(ev._batches) == {"team-a"}  # noqa: SLF001


def test_a_few_secrets_judged_ahead_of_a_pass_do_not_size_the_caches(ec_pki, now):
    """A pass judges the Secrets whose change woke it before its whole selection
    (``whole=False``): that batch of one is not what the caches must hold, so the sizes recorded
    per requirements stay those of the whole selections."""
    ev = Evaluator(max_entries=4, public_roots=PublicRoots.of([]))
    ms = [material(certgen.leaf(ec_pki.intermediate, f"a{i}.example.com"), [ec_pki.intermediate]) for i in range(6)]
    ev.evaluate_many(REQ, ms, ec_pki.bundle, now)
    ev.evaluate_many(REQ, ms[:1], ec_pki.bundle, now, whole=False)
    assert ev._batches == {REQ: 6}
    ev.evaluate_many(REQ, ms[:1], ec_pki.bundle, now)
    assert ev._batches == {REQ: 1}


def test_internal_errors_become_findings_and_are_logged(ec_pki, now, monkeypatch, caplog):
    import certpolicy.policy.evaluate as mod

    def boom(*a, **k):
        raise RuntimeError("bug")

    monkeypatch.setattr(mod, "check_names", boom)
    ev = evaluate(REQ, material(ec_pki.leaf, [ec_pki.intermediate]), ec_pki.bundle, now, public_roots=PublicRoots.of([]))
    (f,) = [f for f in ev.findings if f.reason == "CheckFailed"]
    assert "SAN" in f.message and "RuntimeError" in f.message and f.severity is Severity.WARNING
    logged = [r for r in caplog.records if r.name == "certpolicy.policy.evaluate" and "EKU and SAN" in r.getMessage()]
    assert logged and logged[0].exc_info and "bug" in str(logged[0].exc_info[1]), "a bug must never be silent"


def test_compliant_ignores_info(ec_pki, now):
    ev = evaluate(REQ, material(ec_pki.leaf, [ec_pki.intermediate]), None, now, public_roots=PublicRoots.of([]))
    assert ev.findings and ev.compliant and ev.worst_severity is Severity.INFO
    assert isinstance(ev, Evaluation)


def test_retain_caches_forgets_what_is_no_longer_live_and_keeps_the_rest(ec_pki, now):
    from certpolicy.pki import inspect as pki_inspect
    from certpolicy.pki import load as pki_load
    from certpolicy.pki import secretdata
    from certpolicy.policy.evaluate import retain_caches

    ev = Evaluator(public_roots=PublicRoots.of([]))
    kept = material(ec_pki.leaf, [ec_pki.intermediate])
    gone_leaf = certgen.leaf(ec_pki.intermediate, "gone.example.com")
    gone = material(gone_leaf, [ec_pki.intermediate])
    first = ev.evaluate(REQ, kept, ec_pki.bundle, now)
    ev.evaluate(REQ, gone, ec_pki.bundle, now)
    gone_fp = gone.fingerprints[0]
    assert gone_fp in pki_inspect._SUMMARIES and gone.content_digest in secretdata._MATERIALS

    dropped = retain_caches([kept], [ev])

    assert dropped >= 4  # at least: parsed leaf, its fingerprint, summary, material, evaluation
    assert gone_fp not in pki_inspect._SUMMARIES
    assert gone.content_digest not in secretdata._MATERIALS
    assert all(fp != gone_fp for _, fp in pki_load._PARSED._data.values())
    assert kept.fingerprints[0] in pki_inspect._SUMMARIES
    hits = ev.hits
    assert ev.evaluate(REQ, kept, ec_pki.bundle, now) is first and ev.hits == hits + 1
    # What was dropped is simply recomputed.
    assert ev.evaluate(REQ, gone, ec_pki.bundle, now).compliant


def test_held_evaluations_share_their_ca_entries_and_keep_no_leaf_checks(ec_pki, now):
    """The inventory holds an evaluation per selected Secret: the entries of the CAs every one of
    them considers are one object each, and nothing per leaf is cached beside the evaluation."""
    from certpolicy.policy import evaluate as engine

    leaves = [certgen.leaf(ec_pki.intermediate, f"s{i}.example.com") for i in range(3)]
    checks_before = len(engine._CHECKS)  # noqa: SLF001
    evs = [evaluate(REQ, material(leaf, [ec_pki.intermediate]), ec_pki.bundle, now, public_roots=PublicRoots.of([]))
           for leaf in leaves]
    assert all(ev.compliant for ev in evs)
    assert len({ev.leaf.fingerprint for ev in evs}) == 3
    cas = [[e for e in ev.certificates if e.summary is not ev.leaf] for ev in evs]
    assert len(cas[0]) >= 2
    for other in cas[1:]:
        assert [e.summary.fingerprint for e in other] == [e.summary.fingerprint for e in cas[0]]
        assert all(a is b for a, b in zip(other, cas[0], strict=True))
    leaf_fps = {ev.leaf.fingerprint for ev in evs}
    assert not any(key[1] in leaf_fps for key in list(engine._CHECKS._data))  # noqa: SLF001
    assert len(engine._CHECKS) - checks_before <= len(cas[0])  # noqa: SLF001 - the CAs' only


def test_the_leaf_issuer_is_named_by_its_verified_path(ec_pki, now):
    """The renewal baseline records each leaf's issuer name; the verified path names it through
    the issuing CA's summary (computed once per CA) instead of a re-parse of every leaf."""
    from certpolicy.pki.inspect import summarize
    from certpolicy.policy.renewal import baseline_of

    leaf = certgen.leaf(ec_pki.intermediate, "issuer.example.com")
    ev = evaluate(REQ, material(leaf, [ec_pki.intermediate]), ec_pki.bundle, now, public_roots=PublicRoots.of([]))
    assert ev.anchor_fingerprint is not None
    assert ev.leaf_issuer == summarize(leaf.cert).issuer == summarize(ec_pki.intermediate.cert).subject
    assert baseline_of(leaf.cert, ev.anchor_fingerprint, ev.leaf_issuer) == baseline_of(leaf.cert, ev.anchor_fingerprint)
    untrusted = evaluate(REQ, material(leaf, [ec_pki.intermediate]), None, now, public_roots=PublicRoots.of([]))
    assert untrusted.anchor_fingerprint is None and untrusted.leaf_issuer is None

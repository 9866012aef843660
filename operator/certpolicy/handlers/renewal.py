"""The renewal guard's stage: compare each selected Secret's leaf with its baseline, keep the baselines.

After the evaluation, before the report: a regression becomes a finding of the Secret's
evaluation, so it reaches the status's violations, the Secret's Warning event (its reason is the
event's reason) and the metrics through the same path as every other finding.

The rules, per selected Secret (see ``docs/renewal-guard.md``):

* no baseline yet (first sight, also after the guard was turned on): the leaf becomes the
  baseline; never a regression;
* the same leaf: nothing to compare (when its chain now ends at another anchor, because the
  bundle changed, that anchor is recorded: it is no renewal);
* a new leaf without regression (reasons in ``spec.requirements.renewal.ignore`` do not count,
  nor an anchor change between two of the policy's own CAs, which its CA rotation makes on
  purpose): it becomes the baseline;
* a new leaf with a regression: findings; the baseline stays, until a person accepts the new leaf
  with the ``certpolicy.io/renewal-accepted`` annotation naming exactly its SHA-256 (the operator
  reads the annotation, never writes the Secret), or a later leaf is no regression against it.

A leaf whose extensions cannot be parsed changes nothing (the evaluation reports it). Entries of
Secrets the policy no longer selects are dropped; ``guard: false`` drops all of the policy's.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from certpolicy.handlers.context import PassContext
from certpolicy.handlers.problems import Problem
from certpolicy.inventory.records import RENEWAL_ACCEPTED_ANNOTATION, SecretRecord
from certpolicy.kube.baselines import MAX_SHARD_BYTES, BaselineShards, BaselinesUnavailable
from certpolicy.kube.writegate import NotLeader
from certpolicy.policy.findings import CertRef, Finding, Role
from certpolicy.policy.renewal import CHANGED_ANCHOR, LeafBaseline, baseline_of, plain_fingerprint, regressions
from certpolicy.policy.report import SecretResult
from certpolicy.policy.spec import renewal_guard_from_spec

log = logging.getLogger("certpolicy.renewal")


def renewal_stage(ctx: PassContext, results: list[SecretResult],
                  records: Mapping[tuple[str, str], SecretRecord], *, record: bool = True) -> list[SecretResult]:
    """``results`` with each Secret's renewal regressions added to its evaluation; keeps the
    policy's baselines (read once per process, written when they changed). ``record`` False:
    compare only, for some of the selected Secrets ahead of the pass that records them all."""
    guard = renewal_guard_from_spec(ctx.spec)  # already validated with the requirements
    memory = ctx.memory
    store: BaselineShards | None = memory.baselines
    try:
        if store is None or store.owner != ctx.policy:
            store = memory.baselines = BaselineShards.load(ctx.raw, ctx.policy, ctx.namespace)
        if not guard.enabled:
            if record:
                store.clear()
                _save(ctx, store)
            return results
        own = _own_anchors(ctx)
        out: list[SecretResult] = []
        full = 0
        for result in results:
            rec = records[(result.namespace, result.name)]
            found, new = _compare(store, rec, result, guard.ignore, own)
            if found:
                out.append(dataclasses.replace(result, evaluation=dataclasses.replace(
                    result.evaluation, findings=tuple(sorted(result.evaluation.findings + tuple(found),
                                                             key=Finding.sort_key)))))
                continue
            if record and new is not None and not store.put(rec.namespace, rec.name, new):
                full += 1
            out.append(result)
        if not record:
            return out
        store.retain(records.keys())
        if full:
            ctx.out.problems.append(Problem("RenewalBaselineFull", f"{full} selected Secrets have no renewal "
                                            f"baseline: their shards reached {MAX_SHARD_BYTES // 1024} KiB"))
        if store.unreadable:
            # Their current leaves were not compared with anything this pass (and become the baselines):
            # a requirement not checked, so Compliant is Unknown of this reason, and the Secrets are named.
            named = ", ".join(store.damaged[:5]) + (", ..." if len(store.damaged) > 5 else "")
            ctx.out.problems.append(Problem("RenewalBaselineUnreadable", f"{store.unreadable} stored renewal "
                                            f"baselines were damaged ({named}): their current leaves were not "
                                            "compared and are taken as the baselines afresh"))
            store.unreadable, store.damaged = 0, []
        _save(ctx, store)
        return out
    except (BaselinesUnavailable, NotLeader) as e:
        memory.baselines = None  # read afresh next pass
        ctx.out.problems.append(Problem("RenewalBaselineUnavailable", f"{e}; renewals are not compared "
                                        "until the baselines can be read and written"))
        return results


def _compare(store: BaselineShards, rec: SecretRecord, result: SecretResult, ignore: frozenset[str],
             own: frozenset[str]) -> tuple[list[Finding], LeafBaseline | None]:
    """(regressions, the baseline to record or None)."""
    leaf, summary, evaluation = rec.material.leaf, result.evaluation.leaf, result.evaluation
    if leaf is None or summary is None or summary.extension_error:
        return [], None
    stored = store.get(rec.namespace, rec.name)
    anchor = plain_fingerprint(evaluation.anchor_fingerprint) if evaluation.anchor_fingerprint else None
    if stored is not None and stored.sha256 == plain_fingerprint(summary.fingerprint) and anchor in (None, stored.anchor):
        return [], None  # the same leaf, nothing new (the common case: no LeafBaseline built)
    try:
        new = baseline_of(leaf, anchor, evaluation.leaf_issuer)
    except ValueError:
        return [], None
    if stored is None or stored.sha256 == new.sha256:
        return [], new
    if stored.anchor in own and new.anchor in own:
        ignore = ignore | {CHANGED_ANCHOR}
    found = regressions(stored, new, ignore=ignore)
    if not found:
        return [], new
    if rec.renewal_accepted is not None and plain_fingerprint(rec.renewal_accepted) == new.sha256:
        log.info("Secret %s/%s: renewal regression accepted by annotation (%s)", rec.namespace, rec.name,
                 ", ".join(f.reason for f in found))
        return [], new
    ref = CertRef.of(Role.LEAF, summary)
    hint = f" (to accept it, annotate the Secret {RENEWAL_ACCEPTED_ANNOTATION}={new.sha256})"
    return [dataclasses.replace(f, message=f.message + hint, cert=ref) for f in found], None


def _own_anchors(ctx: PassContext) -> frozenset[str]:
    """The SHA-256 of every CA the policy itself has had (``status.ca.history``, as this pass
    recorded it): leaves moving between them move with the policy's own rotation."""
    ca: Any = ctx.out.status.get("ca") or ctx.status.get("ca") or {}
    history: Iterable[Any] = ca.get("history") or () if isinstance(ca, Mapping) else ()
    return frozenset(plain_fingerprint(h["fingerprint"]) for h in history
                     if isinstance(h, Mapping) and isinstance(h.get("fingerprint"), str))


def _save(ctx: PassContext, store: BaselineShards) -> None:
    writes = store.save(ctx.raw)
    if writes:
        log.debug("policy %s: %d renewal baseline shard writes (%d entries)", ctx.name, writes, store.size)

"""Driving the five-step CA rotation: observe the cluster, ask the pure machine, perform its actions.

The machine (``certpolicy.rotation``) decides; this module only reads and writes. Every
observation is a fresh read from the API in this pass (the CA Secrets through the pass's CA store,
``ctx.cas``, which also makes every CA Secret write; each bundle target read back on its own; the
leaves in scope), so progress never rests on "the write succeeded". Actions are idempotent:
a restarted operator repeats the last decision's actions harmlessly (create-only CA Secrets,
merges that add what is present already, re-issues only of leaves still on the old CA).
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509
from kubernetes.client import ApiException

from certpolicy.environment import PROBE_RETRY
from certpolicy.handlers.bundles import TargetEntry, distribute, target_fingerprints
from certpolicy.handlers.ca import CA_MISSING, CASecret, ca_missing, ensure_ca, generate_ca
from certpolicy.handlers.castore import IssuerCASecret
from certpolicy.handlers.context import PassContext
from certpolicy.handlers.issuance import RateLimiter, issue_all
from certpolicy.handlers.probes import submit_probes
from certpolicy.handlers.problems import Problem
from certpolicy.inventory.bundletargets import target_ids
from certpolicy.inventory.observation import TargetReading, build_observation
from certpolicy.kube import managed
from certpolicy.kube.certmanager import MAX_CERTIFICATES, IssuedCertificates, is_ready, list_issued, request_reissue
from certpolicy.kube.managed import NotManaged
from certpolicy.kube.rawapi import api_error_text
from certpolicy.metrics import COLLECTOR
from certpolicy.pki.fingerprint import short
from certpolicy.policy.cahistory import history_certificates
from certpolicy.policy.spec import PolicySpecError
from certpolicy.rotation import (
    CAInfo,
    CARef,
    Decision,
    DeleteCASecret,
    EmitEvent,
    GenerateNewCA,
    Observation,
    PromoteNewCA,
    ReissueLeaf,
    RestartWorkload,
    RotationSettings,
    RotationState,
    RunProbes,
    StateError,
    UpdateBundles,
    decide,
    secrets_to_observe,
)
from certpolicy.timestamps import parse_rfc3339, rfc3339

log = logging.getLogger("certpolicy.rotation")


class CAUnavailable(Exception):
    """A CA the decision refers to is no longer in its Secret: the action waits for the next pass,
    where the machine observes what the Secret holds now."""

    def __init__(self, ref: CARef) -> None:
        super().__init__(f"Secret {ref.secret_name} no longer holds CA {short(ref.fingerprint)}")


@dataclass(frozen=True)
class RotationStage:
    """What the rest of the pass needs from the rotation stage."""

    ca: CASecret | None  # the policy's CA after this pass's actions (after a promotion: the new one)
    next_ca: CASecret | None = None  # the rotation's new CA while it is trusted but not yet active
    retired: frozenset[str] = frozenset()
    running: bool = False  # bundles and leaves move only through the rotation's own actions


def rotation_stage(ctx: PassContext, *, ca: CASecret | None) -> RotationStage | None:
    """Observe, decide, act. None when the rotation settings are invalid (the pass stops there).

    Without a usable CA there is nothing to rotate, except when its Secret is gone (CAMissing):
    then a rotation replaces it, or the one already running goes on."""
    try:
        state = RotationState.from_dict(ctx.status.get("rotation"))
    except StateError as e:
        state = RotationState()
        ctx.out.problems.append(Problem("RotationStateUnreadable", f"status.rotation was reset: {e}"))
    if ca is None and not ca_missing(ctx):
        return RotationStage(None)
    try:
        settings = replace(RotationSettings.from_spec(ctx.spec), probe_retry=PROBE_RETRY.delta())
    except PolicySpecError as e:
        ctx.out.problems.append(Problem("RotationSettingsInvalid", str(e)))
        return None
    try:  # the Certificates matter from step 3 on; a rotation never reaches it in the decision that starts it
        issued = issuer_certificates(ctx) if state.current is not None else None
    except ApiException as e:  # unread, the rotation could not tell which Certificates are still on the old CA
        ctx.out.problems.append(Problem("IssuerCertificatesUnreadable", f"listing the Certificates of the Issuer "
                                                                        f"failed: {api_error_text(e)}; retried"))
        ctx.out.wake_by(ctx.now + PROBE_RETRY.delta())
        return None
    obs, pairs = observe(ctx, state=state, settings=settings, issued=issued)
    decision = decide(state, obs, settings, ctx.now)
    perform(ctx, decision, pairs=pairs, certificates=issued)
    ctx.out.status["rotation"] = decision.state.to_dict()
    ctx.out.conditions.append(decision.condition)
    ctx.out.wake_by(decision.next_wake)
    current = decision.state.current
    COLLECTOR.set_rotation_step(ctx.name, current.step if current else 0, decision.state.history)
    if any(isinstance(a, PromoteNewCA) for a in decision.actions):
        ca = ensure_ca(ctx)  # it holds the new CA now
        if ca is not None:  # a lost CA is replaced from this pass on
            ctx.out.problems = [p for p in ctx.out.problems if p.reason != CA_MISSING]
    next_ca = None
    if current is not None and current.new_ca and current.new_ca_secret_name in pairs:
        next_ca = pairs[current.new_ca_secret_name]
    return RotationStage(ca, next_ca, frozenset(decision.state.retired_fingerprints()), current is not None)


# ---- observation ------------------------------------------------------------------------------------

def issuer_certificates(ctx: PassContext) -> IssuedCertificates | None:
    """With ``spec.ca.certManager``: the Certificates whose issuerRef names the Issuer, by their
    Secret, one bounded list per pass (None without the field). A capped list is a problem: the
    Certificates not seen would be left on the old CA."""
    if not isinstance(ctx.cas, IssuerCASecret):
        return None
    issued = list_issued(ctx.raw, ctx.cas.issuer)
    if issued.capped:
        ctx.out.problems.append(Problem("IssuerCertificatesCapped",
                                        f"more than {MAX_CERTIFICATES} Certificates were listed for {ctx.cas.issuer}; "
                                        "only those seen are re-issued and waited for"))
    return issued


def observe(ctx: PassContext, *, state: RotationState, settings: RotationSettings,
            issued: IssuedCertificates | None = None) -> tuple[Observation, dict[str, CASecret]]:
    """A fresh read of everything the machine decides on: CA Secrets, each bundle target read back
    on its own (its truststore passwords read through the pass, once), the leaves in scope; put
    together by the builder the rotation plan uses too (``inventory/observation.py``)."""
    pairs: dict[str, CASecret] = {}
    cas: dict[str, CAInfo | None] = {}
    absent: set[str] = set()
    for name in secrets_to_observe(state, settings):
        pair, problem = ctx.cas.load(name)
        if pair is not None:
            pairs[name] = pair
            cas[name] = CAInfo(pair.fingerprint, pair.key_pair.cert.not_valid_after_utc)
        else:
            cas[name] = None
            absent |= {name} if problem is None else set()
    entries: dict[int, TargetEntry] = {}

    def read_target(spec: Mapping[str, Any], namespace: str) -> TargetReading:
        entry = entries.get(id(spec))
        if entry is None:
            entry = entries[id(spec)] = TargetEntry.read(ctx.passwords, spec)
        fps, primary = target_fingerprints(ctx.raw, entry, namespace, ctx.name)
        return TargetReading(fps, primary, bool(entry.stores))

    obs = build_observation(ctx.inventory, ctx.spec, ctx.status, ctx.annotations, ctx.now, settings, cas=cas,
                            absent=absent, ca_certs=[p.key_pair.cert for p in pairs.values()],
                            read_target=read_target, probe_results=ctx.memory.rotation.drain(),
                            issuer_leaves=None if issued is None else
                            {leaf: is_ready(cert) for leaf, cert in issued.by_secret.items()})
    return obs, pairs


# ---- actions ----------------------------------------------------------------------------------------

def perform(ctx: PassContext, decision: Decision, *, pairs: dict[str, CASecret],
            certificates: IssuedCertificates | None = None) -> None:
    """Carry out the decision's actions in order; stop at the first failure (observed again next pass)."""
    name = ctx.name
    memory = ctx.memory.rotation

    def pair_for(ref: CARef) -> CASecret:
        pair = pairs.get(ref.secret_name)
        if pair is None or pair.fingerprint != ref.fingerprint:
            pair, _ = ctx.cas.load(ref.secret_name)  # as this pass wrote it, or read now
            if pair is not None:
                pairs[ref.secret_name] = pair
        if pair is None or pair.fingerprint != ref.fingerprint:
            raise CAUnavailable(ref)
        return pair

    kept: dict[str, x509.Certificate] = {}  # the history's certificates, parsed on first need

    def cert_for(ref: CARef) -> x509.Certificate:
        """A CA's certificate (what bundles and served-leaf checks need): from its Secret, or,
        for a CA whose Secret is gone, from the history."""
        try:
            return pair_for(ref).key_pair.cert
        except CAUnavailable:
            if not kept:
                kept.update(history_certificates((ctx.status.get("ca") or {}).get("history")))
            if ref.fingerprint not in kept:
                raise
            return kept[ref.fingerprint]

    for action in decision.actions:
        try:
            if isinstance(action, EmitEvent):
                ctx.policy_event(action.type, action.reason, action.message, [action.reason, action.message])
            elif isinstance(action, GenerateNewCA):
                if ctx.cas.object(action.secret_name) is None:  # create-only: the first one is kept
                    ctx.cas.create(action.secret_name, generate_ca(ctx), rotation_id=action.rotation_id)
            elif isinstance(action, UpdateBundles):
                certs = [cert_for(ref) for ref in action.add]
                wanted = set(action.targets)
                entries = [e for e in ctx.spec.get("trustBundles") or ()
                           if any(t[0] in wanted for t in target_ids(ctx.inventory, [e]))]
                bundles = distribute(ctx.raw, ctx.inventory, ctx.policy, entries, trusted=certs,
                                     retired=set(action.remove), primary=action.primary, only=wanted,
                                     passwords=ctx.passwords)
                ctx.out.problems += bundles.problems
            elif isinstance(action, RunProbes):
                pair = pair_for(action.ca)
                submit_probes(action.probes, pair, memory, ctx.wake,
                              verify_served=[cert_for(r) for r in action.verify_served])
            elif isinstance(action, PromoteNewCA):
                current, _ = ctx.cas.load(action.ca_secret_name)
                if current is None or current.fingerprint != action.new.fingerprint:
                    ctx.cas.promote(action.ca_secret_name, pair_for(action.new),
                                    old_fingerprint=action.old_fingerprint, keep_old_as=action.retired_secret_name)
            elif isinstance(action, ReissueLeaf) and isinstance(ctx.cas, IssuerCASecret):
                certificate = (certificates.by_secret if certificates else {}).get(action.leaf)
                if certificate is not None:  # cmctl renew: cert-manager issues from the Issuer's new CA
                    request_reissue(ctx.raw, certificate, ctx.now,
                                    f"CertificatePolicy {name}: CA rotation re-issues from the new CA "
                                    f"{short(action.ca.fingerprint)}")
            elif isinstance(action, ReissueLeaf):
                pair = pair_for(action.ca)
                leaf_ns, leaf_name = action.leaf.split("/", 1)
                issued = issue_all(ctx, items=ctx.spec.get("issuance") or (), issuer=pair,
                                   trusted=[pair.key_pair.cert, *[p.key_pair.cert for p in pairs.values()]],
                                   limiter=RateLimiter(10**6), only_for={(leaf_ns, leaf_name)})
                ctx.out.problems += issued.problems
            elif isinstance(action, RestartWorkload):
                restart_workload(ctx, action)
            elif isinstance(action, DeleteCASecret):
                ctx.cas.delete(action.secret_name, action.fingerprint)
        except (ApiException, NotManaged, CAUnavailable) as e:
            detail = f"HTTP {e.status}" if isinstance(e, ApiException) else str(e)
            ctx.out.problems.append(Problem("RotationActionFailed", f"{action.kind} failed: {detail[:300]}; "
                                                                    "it is retried on the next pass"))
            log.warning("policy %s: rotation action %s failed: %s", name, action.kind, detail[:300])
            break


RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
#: Pod template annotation: which policy's rotation step last restarted this owner.
RESTARTED_FOR = "certpolicy.io/restarted-for"


def restart_annotations(stamp: str, done_for: str) -> dict[str, str]:
    """The two pod-template annotations a restart sets, and nothing else (the admission policy on
    the operator's own writes allows exactly these two)."""
    return {RESTARTED_AT: stamp, RESTARTED_FOR: done_for}


def restart_patch(stamp: str, done_for: str) -> dict[str, Any]:
    """The whole body of a restart, as ``managed.restart_workload`` sends it."""
    return managed.restart_body(restart_annotations(stamp, done_for))


def restart_workload(ctx: PassContext, action: RestartWorkload) -> bool:
    """``kubectl rollout restart``: stamp the pod template with ``kubectl.kubernetes.io/restartedAt``.

    The same patch sets :data:`RESTARTED_FOR` to ``<policy>/<rotation>:<step>``: the record, on the
    owner itself, that this step of this rotation restarted it. Skipped (False) when that record is
    there already (a decision repeated after its status write was lost: the machine re-derives a
    *later* ``not_before`` then, so the stamp alone would not stop a second restart), when the
    stamp says a restart began after ``action.not_before``, or when the owner is gone (404:
    nothing left to restart). The stamp is whole seconds like kubectl's, so that test is strict: a
    stamp in the same second as ``not_before`` restarts again rather than risk a Pod that started
    too early.
    """
    kind, ns, name = action.owner.split("/", 2)
    try:
        obj = ctx.raw.get(managed.workload_path(kind, ns, name))
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    stamp = (((obj.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("annotations") or {}
    try:
        previous = parse_rfc3339(str(stamp.get(RESTARTED_AT, "")), require_zone=True)
    except ValueError:
        previous = None
    done_for = f"{ctx.name}/{action.rotation_id}:{action.step}"
    if stamp.get(RESTARTED_FOR) == done_for:
        return False
    if previous is not None and previous.tzinfo is not None and previous > action.not_before:
        return False
    # A Pod's startTime has whole seconds, and the rotation waits for Pods that started after
    # ``not_before``: restarted in that same second, the new Pod would look too early for ever
    # (an owner is restarted once per step). So restart from the next whole second on (< 1 s).
    ready = action.not_before.replace(microsecond=0) + dt.timedelta(seconds=1)
    wait = (ready - dt.datetime.now(dt.UTC)).total_seconds()
    if 0 < wait <= 1:
        time.sleep(wait)
    now = max(ctx.now, dt.datetime.now(dt.UTC))
    managed.restart_workload(ctx.raw, kind, ns, name, restart_annotations(rfc3339(now), done_for))
    return True

"""The five-step CA rotation as a pure function: (recorded state, observation, settings, now) →
(next state, actions, Rotating condition, next wake-up).

The driver loops: observe → :func:`decide` → perform the actions in order → write
``decision.state.to_dict()`` to ``status.rotation`` and the condition → repeat (on a timer at
``next_wake``, and whenever a watched object changes). Execution is at-least-once: a crash can
drop the status write, or the tail of the actions, at any point. Hence:

* every action is idempotent (see :mod:`certpolicy.rotation.actions`);
* progress is re-derived from observations, never from "the write succeeded": a step that
  *writes* (1, 5, rollback) is finished only when a later observation shows every target right,
  and a promotion the state forgot is recognised from ``spec.ca.secretName`` holding the new CA;
* the new CA is generated create-only into a Secret named after the rotation id, so a repeated
  decision finds the first CA instead of making a second one.

Two invariants are kept. On API objects: every in-scope leaf chains to a CA present in every
bundle target — nothing that creates leaves on the new CA (promotion, re-issue) is asked for unless
the same observation shows every target holding old *and* new, and nothing that removes a CA from a
target is asked for unless the same observation shows no leaf chaining to it. At the workload
level, which is what an outage is made of: every leaf a workload *presents* is trusted by the
bundle each of its peers *has loaded*. Workloads load files with a lag, and some only at start,
so the machine also waits for evidence that they hold what the API holds:

* step 2 → 3: ``propagationDelay`` after every target was verified, and every Pod that loads a
  bundle only at start (subPath, env, opt-in annotation) started after that;
* step 4 → 5: ``leafPropagationDelay`` after the *last* leaf moved to the new CA (instant kept in
  status), every Pod that takes a leaf only at start started after that, and every probe endpoint
  accepts a client certificate from the new CA and serves a chain to the new CA or to a third one
  (a partner's public or own CA), never to the old CA. Step 4 is never left in the decision that
  entered it.

A CA whose Secret was deleted (``Observation.lost_ca``) is replaced the same way: its certificate
stays in the bundles (the driver reads it from ``status.ca.history``), and until the promotion
the missing Secret is what the rotation expects rather than a reason to hold.

tests/unit/rotation simulate both with crashes injected everywhere and workloads that lag.

The machine never reads the clock: ``now`` is an input, ``next_wake`` an output.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from certpolicy.conditions import ROTATING, Condition
from certpolicy.pki.fingerprint import short
from certpolicy.policy.durations import format_duration
from certpolicy.rotation.actions import (
    Action,
    CARef,
    DeleteCASecret,
    EmitEvent,
    GenerateNewCA,
    PromoteNewCA,
    ReissueLeaf,
    RestartWorkload,
    RunProbes,
    UpdateBundles,
)
from certpolicy.rotation.model import Leaf, Observation, PodUse, RotationSettings
from certpolicy.rotation.state import (
    ABORTED,
    ADD_NEW_CA,
    AWAIT_LEAVES,
    COMPLETED,
    ISSUE_FROM_NEW_CA,
    MAX_HISTORY,
    MAX_NAMED_LEAVES,
    MAX_RESTARTS,
    REMOVE_OLD_CA,
    TRIGGER_REQUEST,
    VERIFY_BUNDLES,
    HistoryEntry,
    PendingReissue,
    ProbeRecord,
    Rotation,
    RotationState,
    step_name,
)
from certpolicy.rotation.triggers import (
    FORCE_ANNOTATION,
    ROTATE_ANNOTATION,
    detect,
    expiry_due,
    expiry_id,
    new_ca_secret_name,
    outgoing_ca,
    request_id,
    retired_ca_secret_name,
    usable_supplied_ca,
)

#: Re-check soon after actions were asked for: their effect is verified by reading back.
RECHECK = dt.timedelta(seconds=10)
#: Backstop while a rotation runs, in case a watch event is missed.
POLL = dt.timedelta(minutes=1)
#: (Probes that have not accepted are tried again every ``RotationSettings.probe_retry``.)
#: A re-issue not observed after this long is asked for again.
REISSUE_RETRY = dt.timedelta(minutes=2)
#: spec.issuanceLimits.perMinute counts re-issues in windows of this length.
RATE_WINDOW = dt.timedelta(minutes=1)

PAUSED = "Paused"
STALLED = "Stalled"
IDLE = "Idle"
PENDING = "Pending"
ROLLING_BACK_REASON = "RollingBack"


@dataclass(frozen=True)
class Decision:
    """What to do now. Perform ``actions`` in order, then persist ``state`` and ``condition``."""

    state: RotationState
    actions: tuple[Action, ...]
    condition: Condition
    next_wake: dt.datetime | None

    @property
    def events(self) -> tuple[EmitEvent, ...]:
        return tuple(a for a in self.actions if isinstance(a, EmitEvent))


def secrets_to_observe(state: RotationState, settings: RotationSettings) -> tuple[str, ...]:
    """The Secrets (operator namespace) whose CA the driver must report in ``Observation.ca_secrets``."""
    names = [settings.ca_secret_name]
    if settings.supplied_ca_secret_name:
        names.append(settings.supplied_ca_secret_name)
    if state.current is not None:
        names += [state.current.new_ca_secret_name, state.current.retired_ca_secret_name]
    elif state.history and state.history[0].cleanup_secret_name:
        names.append(state.history[0].cleanup_secret_name)
    return tuple(dict.fromkeys(names))


# --- the decision context ------------------------------------------------------------------------


class _Ctx:
    """Collects the actions and wake-ups of one decision."""

    def __init__(self, obs: Observation, settings: RotationSettings, now: dt.datetime) -> None:
        self.obs, self.settings, self.now = obs, settings, now
        self.actions: list[Action] = []
        self.wakes: list[dt.datetime] = []

    def act(self, action: Action) -> None:
        self.actions.append(action)

    def event(self, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.actions.append(EmitEvent(type_, reason, message))

    def wake(self, at: dt.datetime | None) -> None:
        if at is not None:
            self.wakes.append(max(at, self.now))

    @property
    def acted(self) -> bool:
        return any(not isinstance(a, EmitEvent) for a in self.actions)

    def next_wake(self, running: bool) -> dt.datetime | None:
        wakes = list(self.wakes)
        if self.acted:
            wakes.append(self.now + RECHECK)
        if running:
            wakes.append(self.now + POLL)
        return min(wakes) if wakes else None


@dataclass(frozen=True)
class _Facts:
    """What this observation says about the running rotation's CAs and leaves."""

    old: str
    new: str | None
    promoted: bool
    old_ref: CARef
    new_ref: CARef | None
    #: Something wrong with the new CA's Secret: holds the rotation, but not its rollback.
    new_problem: str | None
    #: spec.ca.secretName holds neither CA: holds everything.
    active_problem: str | None

    @property
    def primary(self) -> str:
        """The CA a truststore's bare alias must name: the one that issues (new once promoted)."""
        return self.new if self.promoted and self.new else self.old


def decide(
    state: RotationState, obs: Observation, settings: RotationSettings, now: dt.datetime
) -> Decision:
    """The next step of the policy's CA rotation. Pure: same inputs, same decision."""
    if now.tzinfo is None or now.utcoffset() != dt.timedelta(0):
        raise ValueError("now must be an aware UTC datetime")
    ctx = _Ctx(obs, settings, now)
    state = _note_requests(ctx, state)
    if state.current is None:
        state, pending = _maybe_start(ctx, state)
        if state.current is None:
            return Decision(state, tuple(ctx.actions), _idle_condition(ctx, state, pending), ctx.next_wake(False))
    state, condition = _run(ctx, state)
    return Decision(state, tuple(ctx.actions), condition, ctx.next_wake(state.current is not None and not settings.paused))


# --- idle: triggers and start --------------------------------------------------------------------


def _note_requests(ctx: _Ctx, state: RotationState) -> RotationState:
    """Consume a new ``certpolicy.io/rotate`` value that cannot start anything, saying why."""
    value = ctx.obs.rotate_request.strip() if ctx.obs.rotate_request else None
    rid = request_id(value)
    if rid is None or value == state.last_request:
        return state
    if state.current is not None:
        ctx.event("Warning", "RotationRequestIgnored",
                  f"{ROTATE_ANNOTATION}={rid} ignored: rotation {state.current.id} is already running")
        return replace(state, last_request=value)
    if rid in state.used_ids:
        ctx.event("Warning", "RotationRequestIgnored",
                  f"{ROTATE_ANNOTATION}={rid} ignored: a rotation with this id already ran; use a new value")
        return replace(state, last_request=value)
    return state


def _maybe_start(ctx: _Ctx, state: RotationState) -> tuple[RotationState, str | None]:
    """Start a rotation when a trigger says so. Returns the state and, when a trigger is held
    back, the reason (shown in the condition)."""
    obs, settings, now = ctx.obs, ctx.settings, ctx.now
    _cleanup_finished(ctx, state)
    active = outgoing_ca(obs, settings)
    due = expiry_due(active, settings.rotate_before)
    if due is not None and due > now:
        ctx.wake(due)
    trigger = detect(state, obs, settings, now)
    if trigger is None or active is None:
        return state, None
    if settings.paused:
        return state, f"rotation {trigger.id} is due ({trigger.detail}) but spec.rotation.paused is true"
    if settings.abort:
        return state, (f"rotation {trigger.id} is due ({trigger.detail}) but spec.rotation.abort is true; "
                       "set it to false to allow rotations")
    supplied = usable_supplied_ca(state, obs, settings)
    if settings.supplied_ca_secret_name and supplied is None and obs.ca(settings.supplied_ca_secret_name) is None:
        return state, (f"rotation {trigger.id} is due ({trigger.detail}) but Secret "
                       f"{settings.supplied_ca_secret_name} (spec.rotation.newCASecretName) holds no usable CA")
    if supplied is not None:
        new_secret, generated, new_fp = settings.supplied_ca_secret_name or "", False, supplied.fingerprint
    else:
        new_secret, generated, new_fp = new_ca_secret_name(settings.ca_secret_name, trigger.id), True, None
    rot = Rotation(
        id=trigger.id,
        trigger=trigger.kind,
        step=ADD_NEW_CA,
        old_ca=active.fingerprint,
        new_ca=new_fp,
        new_ca_secret_name=new_secret,
        new_ca_generated=generated,
        retired_ca_secret_name=retired_ca_secret_name(settings.ca_secret_name, trigger.id),
        started_at=now,
    ).entered(ADD_NEW_CA, now)
    source = "a generated CA" if generated else f"the CA supplied in Secret {new_secret}"
    ctx.event("Normal", "RotationStarted",
              f"rotation {rot.id} started: {trigger.detail}; moving from CA {short(rot.old_ca)} to {source}; "
              f"step 1/5 AddNewCA")
    last = state.last_request
    if trigger.kind == TRIGGER_REQUEST:
        last = ctx.obs.rotate_request.strip() if ctx.obs.rotate_request else last
    return replace(state, current=rot, last_request=last), None


def _cleanup_finished(ctx: _Ctx, state: RotationState) -> None:
    """Delete the generated new-CA Secret of the last finished rotation while it is still there
    (repeated until observed gone: the delete of the finishing decision may have been lost)."""
    if not state.history:
        return
    h = state.history[0]
    if not h.cleanup_secret_name or not h.new_ca:
        return
    there = ctx.obs.ca(h.cleanup_secret_name)
    if there is not None and there.fingerprint == h.new_ca:
        ctx.act(DeleteCASecret(h.cleanup_secret_name, h.new_ca))


def _idle_condition(ctx: _Ctx, state: RotationState, pending: str | None) -> Condition:
    if pending is not None:
        return Condition(ROTATING, False, PAUSED if ctx.settings.paused else PENDING, pending)
    active = ctx.obs.ca(ctx.settings.ca_secret_name)
    lost = ctx.obs.lost_ca if active is None else None
    if lost is not None:
        ran = state.history[0] if state.history else None
        after = f" Rotation {ran.id} ended {ran.outcome.lower()}." if ran is not None else ""
        return Condition(ROTATING, False, ran.outcome if ran is not None else IDLE,
                         f"No rotation: Secret {ctx.settings.ca_secret_name} with the active CA {short(lost.fingerprint)} "
                         f"is gone and its replacement rotation already ran.{after} Restore the Secret, or request "
                         f"a rotation to a new CA with the {ROTATE_ANNOTATION} annotation.")
    if active is None:
        return Condition(ROTATING, False, IDLE,
                         f"No rotation: Secret {ctx.settings.ca_secret_name} holds no CA yet.")
    due = expiry_due(active, ctx.settings.rotate_before)
    when = f"; automatic rotation from {due:%Y-%m-%dT%H:%M:%SZ}" if due is not None else ""
    if state.history:
        h = state.history[0]
        note = ""
        if due is not None and ctx.now >= due and expiry_id(active.fingerprint) in state.used_ids:
            note = (f" The active CA is within rotateBefore of its expiry, and its automatic rotation already "
                    f"ran; request another with the {ROTATE_ANNOTATION} annotation.")
        return Condition(ROTATING, False, h.outcome,
                         f"Rotation {h.id} {h.outcome.lower()} at {h.finished_at:%Y-%m-%dT%H:%M:%SZ}; "
                         f"active CA {short(active.fingerprint)}{when}.{note}")
    return Condition(ROTATING, False, IDLE, f"No rotation has run; active CA {short(active.fingerprint)}{when}.")


# --- running -------------------------------------------------------------------------------------


def _facts(ctx: _Ctx, rot: Rotation) -> _Facts:
    obs, settings = ctx.obs, ctx.settings
    observed_new = obs.ca(rot.new_ca_secret_name)
    active = obs.ca(settings.ca_secret_name)
    new = rot.new_ca or (observed_new.fingerprint if observed_new else None)
    new_problem = active_problem = None
    if new is not None and new == rot.old_ca:
        new_problem = f"Secret {rot.new_ca_secret_name} holds the old CA {short(new)}; a rotation needs another CA"
        new = None
    promoted = bool(new and active and active.fingerprint == new)
    if not promoted and new is not None:
        if observed_new is None:
            new_problem = f"Secret {rot.new_ca_secret_name} no longer holds the new CA {short(new)}"
        elif observed_new.fingerprint != new:
            new_problem = (f"Secret {rot.new_ca_secret_name} now holds CA {short(observed_new.fingerprint)} "
                           f"instead of the new CA {short(new)} this rotation put in bundles")
    if active is None:
        # The old CA's Secret is gone (CAMissing): its certificate is known, and the rotation is
        # what replaces it; anything else missing from spec.ca.secretName holds the rotation.
        if obs.lost_ca is None or obs.lost_ca.fingerprint != rot.old_ca:
            active_problem = f"Secret {settings.ca_secret_name} holds no CA"
    elif active.fingerprint not in (rot.old_ca, new):
        active_problem = (f"Secret {settings.ca_secret_name} holds CA {short(active.fingerprint)}, neither the old "
                          f"CA {short(rot.old_ca)} nor the new one")
    old_ref = CARef(rot.old_ca, rot.retired_ca_secret_name if promoted else settings.ca_secret_name)
    new_ref = None
    if new is not None:
        new_ref = CARef(new, settings.ca_secret_name if promoted else rot.new_ca_secret_name)
    return _Facts(rot.old_ca, new, promoted, old_ref, new_ref, new_problem, active_problem)


def _run(ctx: _Ctx, state: RotationState) -> tuple[RotationState, Condition]:
    rot = state.current
    assert rot is not None
    facts = _facts(ctx, rot)
    if facts.new is not None and rot.new_ca is None:
        rot = replace(rot, new_ca=facts.new)
    rot = _rederive(ctx, rot, facts)

    if ctx.settings.paused:
        rot = _counters(ctx, rot, facts)
        return replace(state, current=rot), _condition(ctx, rot, PAUSED,
                                                       f"held by spec.rotation.paused. {rot.message}".strip())

    rot = _abort_request(ctx, rot)
    problem = facts.active_problem or (None if rot.rolling_back else facts.new_problem)
    if problem is not None:
        rot = _counters(ctx, replace(rot, message=f"Holding: {problem}."), facts)
        return replace(state, current=rot), _condition(ctx, rot, None, rot.message)

    finished: HistoryEntry | None = None
    if rot.rolling_back:
        rot, finished = _roll_back(ctx, rot, facts)
    else:
        step = rot.step
        if step == ADD_NEW_CA:
            rot = _add_new_ca(ctx, rot, facts)
        elif step == VERIFY_BUNDLES:
            rot = _verify_bundles(ctx, rot, facts)
        if rot.step == ISSUE_FROM_NEW_CA:
            rot = _issue_from_new_ca(ctx, rot, facts)
        if rot.step == AWAIT_LEAVES and step < AWAIT_LEAVES:
            # Never leave step 4 in the decision that entered it: the leaves were just observed,
            # and their propagation is measured from a later look (a fresh decision, at once).
            ctx.wake(ctx.now)
        elif rot.step == AWAIT_LEAVES:
            rot = _await_leaves(ctx, rot, facts)
        if rot.step == REMOVE_OLD_CA:
            rot, finished = _remove_old_ca(ctx, rot, facts)

    if finished is not None:
        history = (finished, *state.history)[:MAX_HISTORY]
        state = replace(state, current=None, history=history)
        return state, Condition(ROTATING, False, finished.outcome, rot.message)
    rot = _counters(ctx, rot, facts)
    return replace(state, current=rot), _condition(ctx, rot, None, rot.message)


def _rederive(ctx: _Ctx, rot: Rotation, facts: _Facts) -> Rotation:
    """A rotation whose state is behind the cluster (a lost status write) jumps forward to where
    the cluster says it is: the new CA promoted, or a managed leaf already re-issued from it,
    means step 3 was entered — which also means it can no longer be aborted."""
    if rot.rolling_back or rot.step >= ISSUE_FROM_NEW_CA or facts.new is None:
        return rot
    reissued = any(leaf.managed and leaf.issuer == facts.new for leaf in ctx.obs.leaves)
    if facts.promoted or reissued:
        ctx.event("Warning", "RotationResumed",
                  f"rotation {rot.id}: the cluster shows step 3/5 IssueFromNewCA already began "
                  f"(recorded step {rot.step} was behind); continuing from step 3")
        return _enter(ctx, rot, ISSUE_FROM_NEW_CA, "the new CA issues leaves", quiet=True)
    return rot


def _abort_request(ctx: _Ctx, rot: Rotation) -> Rotation:
    if not ctx.settings.abort:
        return replace(rot, abort_refused=False) if rot.abort_refused else rot
    if rot.rolling_back:
        return rot
    if rot.step < ISSUE_FROM_NEW_CA:
        ctx.event("Warning", "RotationAborting",
                  f"rotation {rot.id} aborted at step {rot.step}/5 {step_name(rot.step)}: removing the new CA "
                  f"from every bundle target and keeping CA {short(rot.old_ca)}")
        return replace(rot, rolling_back_since=ctx.now, stalled_since=None)
    if not rot.abort_refused:
        ctx.event("Warning", "RotationAbortRefused",
                  f"rotation {rot.id}: abort refused at step {rot.step}/5 {step_name(rot.step)}: leaves are already "
                  "issued from the new CA, so the rotation only goes forward")
    return replace(rot, abort_refused=True)


def _enter(ctx: _Ctx, rot: Rotation, step: int, detail: str, quiet: bool = False) -> Rotation:
    rot = replace(rot.entered(step, ctx.now), stalled_since=None, waiting_pods=(), waiting_pods_count=0,
                  waiting_digest=None, probes_serving_old=(), probes_serving_other=())
    if not quiet:
        ctx.event("Normal", f"Rotation{step_name(step)}", f"rotation {rot.id}: step {step}/5 {step_name(step)}: {detail}")
    return rot


def _bad_targets(obs: Observation, need: Iterable[str | None], forbid: Iterable[str | None] = (),
                 primary: str | None = None) -> tuple[str, ...]:
    """Targets that, read back on their own, lack a needed CA, hold a forbidden one, or (with a
    PKCS#12 form) name another CA than ``primary`` with the bare alias."""
    needed = frozenset(f for f in need if f)
    forbidden = frozenset(f for f in forbid if f)
    return tuple(sorted(
        t for t, fps in obs.targets.items()
        if fps is None or not needed <= fps or fps & forbidden
        or (primary is not None and t in obs.primaries and obs.primaries[t] != primary)
    ))


def _names(ids: Iterable[str]) -> str:
    ids = list(ids)
    shown = ", ".join(ids[:MAX_NAMED_LEAVES])
    return shown + (f" and {len(ids) - MAX_NAMED_LEAVES} more" if len(ids) > MAX_NAMED_LEAVES else "")


def _repair_both(ctx: _Ctx, rot: Rotation, facts: _Facts) -> tuple[str, ...]:
    """Steps 2-4 need old and new in every target, the bare truststore alias on the issuing CA;
    rewrite any target that is not so."""
    assert facts.new_ref is not None
    bad = _bad_targets(ctx.obs, (facts.old, facts.new), (), facts.primary)
    if bad:
        ctx.act(UpdateBundles(bad, (facts.old_ref, facts.new_ref), (), facts.primary))
    return bad


# step 1 ------------------------------------------------------------------------------------------


def _add_new_ca(ctx: _Ctx, rot: Rotation, facts: _Facts) -> Rotation:
    if facts.new is None or facts.new_ref is None:
        if rot.new_ca_generated:
            ctx.act(GenerateNewCA(rot.new_ca_secret_name, rot.id))
            return replace(rot, message=f"Generating the new CA in Secret {rot.new_ca_secret_name}.")
        return replace(rot, message=f"Waiting for a CA in Secret {rot.new_ca_secret_name}.")
    bad = _bad_targets(ctx.obs, (facts.old, facts.new), (), facts.primary)
    if bad:
        ctx.act(UpdateBundles(bad, (facts.old_ref, facts.new_ref), (), facts.primary))
    rot = _enter(ctx, rot, VERIFY_BUNDLES,
                 f"new CA {short(facts.new)} added next to {short(facts.old)} in {len(ctx.obs.targets)} bundle "
                 "targets; verifying each one")
    return replace(rot, bundles_verified_at=None,
                   message=f"Added new CA {short(facts.new)} to {len(bad)} targets; reading every target back.")


# step 2 ------------------------------------------------------------------------------------------


def _verify_bundles(ctx: _Ctx, rot: Rotation, facts: _Facts) -> Rotation:
    assert facts.new is not None and facts.new_ref is not None
    settings, now = ctx.settings, ctx.now
    bad = _repair_both(ctx, rot, facts)
    total = len(ctx.obs.targets)
    if bad:
        return replace(rot, bundles_verified_at=None, probes=(), probes_requested_at=None,
                       message=f"{total - len(bad)}/{total} bundle targets hold old and new CA; rewriting "
                               f"{_names(bad)}.")
    verified_at = rot.bundles_verified_at or now
    gate = verified_at + settings.propagation_delay
    rot = replace(rot, bundles_verified_at=verified_at)
    # Pods that read a bundle only when they start hold what was there then, whatever the delay.
    stale = [p for p in ctx.obs.pods if p.bundles and p.started_before(verified_at)]
    rot, waiting = _stale_pods(ctx, rot, stale, "load a trust bundle only at start and started before it held the new CA",
                               verified_at)
    if waiting and _forced(ctx, rot, f"issuing from the new CA although {waiting}"):
        waiting = None
    if now < gate:
        ctx.wake(gate)
        return replace(rot, message=f"All {total} bundle targets verified; propagation delay until "
                                    f"{gate:%Y-%m-%dT%H:%M:%SZ}." + (f" Waiting: {waiting}." if waiting else ""))
    if waiting:
        return _wait_or_stall(ctx, rot, VERIFY_BUNDLES, f"All {total} bundle targets verified, but {waiting}")
    records = _probe_records(ctx, rot, facts.new, gate)
    accepted = {r.probe for r in records if r.accepted}
    missing = [p for p in settings.probes if p.id not in accepted]
    rot = replace(rot, probes=records)
    if not missing:
        detail = f"{len(settings.probes)} probes accepted a canary from the new CA" if settings.probes else "no probes"
        rot = _enter(ctx, rot, ISSUE_FROM_NEW_CA,
                     f"all {total} targets trust both CAs, propagation delay over, {detail}; "
                     f"issuing from new CA {short(facts.new)}")
        return replace(rot, probes_requested_at=None)
    asked = rot.probes_requested_at
    if asked is None or asked < gate or now >= asked + settings.probe_retry:
        ctx.act(RunProbes(tuple(missing), facts.new_ref))
        asked = now
    ctx.wake(asked + settings.probe_retry)
    by_id = {r.probe: r for r in records}
    pending = [f"{p.id} ({'refused: ' + by_id[p.id].message if p.id in by_id else 'no result yet'})" for p in missing]
    return replace(rot, probes_requested_at=asked,
                   message=f"All {total} bundle targets verified; waiting for probes to accept a canary "
                           f"signed by the new CA: {', '.join(pending)}.")


def _probe_records(ctx: _Ctx, rot: Rotation, new: str, gate: dt.datetime) -> tuple[ProbeRecord, ...]:
    """Latest result per configured probe, counting only handshakes with a canary from the new CA
    made after the propagation delay ended (an earlier success proves nothing about the bundle)."""
    wanted = {p.id for p in ctx.settings.probes}
    latest = {r.probe: r for r in rot.probes if r.probe in wanted and r.at >= gate}
    for res in ctx.obs.probe_results:
        if res.probe in wanted and res.ca_fingerprint == new and res.at >= gate:
            if res.probe not in latest or res.at >= latest[res.probe].at:
                latest[res.probe] = ProbeRecord(res.probe, res.accepted, res.at, res.message[:200], res.served_ca,
                                                res.served_other)
    return tuple(latest[k] for k in sorted(latest))


# step 3 ------------------------------------------------------------------------------------------


def _issue_from_new_ca(ctx: _Ctx, rot: Rotation, facts: _Facts) -> Rotation:
    assert facts.new is not None and facts.new_ref is not None
    bad = _repair_both(ctx, rot, facts)
    rot = _note_leaf_moves(ctx, rot, facts)
    if bad:
        return replace(rot, message=f"Bundle targets lack a CA or name another CA with the bare truststore "
                                    f"alias; rewriting {_names(bad)} before issuing more.")
    if not facts.promoted:
        ctx.act(PromoteNewCA(ctx.settings.ca_secret_name, facts.new_ref, facts.old, rot.retired_ca_secret_name))
    rot = _reissue(ctx, rot, facts)
    on_old = [leaf for leaf in ctx.obs.leaves if leaf.managed and (leaf.issuer == facts.old or not leaf.ready)]
    if facts.promoted and not on_old:
        return _enter(ctx, rot, AWAIT_LEAVES,
                      f"new CA {short(facts.new)} is the issuing CA and every managed leaf is re-issued; "
                      "waiting until every workload uses a leaf from it")
    managed = [leaf for leaf in ctx.obs.leaves if leaf.managed]
    done = sum(1 for leaf in managed if leaf.issuer == facts.new)
    promo = "" if facts.promoted else f"promoting the new CA into Secret {ctx.settings.ca_secret_name}; "
    return replace(rot, message=f"{promo}{done}/{len(managed)} managed leaves re-issued from the new CA.")


def _reissue(ctx: _Ctx, rot: Rotation, facts: _Facts) -> Rotation:
    """Ask for re-issue of managed leaves not yet on the new CA, at most perMinute per window."""
    assert facts.new_ref is not None
    now = ctx.now
    todo = sorted(leaf.id for leaf in ctx.obs.leaves if leaf.managed and leaf.issuer != facts.new)
    pending = {p.leaf: p.at for p in rot.pending if p.leaf in todo and now < p.at + REISSUE_RETRY}
    candidates = [leaf for leaf in todo if leaf not in pending]
    start, count = rot.reissue_window_start, rot.reissue_window_count
    if candidates and (start is None or now >= start + RATE_WINDOW):
        start, count = now, 0
    batch = candidates[: max(0, ctx.settings.reissue_per_minute - count)]
    for leaf_id in batch:
        ctx.act(ReissueLeaf(leaf_id, facts.new_ref))
        pending[leaf_id] = now
    if len(batch) < len(candidates) and start is not None:
        ctx.wake(start + RATE_WINDOW)
    if pending:
        ctx.wake(min(pending.values()) + REISSUE_RETRY)
    return replace(
        rot,
        reissue_window_start=start,
        reissue_window_count=count + len(batch),
        reissue_requested=rot.reissue_requested + len(batch),
        pending=tuple(PendingReissue(k, v) for k, v in sorted(pending.items())),
    )


def _repromote(ctx: _Ctx, rot: Rotation, facts: _Facts) -> Rotation:
    """Past step 3 the issuing CA must be the new one, or renewals would land on the CA about to
    be removed; if someone put the old CA back into spec.ca.secretName, promote again and wait."""
    assert facts.new_ref is not None
    ctx.act(PromoteNewCA(ctx.settings.ca_secret_name, facts.new_ref, facts.old, rot.retired_ca_secret_name))
    return replace(rot, message=f"Secret {ctx.settings.ca_secret_name} holds the old CA again; promoting the new CA "
                                f"{short(facts.new or '')} back before going on.")


# step 4 ------------------------------------------------------------------------------------------


def _leaves_on(leaves: Iterable[Leaf], fp: str | None) -> list[Leaf]:
    return sorted((leaf for leaf in leaves if fp and leaf.issuer == fp), key=lambda leaf: leaf.id)


def _await_leaves(ctx: _Ctx, rot: Rotation, facts: _Facts) -> Rotation:
    assert facts.new is not None
    bad = _repair_both(ctx, rot, facts)
    rot = _note_leaf_moves(ctx, rot, facts)
    if bad:
        return replace(rot, message=f"Bundle targets lack a CA or name another CA with the bare truststore alias; "
                                    f"rewriting {_names(bad)}.")
    if not facts.promoted:
        return _repromote(ctx, rot, facts)
    rot = _reissue(ctx, rot, facts)
    on_old = _leaves_on(ctx.obs.leaves, facts.old)
    rot = _name_old_leaves(ctx, rot, on_old)
    if ctx.obs.force and ctx.obs.force.strip() == rot.id:
        ctx.event("Warning", "RotationForced",
                  f"rotation {rot.id}: {FORCE_ANNOTATION}={rot.id} set; removing the old CA although "
                  f"{len(on_old)} leaves still chain to it and will stop being trusted: {_names(x.id for x in on_old)}"
                  if on_old else f"rotation {rot.id}: {FORCE_ANNOTATION}={rot.id} set; removing the old CA without "
                                 "waiting for evidence that every workload uses its new leaf")
        rot = replace(rot, forced=True)
        return _enter(ctx, rot, REMOVE_OLD_CA, "forced past AwaitLeaves")
    if on_old:
        rot = replace(rot, waiting_pods=(), waiting_pods_count=0, probes_serving_old=(), probes_serving_other=())
        return _wait_or_stall(ctx, rot, AWAIT_LEAVES,
                              f"{len(on_old)} leaves still chain to the old CA {short(facts.old)}: "
                              f"{_names(x.id for x in on_old)}",
                              "Replace them with certificates from the new CA")
    unready = sorted(leaf.id for leaf in ctx.obs.leaves if leaf.managed and not leaf.ready)
    if unready:
        rot = replace(rot, waiting_pods=(), waiting_pods_count=0, probes_serving_old=(), probes_serving_other=())
        return _wait_or_stall(ctx, rot, AWAIT_LEAVES,
                              f"{len(unready)} cert-manager Certificates are not Ready yet: {_names(unready)}",
                              "See why on the Certificates (kubectl describe certificate)")
    rot, waiting = _workload_evidence(ctx, rot, facts)
    if waiting is None:
        return _enter(ctx, rot, REMOVE_OLD_CA,
                      f"every leaf chains to the new CA {short(facts.new)} and the workloads use them; removing the "
                      f"old CA {short(facts.old)} from every bundle target")
    return _wait_or_stall(ctx, rot, AWAIT_LEAVES, waiting)


def _note_leaf_moves(ctx: _Ctx, rot: Rotation, facts: _Facts) -> Rotation:
    """Record when the set of leaves on the new CA last changed. Observed, so never earlier than
    the change itself: a lost status write only makes the recorded instant later (safe)."""
    on_new = [leaf.id for leaf in _leaves_on(ctx.obs.leaves, facts.new)]
    digest = hashlib.sha256("\n".join(on_new).encode()).hexdigest()[:16] if on_new else None
    if digest != rot.leaves_on_new_digest:
        return replace(rot, leaves_on_new_digest=digest, leaves_moved_at=ctx.now)
    return rot


def _workload_evidence(ctx: _Ctx, rot: Rotation, facts: _Facts) -> tuple[Rotation, str | None]:
    """Step 4's evidence that workloads *use* the new leaves (every leaf chains to the new CA in
    the API already). Returns the rotation and what is still awaited, None when nothing is."""
    assert facts.new is not None and facts.new_ref is not None
    now, settings = ctx.now, ctx.settings
    moved = rot.leaves_moved_at or rot.step_started_at[ISSUE_FROM_NEW_CA - 1] or now
    in_scope = {leaf.id for leaf in ctx.obs.leaves}
    stale = [p for p in ctx.obs.pods if p.leaves & in_scope and p.started_before(moved)]
    rot, pods = _stale_pods(ctx, rot, stale, "take a leaf only at start (subPath, env) and started before it was re-issued",
                            moved)
    gate = moved + settings.leaf_delay
    waiting = [pods] if pods else []
    if now < gate:
        ctx.wake(gate)
        waiting.append(f"leaf propagation delay until {gate:%Y-%m-%dT%H:%M:%SZ} (the last leaf moved at "
                       f"{moved:%Y-%m-%dT%H:%M:%SZ})")
    if waiting or not settings.probes:
        return replace(rot, probes_serving_old=(), probes_serving_other=()), "; ".join(waiting) or None
    records = _probe_records(ctx, rot, facts.new, gate)
    by_id = {r.probe: r for r in records}
    ids = [p.id for p in settings.probes]
    serving_old = tuple(i for i in ids if i in by_id and by_id[i].served_ca == facts.old)
    serving_other = tuple(i for i in ids if i in by_id and by_id[i].served_other)
    # What step 5 must not break: an endpoint serving a chain to the old CA (its clients trust
    # it through the old CA), or refusing a client certificate from the new one. A chain to a
    # third CA (a partner's public or own CA) does not depend on the old CA.
    missing = [p for p in settings.probes if not _probe_clear(by_id.get(p.id), facts.new)]
    rot = replace(rot, probes=records, probes_serving_old=serving_old, probes_serving_other=serving_other)
    if not missing:
        return replace(rot, probes_requested_at=None), None
    asked = rot.probes_requested_at
    if asked is None or asked < gate or now >= asked + settings.probe_retry:
        ctx.act(RunProbes(tuple(missing), facts.new_ref, (facts.old_ref, facts.new_ref)))
        asked = now
    ctx.wake(asked + settings.probe_retry)

    def why(pid: str) -> str:
        r = by_id.get(pid)
        if r is None:
            return "no result yet"
        if r.served_ca == facts.old:
            return f"serves a leaf from the old CA {short(facts.old)}"
        if not r.accepted:
            return f"refused a client certificate from the new CA: {r.message or 'refused'}"
        return f"its served chain could not be read ({r.message or 'unreadable'})"

    return (replace(rot, probes_requested_at=asked),
            "probe endpoints still depend on the old CA or are unverified: "
            + ", ".join(f"{p.id} ({why(p.id)})" for p in missing))


def _probe_clear(record: ProbeRecord | None, new: str) -> bool:
    """Step 4's evidence for one endpoint: it accepted a client certificate from the new CA and
    its served chain was read and leads to the new CA or to a third one, never to the old CA."""
    return record is not None and record.accepted and (record.served_ca == new or record.served_other)


def _stale_pods(ctx: _Ctx, rot: Rotation, stale: list[PodUse], why: str,
                since: dt.datetime) -> tuple[Rotation, str | None]:
    """Name the Pods that must (re)start before the rotation goes on — in status, and in an
    event when the list changes — and, with spec.rotation.restartWorkloads, rollout-restart
    their owners: at most perMinute per minute, never the same owner twice in one rotation."""
    ids = sorted(p.id for p in stale)
    digest = hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16] if ids else None
    if digest is not None and digest != rot.waiting_digest:
        ctx.event("Warning", "RotationWaitingForPods",
                  f"rotation {rot.id}: {len(ids)} Pods {why}; they must be restarted"
                  + (" (the operator restarts their owners: spec.rotation.restartWorkloads)"
                     if ctx.settings.restart_workloads else " (or set spec.rotation.restartWorkloads)")
                  + f": {_names(ids)}")
    rot = replace(rot, waiting_pods=tuple(ids[:MAX_NAMED_LEAVES]), waiting_pods_count=len(ids), waiting_digest=digest)
    if not ids:
        return rot, None
    if ctx.settings.restart_workloads:
        rot = _restart_owners(ctx, rot, stale, since)
    return rot, f"{len(ids)} Pods {why}: {_names(ids)}"


def _restart_owners(ctx: _Ctx, rot: Rotation, stale: list[PodUse], since: dt.datetime) -> Rotation:
    """Entries of ``rot.restarted`` are ``<step>:<owner>``: once for what a Pod reads at start of
    the bundle (step 2), once for the leaf (step 4), never twice for the same."""
    now, done, step = ctx.now, set(rot.restarted), rot.step
    todo = sorted({p.owner for p in stale if p.owner and f"{step}:{p.owner}" not in done})
    room = MAX_RESTARTS - len(rot.restarted)
    todo = todo[: max(0, room)]
    start, count = rot.restart_window_start, rot.restart_window_count
    if todo and (start is None or now >= start + RATE_WINDOW):
        start, count = now, 0
    batch = todo[: max(0, ctx.settings.reissue_per_minute - count)]
    for owner in batch:
        ctx.act(RestartWorkload(owner, rot.id, step, since))
        ctx.event("Normal", "RotationRestartedWorkload",
                  f"rotation {rot.id}: rollout restart of {owner}: its Pods read a leaf or trust bundle only at start")
    if len(batch) < len(todo) and start is not None:
        ctx.wake(start + RATE_WINDOW)
    return replace(rot, restarted=(*rot.restarted, *(f"{step}:{o}" for o in batch)), restart_window_start=start,
                   restart_window_count=count + len(batch))


def _forced(ctx: _Ctx, rot: Rotation, what: str) -> bool:
    if not (ctx.obs.force and ctx.obs.force.strip() == rot.id):
        return False
    if not rot.forced:
        ctx.event("Warning", "RotationForced", f"rotation {rot.id}: {FORCE_ANNOTATION}={rot.id} set; {what}")
    return True


def _wait_or_stall(ctx: _Ctx, rot: Rotation, step: int, text: str,
                   remedy: str = "Restart (or make reload) the workloads named") -> Rotation:
    """Wait for ``text`` to clear until the step has lasted leafTimeout, then report Stalled."""
    started = rot.step_started_at[step - 1] or ctx.now
    deadline = started + ctx.settings.leaf_timeout
    if ctx.now >= deadline:
        if rot.stalled_since is None:
            ctx.event("Warning", "RotationStalled",
                      f"rotation {rot.id}: waited {format_duration(ctx.settings.leaf_timeout)} at step {step}/5 "
                      f"{step_name(step)}: {text}. {remedy}, or set {FORCE_ANNOTATION}={rot.id} to go on anyway")
            rot = replace(rot, stalled_since=ctx.now)
        return replace(rot, message=f"Stalled: {text}. {remedy}, or set the annotation "
                                    f"{FORCE_ANNOTATION}={rot.id} to go on anyway.")
    ctx.wake(deadline)
    return replace(rot, message=f"Waiting: {text}; reported Stalled from {deadline:%Y-%m-%dT%H:%M:%SZ} if still so.")


def _name_old_leaves(ctx: _Ctx, rot: Rotation, on_old: list[Leaf]) -> Rotation:
    """Name the leaves the operator does not issue that still chain to the old CA: an event each
    time the list changes (not on every poll), and the first few in status."""
    unmanaged = [leaf.id for leaf in on_old if not leaf.managed]
    digest = hashlib.sha256("\n".join(unmanaged).encode()).hexdigest()[:16] if unmanaged else None
    if digest is not None and digest != rot.leaves_on_old_digest:
        ctx.event("Warning", "RotationLeavesOnOldCA",
                  f"rotation {rot.id}: {len(unmanaged)} leaves not issued by the operator still chain to the old CA "
                  f"{short(rot.old_ca)}; replace them with certificates from the new CA: {_names(unmanaged)}")
    return replace(rot, leaves_on_old_digest=digest)


# step 5 ------------------------------------------------------------------------------------------


def _remove_old_ca(ctx: _Ctx, rot: Rotation, facts: _Facts) -> tuple[Rotation, HistoryEntry | None]:
    assert facts.new is not None and facts.new_ref is not None
    if not facts.promoted:
        return _repromote(ctx, rot, facts), None
    on_old = _leaves_on(ctx.obs.leaves, facts.old)
    if on_old and not rot.forced:
        rot = _reissue(ctx, rot, facts)
        rot = _name_old_leaves(ctx, rot, on_old)
        return replace(rot, message=f"Not removing the old CA: {len(on_old)} leaves chain to it again: "
                                    f"{_names(x.id for x in on_old)}."), None
    bad = _bad_targets(ctx.obs, (facts.new,), (facts.old,), facts.new)
    total = len(ctx.obs.targets)
    if bad:
        ctx.act(UpdateBundles(bad, (facts.new_ref,), (facts.old,), facts.new))
        return replace(rot, message=f"{total - len(bad)}/{total} bundle targets hold only the new CA; removing "
                                    f"the old CA from {_names(bad)}."), None
    cleanup = rot.new_ca_secret_name if rot.new_ca_generated else None
    if cleanup:
        ctx.act(DeleteCASecret(cleanup, facts.new))
    message = (f"Rotation {rot.id} completed: CA {short(facts.old)} retired, CA {short(facts.new)} active in "
               f"{total} bundle targets.")
    ctx.event("Normal", "RotationCompleted", message)
    entry = HistoryEntry(rot.id, rot.trigger, COMPLETED, rot.old_ca, facts.new, rot.started_at, ctx.now, cleanup)
    return replace(rot, message=message), entry


# rollback ----------------------------------------------------------------------------------------


def _roll_back(ctx: _Ctx, rot: Rotation, facts: _Facts) -> tuple[Rotation, HistoryEntry | None]:
    on_new = _leaves_on(ctx.obs.leaves, facts.new)
    if facts.promoted or on_new:
        why = (f"Secret {ctx.settings.ca_secret_name} already holds the new CA" if facts.promoted
               else f"{len(on_new)} leaves chain to the new CA: {_names(x.id for x in on_new)}")
        return replace(rot, message=f"Cannot roll back yet: {why}. Replace them or clear spec.rotation.abort."), None
    bad = _bad_targets(ctx.obs, (facts.old,), (facts.new,), facts.old)
    total = len(ctx.obs.targets)
    if bad:
        ctx.act(UpdateBundles(bad, (facts.old_ref,), (facts.new,) if facts.new else (), facts.old))
        return replace(rot, message=f"Rolling back: {total - len(bad)}/{total} bundle targets hold only the old CA; "
                                    f"rewriting {_names(bad)}."), None
    cleanup = rot.new_ca_secret_name if rot.new_ca_generated and facts.new else None
    if cleanup and facts.new:
        ctx.act(DeleteCASecret(cleanup, facts.new))
    message = (f"Rotation {rot.id} aborted and rolled back: every bundle target holds only CA {short(facts.old)}"
               + (f"; new CA {short(facts.new)} discarded." if facts.new else "."))
    ctx.event("Normal", "RotationAborted", message)
    entry = HistoryEntry(rot.id, rot.trigger, ABORTED, rot.old_ca, facts.new, rot.started_at, ctx.now, cleanup)
    return replace(rot, message=message), entry


# --- status --------------------------------------------------------------------------------------


def _counters(ctx: _Ctx, rot: Rotation, facts: _Facts) -> Rotation:
    obs = ctx.obs
    need: tuple[str | None, ...]
    forbid: tuple[str | None, ...]
    if rot.rolling_back:
        need, forbid = (facts.old,), (facts.new,)
    elif rot.step == REMOVE_OLD_CA:
        need, forbid = (facts.new,), (facts.old,)
    else:
        need, forbid = (facts.old, facts.new), ()
    verified = len(obs.targets) - len(_bad_targets(obs, need, forbid)) if facts.new or rot.rolling_back else 0
    managed = [leaf for leaf in obs.leaves if leaf.managed]
    in_scope = [leaf for leaf in obs.leaves if leaf.issuer in (facts.old, facts.new) and leaf.issuer]
    unmanaged_old = [leaf.id for leaf in _leaves_on(obs.leaves, facts.old) if not leaf.managed]
    return replace(
        rot,
        targets_verified=verified,
        targets_total=len(obs.targets),
        leaves_managed=len(managed),
        leaves_managed_on_new=sum(1 for leaf in managed if facts.new and leaf.issuer == facts.new),
        leaves_total=len(in_scope),
        leaves_on_new=sum(1 for leaf in in_scope if leaf.issuer == facts.new),
        leaves_on_old=tuple(unmanaged_old[:MAX_NAMED_LEAVES]),
        leaves_on_old_count=len(unmanaged_old),
    )


def _condition(ctx: _Ctx, rot: Rotation, reason: str | None, message: str) -> Condition:
    if reason is None:
        if rot.rolling_back:
            reason = ROLLING_BACK_REASON
        elif rot.stalled_since is not None:
            reason = STALLED
        else:
            reason = step_name(rot.step)
    where = "rolling back" if rot.rolling_back else f"step {rot.step}/5 {step_name(rot.step)}"
    text = f"Rotation {rot.id} ({rot.trigger}), {where}: {message}"
    if rot.abort_refused:
        text += " Abort refused: from step 3 on a rotation only goes forward."
    return Condition(ROTATING, True, reason, text)

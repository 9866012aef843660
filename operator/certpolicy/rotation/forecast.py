"""What a rotation would do from here: the operator's own :func:`decide`, run forward on a model of the cluster.

``kubectl certpolicy rotate --plan`` must agree with the operator, so it has no rules of its own:
it builds the same :class:`Observation` the operator builds (``inventory/observation.py``) and
calls :func:`decide` over and over, applying each decision's actions to that observation as the
cluster would (a bundle update makes the target hold the CAs, a re-issue moves the leaf, a promotion
swaps the CA Secret, a rollout restart starts the Pods again) and moving the clock to the decision's
``next_wake``. Whatever the machine waits for that nobody would do — a leaf the operator does not
issue, a Pod that reads a bundle only at start without ``restartWorkloads``, a probe that refuses,
a target the operator may not write — is waited for here too, with the same timers, until the
machine reports ``Stalled`` or the horizon shows it never moves (``Held``).

What the model assumes, and the plan says so: writes the operator is allowed to make succeed at
once (the operator is woken by its own writes), probes the operator's allow-list admits accept the
canary and then serve a leaf from the new CA, and restarted Pods start within a second.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, replace

from certpolicy.rotation.actions import (
    DeleteCASecret,
    EmitEvent,
    GenerateNewCA,
    PromoteNewCA,
    ReissueLeaf,
    RestartWorkload,
    RunProbes,
    UpdateBundles,
)
from certpolicy.rotation.machine import PAUSED, PENDING, STALLED, decide
from certpolicy.rotation.model import CAInfo, Leaf, Observation, PodUse, Probe, ProbeResult, RotationSettings
from certpolicy.rotation.state import RotationState, step_name

#: The fingerprint the model gives a CA the rotation generates (the real one does not exist yet).
PLANNED_CA = "sha256:planned-new-ca"
#: The rotation id the plan requests when none is running.
PLAN_REQUEST = "plan"
#: How long a restarted Pod takes to start, in the model.
RESTART = dt.timedelta(seconds=1)
#: After the delays, how long without progress before only the stall deadline can change anything
#: (past every retry of a step: re-issue 2 min, rate windows 1 min, polls 1 min, probes 30 s).
SETTLE = dt.timedelta(minutes=10)
TICK = dt.timedelta(seconds=1)
#: Decisions simulated at most (a safety bound; a rotation needs a few dozen, a stall a few thousand).
MAX_DECISIONS = 50_000

COMPLETED = "Completed"
ABORTED = "Aborted"
STALLS = "Stalled"
HELD = "Held"
NOT_STARTED = "NotStarted"

#: A probe's verdict in the model: None accepts, a message refuses (e.g. ``ProbeNotAllowed: ...``).
ProbeVerdict = Callable[[Probe], "str | None"]


@dataclass(frozen=True)
class StepEntered:
    step: int
    phase: str
    after: dt.timedelta  # from the start of the forecast


@dataclass(frozen=True)
class Forecast:
    """Where the rotation ends up. ``outcome``: Completed | Aborted (it finishes); Stalled (the
    machine reports ``Stalled`` at ``step``); Held (it waits at ``step`` for ever without stalling,
    e.g. a probe that never accepts); NotStarted (it would not start: ``reason`` Paused or Pending).
    ``after`` is from now until that outcome; ``reason`` and ``message`` are the ``Rotating``
    condition's at that point, word for word what the operator would write."""

    outcome: str
    step: int | None
    reason: str
    message: str
    after: dt.timedelta
    steps: tuple[StepEntered, ...] = ()
    events: tuple[tuple[str, str], ...] = ()  # (reason, message) the operator would emit, in order

    @property
    def finishes(self) -> bool:
        return self.outcome in (COMPLETED, ABORTED)

    @property
    def phase(self) -> str | None:
        return step_name(self.step) if self.step else None


class _World:
    """The observation the next decision sees, changed by the actions as the cluster would be."""

    def __init__(self, obs: Observation, unwritable: frozenset[str], verdict: ProbeVerdict) -> None:
        self.cas: dict[str, CAInfo | None] = dict(obs.ca_secrets)
        self.targets: dict[str, frozenset[str] | None] = dict(obs.targets)
        self.primaries: dict[str, str | None] = dict(obs.primaries)
        self.leaves: dict[str, Leaf] = {leaf.id: leaf for leaf in obs.leaves}
        self.pods: dict[str, PodUse] = {p.id: p for p in obs.pods}
        self.results: list[ProbeResult] = list(obs.probe_results)
        self.base, self.unwritable, self.verdict = obs, unwritable, verdict

    def observation(self) -> Observation:
        obs = replace(self.base, ca_secrets=self.cas, targets=self.targets, primaries=self.primaries,
                      leaves=tuple(self.leaves.values()), pods=tuple(self.pods.values()),
                      probe_results=tuple(self.results))
        self.results = []  # the driver hands each result to one decision
        return obs

    def apply(self, action: object, now: dt.datetime) -> dt.datetime | None:
        """Carry out one action; returns when its effect is observable (None: nothing changed).
        A probe's result is an effect but not progress (see :meth:`progress`)."""
        if isinstance(action, GenerateNewCA):
            if self.cas.get(action.secret_name) is None:
                self.cas[action.secret_name] = CAInfo(PLANNED_CA)
                return now
        elif isinstance(action, UpdateBundles):
            changed = False
            for t in action.targets:
                if t in self.unwritable:
                    continue
                held = (self.targets.get(t) or frozenset()) | {r.fingerprint for r in action.add}
                held -= set(action.remove)
                if held != self.targets.get(t) or (t in self.primaries and self.primaries[t] != action.primary):
                    changed = True
                self.targets[t] = frozenset(held)
                if t in self.primaries:
                    self.primaries[t] = action.primary
            return now if changed else None
        elif isinstance(action, RunProbes):
            for probe in action.probes:
                refused = self.verdict(probe)
                served = action.ca.fingerprint if action.verify_served and refused is None else None
                self.results.append(ProbeResult(probe.id, action.ca.fingerprint, refused is None, now,
                                                refused or "", served))
            return now
        elif isinstance(action, PromoteNewCA):
            old = self.cas.get(action.ca_secret_name)
            if old is not None and self.cas.get(action.retired_secret_name) is None:
                self.cas[action.retired_secret_name] = old
            self.cas[action.ca_secret_name] = CAInfo(action.new.fingerprint)
            return now
        elif isinstance(action, ReissueLeaf):
            leaf = self.leaves.get(action.leaf)
            if leaf is not None and leaf.issuer != action.ca.fingerprint:
                self.leaves[action.leaf] = replace(leaf, issuer=action.ca.fingerprint)
                return now
        elif isinstance(action, RestartWorkload):
            started = max(now, action.not_before) + RESTART
            for pid, pod in list(self.pods.items()):
                if pod.owner == action.owner:
                    self.pods[pid] = replace(pod, started_at=started)
            return started
        elif isinstance(action, DeleteCASecret):
            if self.cas.get(action.secret_name) is not None:
                self.cas[action.secret_name] = None
                return now
        return None

    @staticmethod
    def progress(action: object) -> bool:
        """Whether an action that had an effect moved the rotation on: a refused probe retried
        every 30 s for ever does not."""
        return not isinstance(action, RunProbes)


def forecast(state: RotationState, obs: Observation, settings: RotationSettings, now: dt.datetime, *,
             probe_verdict: ProbeVerdict, unwritable: frozenset[str] = frozenset(),
             horizon: dt.timedelta | None = None, request: str = PLAN_REQUEST) -> Forecast:
    """Run :func:`decide` forward from ``state`` and ``obs`` (a rotation is requested when none
    runs) until the rotation finishes, stalls, or has made no progress (no step entered, nothing
    written) for the horizon: by default ``leafTimeout`` plus the longer delay and ten minutes,
    past every timer the machine has in a step (the stall deadline, the delays, the re-issue,
    probe and rate-window retries), so the same decisions repeat for ever: ``Held``, ``after``
    then being the instant of the last progress. ``request`` is the ``certpolicy.io/rotate``
    value the forecast requests (the rotation's id in messages)."""
    start = now
    if state.current is None:
        rid = request
        while rid in state.used_ids or rid == state.last_request:
            rid += "-next"
        obs = replace(obs, rotate_request=rid, force=None)
    horizon = horizon or (settings.leaf_timeout + max(settings.propagation_delay, settings.leaf_delay) + SETTLE)
    world = _World(obs, unwritable, probe_verdict)
    steps: list[StepEntered] = []
    events: list[tuple[str, str]] = []
    started = state.current is not None
    last_step = state.current.step if state.current is not None else None
    moved = now  # the last progress
    settle = max(settings.propagation_delay, settings.leaf_delay) + SETTLE
    for _ in range(MAX_DECISIONS):
        decision = decide(state, world.observation(), settings, now)
        state, cond = decision.state, decision.condition
        events += [(e.reason, e.message) for e in decision.events]
        current = state.current
        if current is None:
            if started:
                outcome = state.history[0].outcome if state.history else COMPLETED
                return Forecast(outcome, None, cond.reason, cond.message, now - start, tuple(steps), tuple(events))
            return Forecast(NOT_STARTED, None, cond.reason, cond.message, now - start, tuple(steps), tuple(events))
        started = True
        if current.step != last_step:
            steps.append(StepEntered(current.step, step_name(current.step), now - start))
            last_step, moved = current.step, now
        if cond.reason == STALLED:
            return Forecast(STALLS, current.step, cond.reason, cond.message, now - start, tuple(steps), tuple(events))
        if cond.reason == PAUSED:
            return Forecast(HELD, current.step, cond.reason, cond.message, now - start, tuple(steps), tuple(events))
        acted = [(a, at) for a in decision.actions if not isinstance(a, EmitEvent)
                 if (at := world.apply(a, now)) is not None]
        effects = [at for _, at in acted]
        if any(world.progress(a) for a, _ in acted):
            moved = now
        if effects:
            now = min(effects)
            continue
        nxt = decision.next_wake if decision.next_wake is not None and decision.next_wake > now else now + TICK
        if now - moved > settle:
            # Every gate of this step has passed without progress: what the machine still does
            # (refused probes retried, polls) changes nothing but the stall deadline; go there,
            # or past the horizon when it has passed without a stall.
            deadline = (current.step_started_at[current.step - 1] or moved) + settings.leaf_timeout
            nxt = max(nxt, deadline if now < deadline else moved + horizon + TICK)
        now = nxt
        if now - moved > horizon:
            return Forecast(HELD, current.step, cond.reason, cond.message, moved - start, tuple(steps), tuple(events))
    cur = state.current
    return Forecast(HELD, cur.step if cur else None, PENDING, "the forecast did not settle", now - start,
                    tuple(steps), tuple(events))

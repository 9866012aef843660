"""A fake cluster for the rotation machine: CA Secrets, bundle targets, leaves and probes as plain
sets of fingerprint strings, plus a driver loop that can crash anywhere.

The world checks the invariant after *every* mutation it makes (each target write, each leaf
issued, each Secret written) rather than once per decision, because an outage lives between two
writes, not between two decisions. It also models the concurrency a real cluster has: an external
issuer (cert-manager with a CA Issuer over ``spec.ca.secretName``) and the operator's own routine
renewals keep re-issuing leaves from whatever CA that Secret holds at the moment.

Workloads (:class:`Workload`) model what the API-level invariant cannot see: each one presents a
leaf and trusts a bundle target, loading each with its own lag after the API object changed (the
kubelet's sync plus the program's reload), or only when it (re)starts (subPath, env, a Java
truststore). The world keeps the history of every leaf and target, so
:meth:`World.workload_violations` can check the workload-level invariant at every instant a
workload's view changes: every leaf a workload presents is trusted by the bundle each of its peers
has loaded.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field, replace

from certpolicy.rotation import (
    CAInfo,
    DeleteCASecret,
    EmitEvent,
    GenerateNewCA,
    Leaf,
    Observation,
    PodUse,
    ProbeResult,
    PromoteNewCA,
    ReissueLeaf,
    RestartWorkload,
    RotationSettings,
    RotationState,
    RunProbes,
    UpdateBundles,
    decide,
    secrets_to_observe,
)
from certpolicy.rotation.actions import Action
from certpolicy.rotation.machine import Decision

T0 = dt.datetime(2026, 3, 1, 12, 0, tzinfo=dt.UTC)
OLD = "sha256:0000000000000000000000000000000000000000000000000000000000000001"
SUPPLIED = "sha256:5555555555555555555555555555555555555555555555555555555555555555"
#: the CA a partner's server certificate comes from: neither the old nor the new CA of any rotation
PARTNER = "sha256:" + "7" * 64
CA_SECRET = "hl7-ca"
SUPPLIED_SECRET = "user-ca"


T_MIN = T0 - dt.timedelta(days=3650)


class InvariantViolation(AssertionError):
    pass


@dataclass
class Workload:
    """A process presenting ``leaf`` and trusting ``target``; its peers are all other workloads."""

    leaf: str
    target: str
    leaf_lag: dt.timedelta = dt.timedelta(0)
    bundle_lag: dt.timedelta = dt.timedelta(0)
    leaf_at_start: bool = False  # subPath / env: the leaf is read only when the Pod starts
    bundle_at_start: bool = False  # subPath / env / a truststore read at start
    owner: str | None = None
    restart_every: dt.timedelta | None = None  # restarts that happen anyway (people, deploys, crashes)
    starts: list[dt.datetime] = field(default_factory=lambda: [T_MIN])


@dataclass
class LeafModel:
    issuer: str
    managed: bool
    renew_every: dt.timedelta | None  # None: only replaced by hand (or by the operator if managed)
    next_renewal: dt.datetime | None = None
    ready: bool = True  # a cert-manager Certificate's Ready (spec.ca.certManager)


@dataclass
class World:
    now: dt.datetime = T0
    ca_secrets: dict[str, str] = field(default_factory=lambda: {CA_SECRET: OLD})
    not_after: dict[str, dt.datetime] = field(default_factory=dict)
    targets: dict[str, set[str]] = field(default_factory=dict)
    leaves: dict[str, LeafModel] = field(default_factory=dict)
    #: probe id -> probability that a handshake is refused even when the target trusts the CA
    probes: dict[str, float] = field(default_factory=dict)
    probe_target: str | None = None  # the bundle the probed servers trust
    #: probe ids of partners whose server certificate comes from their own (or a public) CA:
    #: only the client certificates come from the policy's CA (the usual HL7 partner link)
    partner_served: set[str] = field(default_factory=set)
    rng: random.Random = field(default_factory=lambda: random.Random(0))
    annotation: str | None = None
    force: str | None = None
    generated: list[str] = field(default_factory=list)
    generate_secret_names: set[str] = field(default_factory=set)
    pending_results: list[ProbeResult] = field(default_factory=list)
    events: list[EmitEvent] = field(default_factory=list)
    mutations: int = 0
    probe_runs: int = 0
    reissues: int = 0
    check_invariant: bool = True
    workloads: dict[str, Workload] = field(default_factory=dict)
    leaf_history: dict[str, list[tuple[dt.datetime, str]]] = field(default_factory=dict)
    target_history: dict[str, list[tuple[dt.datetime, frozenset[str]]]] = field(default_factory=dict)
    #: (owner, rotation id, step) the driver restarted; a repeat is a no-op, as in the real driver
    #: (handlers/rotation.py: the owner's certpolicy.io/restarted-for record, kept across a lost status write)
    restarted: dict[tuple[str, str, int], int] = field(default_factory=dict)
    restart_requests: int = 0
    restarted_at: dict[str, dt.datetime] = field(default_factory=dict)  # the restartedAt annotation
    #: The CA status.ca.history records as active (what the real driver reports as ``lost_ca``
    #: once spec.ca.secretName is gone; its certificate is known from the history, its key is not).
    history_active: str = OLD
    #: The CAs whose certificates the history keeps (active, next, previous).
    history_trusted: set[str] = field(default_factory=lambda: {OLD})

    # --- the invariant -----------------------------------------------------------------------

    def assert_invariant(self, what: str) -> None:
        self.mutations += 1
        self.record()
        if not self.check_invariant:
            return
        for leaf_id, leaf in self.leaves.items():
            for t, fps in self.targets.items():
                if leaf.issuer not in fps:
                    raise InvariantViolation(
                        f"after {what}: leaf {leaf_id} chains to {leaf.issuer[-4:]} which target {t} lacks "
                        f"(holds {sorted(f[-4:] for f in fps)})"
                    )

    # --- the workload-level invariant -----------------------------------------------------------

    def record(self) -> None:
        """Append every leaf and target that changed to its history, at the current instant."""
        for k, leaf in self.leaves.items():
            h = self.leaf_history.setdefault(k, [])
            if not h or h[-1][1] != leaf.issuer:
                h.append((T_MIN if not h else self.now, leaf.issuer))
        for t, fps in self.targets.items():
            h2 = self.target_history.setdefault(t, [])
            if not h2 or h2[-1][1] != frozenset(fps):
                h2.append((T_MIN if not h2 else self.now, frozenset(fps)))

    @staticmethod
    def _at(history: list, t: dt.datetime):
        value = history[0][1]
        for when, v in history:
            if when > t:
                break
            value = v
        return value

    def _last_start(self, w: Workload, t: dt.datetime) -> dt.datetime:
        return max(s for s in w.starts if s <= t)

    def presented(self, name: str, t: dt.datetime) -> str:
        """The issuer of the leaf workload ``name`` presents at ``t``."""
        w = self.workloads[name]
        seen = self._last_start(w, t) if w.leaf_at_start else t - w.leaf_lag
        return self._at(self.leaf_history[w.leaf], seen)

    def loaded(self, name: str, t: dt.datetime) -> frozenset[str]:
        """The CAs in the bundle workload ``name`` has loaded at ``t``."""
        w = self.workloads[name]
        seen = self._last_start(w, t) if w.bundle_at_start else t - w.bundle_lag
        return self._at(self.target_history[w.target], seen)

    def instants(self) -> list[dt.datetime]:
        """Every instant at which some workload's view can change (views are step functions, so
        checking these checks every instant)."""
        out = {T0}
        for w in self.workloads.values():
            out.update(w.starts)
            for when, _ in self.leaf_history.get(w.leaf, ()):
                out.add(when if w.leaf_at_start else when + w.leaf_lag)
            for when, _ in self.target_history.get(w.target, ()):
                out.add(when if w.bundle_at_start else when + w.bundle_lag)
        return sorted(t for t in out if T0 <= t <= self.now)

    def workload_violations(self) -> list[str]:
        """Every (instant, workload, peer) where the peer's loaded bundle lacks the CA of the leaf
        the workload presents."""
        self.record()
        out = []
        for t in self.instants():
            for a in self.workloads:
                issuer = self.presented(a, t)
                for b in self.workloads:
                    if a != b and issuer not in self.loaded(b, t):
                        out.append(f"{t:%H:%M:%S.%f}: {a} presents a leaf from {issuer[-4:]}, which {b} does not "
                                   f"trust (loaded {sorted(f[-4:] for f in self.loaded(b, t))})")
        return out

    def restart(self, name: str, at: dt.datetime) -> None:
        self.workloads[name].starts.append(at)

    def served_by(self, probe: str) -> str | None:
        """The CA of the certificate a probed server presents: its own leaf, renewed from the
        issuing CA like everything else (modelled as: the issuing CA), or a partner's own CA."""
        return PARTNER if probe in self.partner_served else self.ca_secrets.get(CA_SECRET)

    # --- observation -------------------------------------------------------------------------

    def observe(self, state: RotationState, settings: RotationSettings, extra: tuple[str, ...] = ()) -> Observation:
        names = set(secrets_to_observe(state, settings)) | set(extra)
        cas = {
            n: (CAInfo(self.ca_secrets[n], self.not_after.get(self.ca_secrets[n])) if n in self.ca_secrets else None)
            for n in names
        }
        results, self.pending_results = tuple(self.pending_results), []
        return Observation(
            ca_secrets=cas,
            targets={t: frozenset(fps) for t, fps in self.targets.items()},
            leaves=tuple(Leaf(k, v.issuer, v.managed, v.ready) for k, v in sorted(self.leaves.items())),
            probe_results=results,
            rotate_request=self.annotation,
            force=self.force,
            lost_ca=(CAInfo(self.history_active, self.not_after.get(self.history_active))
                     if CA_SECRET not in self.ca_secrets else None),
            pods=tuple(
                PodUse(k, w.starts[-1], w.owner, frozenset({w.leaf} if w.leaf_at_start else ()),
                       frozenset({w.target} if w.bundle_at_start else ()))
                for k, w in sorted(self.workloads.items()) if w.leaf_at_start or w.bundle_at_start
            ),
        )

    # --- the driver's side of the actions -----------------------------------------------------

    def lose_ca(self) -> None:
        """Someone deletes spec.ca.secretName: the active CA's key is gone, its certificate is in
        the history."""
        del self.ca_secrets[CA_SECRET]

    def _ca(self, secret: str, fp: str, certificate_only: bool = False) -> str:
        held = self.ca_secrets.get(secret)
        if certificate_only and held is None and fp in self.history_trusted:
            return fp  # the real driver takes a lost CA's certificate from status.ca.history
        if held != fp:
            raise AssertionError(f"action refers to {fp[-4:]} in Secret {secret}, which holds {held and held[-4:]}")
        return fp

    def apply(self, action: Action, cut: int | None = None) -> None:
        """Perform ``action``; ``cut`` stops it after that many of its writes (a crash midway)."""
        writes = 0

        def budget() -> bool:
            return cut is None or writes < cut

        if isinstance(action, EmitEvent):
            self.events.append(action)
        elif isinstance(action, GenerateNewCA):
            self.generate_secret_names.add(action.secret_name)
            if action.secret_name not in self.ca_secrets:  # create-only
                fp = f"sha256:{len(self.generated) + 2:064x}"
                self.generated.append(fp)
                self.ca_secrets[action.secret_name] = fp
                self.not_after[fp] = self.now + dt.timedelta(days=3650)
                self.assert_invariant("GenerateNewCA")
        elif isinstance(action, UpdateBundles):
            add = {self._ca(r.secret_name, r.fingerprint, certificate_only=True) for r in action.add}
            for t in action.targets:
                if not budget():
                    return
                if t not in self.targets:
                    continue
                before = set(self.targets[t])
                removed = before & set(action.remove)
                active = self.ca_secrets.get(CA_SECRET)
                if active in removed:
                    raise InvariantViolation(f"removing the issuing CA {active[-4:]} from {t}: that is early")
                self.targets[t] = (before - set(action.remove)) | add
                writes += 1
                self.assert_invariant(f"UpdateBundles({t})")
        elif isinstance(action, RunProbes):
            self.probe_runs += 1
            ca = self._ca(action.ca.secret_name, action.ca.fingerprint)
            trusted = self.probe_target is None or ca in self.targets.get(self.probe_target, set())
            verify = {r.fingerprint for r in action.verify_served}
            for p in action.probes:
                ok = trusted and self.rng.random() >= self.probes.get(p.id, 0.0)
                served = self.served_by(p.id) if verify else None
                self.pending_results.append(ProbeResult(p.id, ca, ok, self.now, "" if ok else "handshake refused",
                                                        served if served in verify else None,
                                                        served is not None and served not in verify))
        elif isinstance(action, PromoteNewCA):
            new = self._ca(action.new.secret_name, action.new.fingerprint)
            if self.ca_secrets.get(action.ca_secret_name) == new:
                return
            assert self.ca_secrets.get(action.ca_secret_name) in (action.old_fingerprint, None)
            if not budget():
                return
            if action.retired_secret_name not in self.ca_secrets and action.ca_secret_name in self.ca_secrets:
                self.ca_secrets[action.retired_secret_name] = action.old_fingerprint
                writes += 1
                self.assert_invariant("PromoteNewCA(backup)")
            if not budget():
                return
            for t, fps in self.targets.items():
                if new not in fps:
                    raise InvariantViolation(f"promoting {new[-4:]} while target {t} lacks it")
            self.ca_secrets[action.ca_secret_name] = new
            self.history_active = new  # the status write of the same pass records it active
            self.history_trusted.add(new)
            self.assert_invariant("PromoteNewCA")
        elif isinstance(action, ReissueLeaf):
            leaf = self.leaves[action.leaf]
            assert leaf.managed, "re-issue of a leaf the operator does not manage"
            leaf.issuer = self._ca(action.ca.secret_name, action.ca.fingerprint)
            self.reissues += 1
            self.assert_invariant(f"ReissueLeaf({action.leaf})")
        elif isinstance(action, RestartWorkload):
            self.restart_requests += 1
            key = (action.owner, action.rotation_id, action.step)
            last = self.restarted_at.get(action.owner)
            if last is None or last <= action.not_before:  # the driver reads restartedAt first
                self.restarted[key] = self.restarted.get(key, 0) + 1
                self.restarted_at[action.owner] = self.now
                for k, w in self.workloads.items():
                    if w.owner == action.owner:
                        self.restart(k, self.now)
        elif isinstance(action, DeleteCASecret):
            assert action.secret_name not in (CA_SECRET, SUPPLIED_SECRET), "deleting a Secret it must keep"
            if self.ca_secrets.get(action.secret_name) == action.fingerprint:
                del self.ca_secrets[action.secret_name]
                self.assert_invariant("DeleteCASecret")
        else:  # pragma: no cover
            raise AssertionError(f"unknown action {action!r}")

    # --- the rest of the cluster ---------------------------------------------------------------

    def advance(self, to: dt.datetime) -> None:
        """Move the clock; leaves with a renewal schedule are renewed from ``spec.ca.secretName``,
        workloads with a restart schedule restart."""
        while True:
            for k, w in sorted(self.workloads.items()):
                if w.restart_every is not None:
                    nxt = max(w.starts[-1], T0) + w.restart_every
                    while nxt <= to:
                        self.restart(k, nxt)
                        nxt += w.restart_every
            due = [
                (leaf.next_renewal, k) for k, leaf in self.leaves.items()
                if leaf.next_renewal is not None and leaf.next_renewal <= to
            ]
            if not due:
                break
            when, k = min(due)
            self.now = max(self.now, when)
            leaf = self.leaves[k]
            if CA_SECRET in self.ca_secrets:  # with the CA's key gone nobody can renew from it
                leaf.issuer = self.ca_secrets[CA_SECRET]
            assert leaf.renew_every is not None
            leaf.next_renewal = when + leaf.renew_every
            self.assert_invariant(f"external renewal of {k}")
        self.now = max(self.now, to)


@dataclass
class Driver:
    """The kopf driver's loop, with a persisted status that survives crashes and nothing else."""

    world: World
    settings: RotationSettings
    persisted: dict = field(default_factory=lambda: RotationState().to_dict())
    crashes: int = 0
    decisions: int = 0
    _parsed: tuple[dict, RotationState] | None = None

    @property
    def state(self) -> RotationState:
        """The status as a restarted operator would read it back (nulls dropped by the API)."""
        if self._parsed is None or self._parsed[0] is not self.persisted:
            self._parsed = (self.persisted, RotationState.from_dict(_strip_nulls(self.persisted)))
        return self._parsed[1]

    def step(self, rng: random.Random | None = None, crash_rate: float = 0.0) -> Decision:
        state = self.state
        obs = self.world.observe(state, self.settings)
        d = decide(state, obs, self.settings, self.world.now)
        self.decisions += 1
        crash_at = None
        if rng is not None and rng.random() < crash_rate:
            crash_at = rng.randrange(len(d.actions) + 1)
        for i, action in enumerate(d.actions):
            if crash_at is not None and i == crash_at:
                self.world.apply(action, cut=rng.randrange(3) if rng else 0)  # type: ignore[union-attr]
                break
            self.world.apply(action)
        if crash_at is None:
            self.persisted = d.state.to_dict()
        else:
            self.crashes += 1
            self.world.pending_results.clear()  # a restarted driver forgot the probe results
            if rng is not None and rng.random() < 0.3:
                self.persisted = d.state.to_dict()  # the action failed, the status write went through
        return d

    def set(self, **changes: object) -> None:
        self.settings = replace(self.settings, **changes)


def _strip_nulls(d: dict) -> dict:
    """What the API server returns after a merge patch: null-valued keys are gone."""
    return {k: (_strip_nulls(v) if isinstance(v, dict) else v) for k, v in d.items() if v is not None}

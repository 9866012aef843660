"""Leader election on a ``coordination.k8s.io/v1`` Lease, with client-go's semantics.

Two replicas run; the one holding the Lease is the leader and the only one that writes (see
``kube.writegate``). The timing is client-go's ``leaderelection`` package's, with its defaults:

- ``leaseDurationSeconds`` (15 s): how long a candidate waits, counted on its own monotonic clock,
  after the Lease record last changed before it may take the Lease over. Clocks of different
  machines are never compared: only "has the record moved in the last 15 s here". One refinement
  over client-go, which counts from the read that *saw* the change (up to a retry period late, so
  its takeovers after a crash take 15-19 s): the change is dated to the previous successful read
  (the last one that still saw the old record), but never earlier than one retry period before
  the read that saw it. That date is never after the renewal, so a takeover comes at most 15 s
  after the leader's last renewal (plus the latency of the candidate's own requests), and never
  less than 13 s after it: the leader's write gate
  closed at renewal + 10 s, so at least 3 s pass with no writer at all. The candidate's next try
  is scheduled at the expiry itself (no jitter: two replicas do not stampede).
- ``renewDeadline`` (10 s): how long the leader keeps trying to renew before it gives up. Its
  write gate is open only until (start of its last successful renewal + renewDeadline), so a
  leader that cannot renew stops writing at least leaseDuration - renewDeadline (5 s) before any
  other replica may start.
- ``retryPeriod`` (2 s): the interval between tries, for the leader's renewals and the standby's
  reads alike.

One Lease per cluster: it lives in a namespace every cluster has (``kube-system`` by default, as
cert-manager's controllers do it), not in the install's own, so two installs in two namespaces
contend for the same Lease and one of them stays standby: each would otherwise reconcile the
same cluster-scoped CertificatePolicies with CAs of its own. The install's namespace is written
on the Lease (annotation ``certpolicy.io/install-namespace``) so that a standby of another
install can say why it waits.

The Lease records ``holderIdentity`` (the Pod's name), ``acquireTime``, ``renewTime`` and
``leaseTransitions`` (incremented each time the holder changes). Updates carry the
``resourceVersion`` read, so two candidates racing for an expired Lease cannot both win: one gets
409 Conflict. A leader that stops cleanly releases the Lease (empty holder, 1 s duration) so the
standby takes over at its next try instead of after 15 s. A Pod whose container restarts keeps its
name, so it renews its own unexpired Lease at once.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from kubernetes.client import ApiException

from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.writegate import WriteGate
from certpolicy.timestamps import rfc3339_micro

log = logging.getLogger("certpolicy.leader")
DEFAULT_LEASE_NAME = "certpolicy-operator"
#: Where the one Lease of the cluster lives: a namespace every cluster has, whatever namespace an
#: install is in (manifests/rbac.yaml grants get/update of that one Lease there, and create).
DEFAULT_LEASE_NAMESPACE = "kube-system"
#: The namespace of the install whose replica wrote the Lease last.
INSTALL_ANNOTATION = "certpolicy.io/install-namespace"
LEASE_LABELS = {"app.kubernetes.io/name": "certpolicy-operator"}
JITTER_FACTOR = 1.2  # client-go's: renewDeadline must exceed it x retryPeriod


def check_timing(lease_duration: float, renew_deadline: float, retry_period: float) -> None:
    """client-go's checks: leaseDuration > renewDeadline > JitterFactor x retryPeriod."""
    if lease_duration <= renew_deadline:
        raise ValueError(f"lease duration ({lease_duration:g}s) must be greater than the renew "
                         f"deadline ({renew_deadline:g}s)")
    if renew_deadline <= JITTER_FACTOR * retry_period:
        raise ValueError(f"renew deadline ({renew_deadline:g}s) must be greater than "
                         f"{JITTER_FACTOR} x retry period ({retry_period:g}s)")


@dataclass(frozen=True)
class LeaseConfig:
    namespace: str
    identity: str
    name: str = DEFAULT_LEASE_NAME
    install_namespace: str = ""  # written on the Lease (INSTALL_ANNOTATION) when set
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0

    def validate(self) -> None:
        if not self.identity:
            raise ValueError("leader election needs an identity (POD_NAME or --identity)")
        check_timing(self.lease_duration, self.renew_deadline, self.retry_period)

    @property
    def path(self) -> str:
        return f"/apis/coordination.k8s.io/v1/namespaces/{self.namespace}/leases/{self.name}"

    def metadata(self, resource_version: str | None = None) -> dict[str, Any]:
        """The Lease's metadata as this replica writes it (every write: a PUT replaces it)."""
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace, "labels": dict(LEASE_LABELS)}
        if self.install_namespace:
            meta["annotations"] = {INSTALL_ANNOTATION: self.install_namespace}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        return meta


@dataclass(frozen=True)
class LeaseRecord:
    """The Lease's spec, as client-go's LeaderElectionRecord."""

    holder: str = ""
    duration_seconds: int = 0
    acquire_time: str | None = None
    renew_time: str | None = None
    transitions: int = 0

    @classmethod
    def from_spec(cls, spec: dict[str, Any] | None) -> LeaseRecord:
        spec = spec or {}
        return cls(holder=spec.get("holderIdentity") or "", duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
                   acquire_time=spec.get("acquireTime"), renew_time=spec.get("renewTime"),
                   transitions=int(spec.get("leaseTransitions") or 0))

    def to_spec(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration_seconds,
                                "leaseTransitions": self.transitions}
        if self.acquire_time:
            spec["acquireTime"] = self.acquire_time
        if self.renew_time:
            spec["renewTime"] = self.renew_time
        return spec


micro_time = rfc3339_micro  # metav1.MicroTime's wire format


def held_by_other(record: LeaseRecord, identity: str, observed_at: float, now: float) -> bool:
    """Whether another candidate holds the Lease: its holder is set, is not us, and the record
    changed less than its leaseDurationSeconds ago on our clock (``observed_at``, ``now``:
    monotonic seconds). An empty holder is a released Lease, free at once."""
    return bool(record.holder) and record.holder != identity and now < observed_at + record.duration_seconds


def claimed(record: LeaseRecord | None, identity: str, now: dt.datetime, duration: float) -> LeaseRecord:
    """The record that takes (or renews) the Lease for ``identity``."""
    stamp = micro_time(now)
    if record is not None and record.holder == identity:
        return replace(record, duration_seconds=int(duration), renew_time=stamp)
    transitions = 0 if record is None else record.transitions + 1  # as client-go: a released Lease too
    return LeaseRecord(holder=identity, duration_seconds=int(duration), acquire_time=stamp, renew_time=stamp,
                       transitions=transitions)


class Attempt(Enum):
    HELD = "held"  # ours now (acquired or renewed)
    TAKEN = "taken"  # another candidate holds it
    FAILED = "failed"  # the API did not answer or refused; try again


class LeaderElector:
    """Runs in a thread: tries to acquire the Lease every retryPeriod; once leading, renews it and
    keeps the write gate open; when renewal fails for renewDeadline (or another replica holds the
    Lease) closes the gate at once and calls ``on_lost``. One elector serves one term: to lead
    again, the process starts a new one (``certpolicy run`` does, once kopf has stopped)."""

    def __init__(self, raw: RawClient, config: LeaseConfig, gate: WriteGate,
                 clock: Callable[[], float] = time.monotonic) -> None:
        config.validate()
        if raw.gated:
            raise ValueError("the elector's Lease writes must not be gated by the gate it opens")
        self.raw, self.config, self.gate, self.clock = raw, config, gate, clock
        self.leading = threading.Event()
        self.lost = threading.Event()
        self.on_lost: Callable[[], None] = lambda: None
        #: Called (in the elector's thread) once the Lease is held, before anything else may write:
        #: ``certpolicy run`` sets its leader metric there, since a replica writes from then on.
        self.on_acquired: Callable[[], None] = lambda: None
        self._stop = threading.Event()
        self._observed: LeaseRecord | None = None
        self._observed_install = ""
        self._observed_at = 0.0
        #: Called (in the elector's thread) with the holder and its install's namespace whenever a
        #: read shows a record other than the last one: a standby reports who leads.
        self.on_observed: Callable[[str, str], None] = lambda holder, install: None
        self._last_read: float | None = None  # monotonic start of the last successful read
        self._thread: threading.Thread | None = None

    # ---- the loop ------------------------------------------------------------------------------
    def next_term(self) -> LeaderElector:
        """A new elector for the same Lease, with the same callbacks, not started: for the next term
        once this one is lost (an elector that lost stays lost)."""
        successor = LeaderElector(self.raw, self.config, self.gate, self.clock)
        successor.on_lost, successor.on_acquired, successor.on_observed = self.on_lost, self.on_acquired, self.on_observed
        return successor

    def start(self) -> LeaderElector:
        self.gate.require_lease()
        self._thread = threading.Thread(target=self._run, name="lease-elector", daemon=True)
        self._thread.start()
        return self

    @property
    def observed_holder(self) -> str | None:
        """The holder in the Lease record last read or written (None: not read yet)."""
        return self._observed.holder if self._observed else None

    @property
    def observed_install(self) -> str:
        """The install namespace on the Lease last read ("" when unknown)."""
        return self._observed_install

    def wait_leading(self, timeout: float | None = None) -> bool:
        return self.leading.wait(timeout)

    def _run(self) -> None:
        cfg = self.config
        while not self._stop.is_set():
            began = self.clock()
            attempt = self._try()
            if attempt is Attempt.HELD:
                self.gate.open_until(began + cfg.renew_deadline)
                log.info("became the leader: Lease %s/%s held by %s (transitions %d)", cfg.namespace, cfg.name,
                         cfg.identity, self._observed.transitions if self._observed else 0)
                self.leading.set()
                try:
                    self.on_acquired()
                except Exception:  # a report must never stop the election
                    log.exception("reporting the Lease acquired failed")
                break
            # After a failed try (the API server unreachable, a conflict) a whole retry period, as
            # client-go waits: the shortcut to an observed Lease's expiry is 0 once it has passed,
            # and a standby that could not reach the API server retried at once, for ever (100 % of
            # a core and a log line per try, seen when a test's control plane went away).
            self._stop.wait(cfg.retry_period if attempt is Attempt.FAILED else self._next_try_in())
        renewed = began if self.leading.is_set() else 0.0
        while self.leading.is_set() and not self._stop.wait(cfg.retry_period):
            began = self.clock()
            if began >= renewed + cfg.renew_deadline:
                self._lose(f"no renewal for {began - renewed:.1f}s (renew deadline {cfg.renew_deadline:g}s)")
                return
            outcome = self._try(deadline=renewed + cfg.renew_deadline)
            if outcome is Attempt.HELD:
                renewed = began
                self.gate.open_until(began + cfg.renew_deadline)
            elif outcome is Attempt.TAKEN:
                self._lose(f"the Lease is held by {self._observed.holder if self._observed else '?'}")
                return

    def _next_try_in(self) -> float:
        """A retry period, or less when the Lease we saw held expires sooner."""
        wait = self.config.retry_period
        if self._observed is not None and self._observed.holder and self._observed.holder != self.config.identity:
            wait = min(wait, self._observed_at + self._observed.duration_seconds - self.clock())
        return max(0.0, wait)

    def _lose(self, why: str) -> None:
        self.gate.close()
        self.leading.clear()
        self.lost.set()
        log.error("lost the leader Lease %s/%s: %s; writes stopped", self.config.namespace, self.config.name, why)
        self.on_lost()

    # ---- one try -------------------------------------------------------------------------------
    def _timeout(self) -> float:
        return max(1.0, self.config.renew_deadline / 2)

    def _try(self, deadline: float | None = None) -> Attempt:
        """Read the Lease and take or renew it. ``deadline`` (a leader's renew deadline): past it,
        nothing is sent after the read (e.g. the process was frozen in between)."""
        cfg = self.config
        began = self.clock()
        try:
            lease = self.raw.get(cfg.path, timeout=self._timeout())
        except ApiException as e:
            if e.status != 404:
                log.warning("reading Lease %s/%s failed: HTTP %s", cfg.namespace, cfg.name, e.status)
                return Attempt.FAILED
            return self._create()
        except Exception as e:  # noqa: BLE001 - connection errors: retried at the next period
            log.warning("reading Lease %s/%s failed: %s", cfg.namespace, cfg.name, type(e).__name__)
            return Attempt.FAILED
        record = LeaseRecord.from_spec(lease.get("spec"))
        install = ((lease.get("metadata") or {}).get("annotations") or {}).get(INSTALL_ANNOTATION, "")
        now = self.clock()
        if record != self._observed or install != self._observed_install:
            # Changed since the last read: dated to that read (it still saw the old record), but
            # no earlier than a retry period before this one (see the module's docstring).
            changed = began if self._last_read is None else max(self._last_read, began - cfg.retry_period)
            if record != self._observed:
                self._observed_at = changed
            self._observed, self._observed_install = record, install
            self._report(record.holder, install)
        self._last_read = began
        if held_by_other(record, cfg.identity, self._observed_at, now):
            return Attempt.TAKEN
        if deadline is not None and self.clock() >= deadline:
            return Attempt.FAILED
        new = claimed(record, cfg.identity, dt.datetime.now(dt.UTC), cfg.lease_duration)
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": cfg.metadata(lease["metadata"]["resourceVersion"]), "spec": new.to_spec()}
        return self._write(lambda: self.raw.put(cfg.path, body, timeout=self._timeout()), new)

    def _report(self, holder: str, install: str) -> None:
        try:
            self.on_observed(holder, install)
        except Exception:  # a report must never stop the election
            log.exception("reporting the Lease holder failed")

    def _create(self) -> Attempt:
        cfg = self.config
        new = claimed(None, cfg.identity, dt.datetime.now(dt.UTC), cfg.lease_duration)
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": cfg.metadata(),
                "spec": new.to_spec()}
        collection = cfg.path.rsplit("/", 1)[0]
        return self._write(lambda: self.raw.post(collection, body, timeout=self._timeout()), new)

    def _write(self, send: Callable[[], dict], new: LeaseRecord) -> Attempt:
        try:
            send()
        except ApiException as e:
            if e.status == 409:
                return Attempt.FAILED  # another candidate wrote first: read it again next time
            if e.status == 404:
                log.warning("cannot create Lease %s/%s: HTTP 404 (does namespace %s exist? --lease-namespace or "
                            "CERTPOLICY_LEASE_NAMESPACE names it)", self.config.namespace, self.config.name,
                            self.config.namespace)
                return Attempt.FAILED
            log.warning("writing Lease %s/%s failed: HTTP %s", self.config.namespace, self.config.name, e.status)
            return Attempt.FAILED
        except Exception as e:  # noqa: BLE001 - connection errors: retried at the next period
            log.warning("writing Lease %s/%s failed: %s", self.config.namespace, self.config.name, type(e).__name__)
            return Attempt.FAILED
        self._observed, self._observed_at = new, self.clock()
        self._observed_install = self.config.install_namespace
        return Attempt.HELD

    # ---- stopping --------------------------------------------------------------------------------
    def stop(self, release: bool = True) -> None:
        """Stop trying; when leading and ``release``, close the gate and hand the Lease back
        (empty holder) so the standby takes over at its next try."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self._timeout() * 2 + self.config.retry_period)
        was_leading = self.leading.is_set()
        self.gate.close()
        self.leading.clear()
        if release and was_leading:
            self._release()

    def _release(self) -> None:
        cfg = self.config
        try:
            lease = self.raw.get(cfg.path, timeout=self._timeout())
            record = LeaseRecord.from_spec(lease.get("spec"))
            if record.holder != cfg.identity:
                return
            stamp = micro_time(dt.datetime.now(dt.UTC))
            released = replace(record, holder="", duration_seconds=1, acquire_time=stamp, renew_time=stamp)
            self.raw.put(cfg.path, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                                    "metadata": cfg.metadata(lease["metadata"]["resourceVersion"]),
                                    "spec": released.to_spec()}, timeout=self._timeout())
            log.info("released the leader Lease %s/%s", cfg.namespace, cfg.name)
        except Exception as e:  # noqa: BLE001 - best effort: the Lease then expires after its duration
            log.warning("releasing Lease %s/%s failed (%s); it expires after %gs", cfg.namespace, cfg.name,
                        type(e).__name__, cfg.lease_duration)

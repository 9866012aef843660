"""The cluster's TLS Secrets, the Pods that mount Secrets, namespace labels and bundle targets, kept current.

A fixed, small set of watches, each shared by every policy and filtered by the API server:

- every ``kubernetes.io/tls`` Secret (``fieldSelector``), every Pod, every namespace;
- per bundle target kind, the objects carrying ``BUNDLE_LABEL`` (every target the operator
  writes carries it), so that a user's edit to any target is repaired at once;
- per resource, one metadata-only watch for objects named one by one (Secrets in
  ``selector.names``, truststore passwords, trust bundle sources), running only while some
  policy names one (:mod:`certpolicy.inventory.named`).

However many policies, names or namespaces, that is at most 3 + 3 + 2 watch threads. Records
hold parsed certificate summaries, never Secret data.

Every one of these watches, and which policies a change from it wakes, is one entry of the table
in :mod:`certpolicy.inventory.wakes`; this class builds the stores and watches from it. What each
policy reads is declared in one place (:class:`~certpolicy.inventory.interest.Reads`):
:meth:`Inventory.declare` holds those sources for it through the table, a change wakes only the
policies its source's map function says it concerns, and :meth:`Inventory.declare` says whether
everything the policy reads is synced.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiClient, ApiException

from certpolicy.inventory.interest import Reads
from certpolicy.inventory.labelled import KINDS as LABELLED_KINDS
from certpolicy.inventory.labelled import LABELLED, LabelledWatches, WatchKey
from certpolicy.inventory.named import NamedObjects
from certpolicy.inventory.records import (
    BundleRecord,
    CertificateRecord,
    NamespaceRecord,
    PodRecord,
    SecretRecord,
    parse_bundle_object,
)
from certpolicy.inventory.recordstore import Change, Key, RecordStore
from certpolicy.inventory.wakes import (
    BUNDLE_SOURCES,
    CERTIFICATES,
    NAMED_SECRETS,
    NAMED_WATCHES,
    NAMESPACES,
    PASSWORD_SECRETS,
    PODS,
    TLS_SECRETS,
    WAKES,
    Always,
    Labelled,
    Named,
    PerTargetKind,
    Seen,
    Served,
    Wake,
    concerns,
)
from certpolicy.inventory.watch import ListWatcher
from certpolicy.kube.managed import kind_served, resource_served
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.targets import TARGET_KINDS

log = logging.getLogger(__name__)
WATCH_TIMEOUT_ENV = "CERTPOLICY_WATCH_TIMEOUT"
#: Seconds of silence after which a watch counts as dead (default: the watch timeout + 90 s).
WATCH_SILENCE_LIMIT_ENV = "CERTPOLICY_WATCH_SILENCE_LIMIT"
#: The silence limit is at least the watch timeout plus this (seconds): see :meth:`Inventory.health`.
MIN_SILENCE_MARGIN = 3
DEFAULT_WATCH_TIMEOUT = 240
MAX_GONE = 1000
#: Changed Secrets remembered per policy between two of its passes (``take_changed_secrets``);
#: beyond this the pass learns only that there were too many to single out.
MAX_CHANGED_SECRETS = 20


@dataclass(frozen=True)
class Mount:
    namespace: str
    pod: str
    via: str
    sub_path: bool


def mounts_index(pods: Iterable[PodRecord], kind: str = "Secret") -> dict[Key, list[Mount]]:
    """(namespace, name) of each Secret (or ConfigMap) these Pods reference -> the Pods referencing it."""
    index: dict[Key, list[Mount]] = defaultdict(list)
    for pod in pods:
        for ref in pod.references:
            if ref.kind == kind:
                index[(pod.namespace, ref.name)].append(Mount(pod.namespace, pod.name, ref.via, ref.sub_path))
    return dict(index)


def _by_kind(pairs: Iterable[tuple[str, Key]]) -> dict[str, list[Key]]:
    out: dict[str, list[Key]] = defaultdict(list)
    for kind, key in pairs:
        out[kind].append(key)
    return out


@dataclass
class _ServedWatch:
    """A :class:`~certpolicy.inventory.wakes.Served` source: its store, and its watch once started."""

    wake: Served
    store: RecordStore[Any]
    watcher: ListWatcher | None = None
    checked_at: float | None = None  # monotonic time of the last "is it served and listable?"
    unreadable: str | None = None  # why it is served but cannot be listed (RBAC), else None


def default_watch_timeout() -> int:
    return int(os.environ.get(WATCH_TIMEOUT_ENV) or DEFAULT_WATCH_TIMEOUT)


class Inventory:
    def __init__(self, api_client: ApiClient, *, watch_timeout: int | None = None) -> None:
        self.raw = RawClient(api_client)
        self.watch_timeout = watch_timeout or default_watch_timeout()
        # Every store and watch comes from the table of wake-up sources (inventory/wakes.py).
        self.watchers: list[ListWatcher] = []  # the Always watches, started with the inventory
        self.stores: dict[str, RecordStore[Any]] = {}  # source -> its store (Always)
        self.served: dict[str, _ServedWatch] = {}  # source -> its store and watch (Served)
        # Objects named one by one: one metadata watch per resource, bodies read for tracked names only.
        self.named = {kind: NamedObjects(self.raw, w, watch_timeout=self.watch_timeout)
                      for kind, w in NAMED_WATCHES.items()}
        self.named_stores: dict[str, dict[str, RecordStore[Any]]] = {}  # source -> kind -> store (Named)
        # Bundle targets, one store and watch per kind, started when a policy first declares one.
        self.bundle_targets: dict[str, RecordStore[BundleRecord]] = {
            kind: RecordStore(kind, functools.partial(parse_bundle_object, kind=kind)) for kind in TARGET_KINDS}
        self._target_watchers: dict[str, ListWatcher] = {}
        # Label-selected watches (Secrets of any type, trust stores, caBundles), shared and counted.
        self.labelled = LabelledWatches(self.raw, LABELLED_KINDS, watch_timeout=self.watch_timeout,
                                        on_change=lambda key, change: self._route(f"{LABELLED}:{key}", change))
        for wake in WAKES:
            self._build(wake)
        self.secrets: RecordStore[SecretRecord] = self.stores[TLS_SECRETS]
        self.pods: RecordStore[PodRecord] = self.stores[PODS]
        self.namespaces: RecordStore[NamespaceRecord] = self.stores[NAMESPACES]
        self.named_secrets: RecordStore[SecretRecord] = self.named_stores[NAMED_SECRETS]["Secret"]
        # Keystore password Secrets: by name in every namespace, metadata only (their resourceVersion).
        self.password_secrets: RecordStore[str] = self.named_stores[PASSWORD_SECRETS]["Secret"]
        self.bundle_sources: dict[str, RecordStore[BundleRecord]] = self.named_stores[BUNDLE_SOURCES]
        self.certificates: RecordStore[CertificateRecord] = self.served[CERTIFICATES].store
        self._reads: dict[str, Reads] = {}
        # policy -> the Secrets whose change woke it since its last pass took them (None: too many)
        self._changed_secrets: dict[str, set[Key] | None] = {}
        # Policies whose loop ended, most recent last: a pass still running then must not hold
        # anything again. A late pass comes seconds after; the most recent MAX_GONE are enough.
        self._gone: dict[str, None] = {}
        self._declaring = threading.Lock()  # one declaration at a time: holds and releases never interleave
        self._wake: Callable[[list[str]], None] | None = None
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._stopping = threading.Event()  # ends the Served checks
        self._served: dict[str, bool] = {}  # per target kind: whether the API server serves it
        self._mounts_cache: tuple[int, dict[Key, list[Mount]]] | None = None
        self._pods_version = 0
        self.pods.listeners.insert(0, self._pods_changed)  # before routing: a woken pass sees the new mounts

    def _build(self, wake: Wake) -> None:
        """The store(s) and watch of one wake-up source, each change routed under its name."""
        route = functools.partial(self._route, wake.source)
        w = wake.watch
        stores: list[RecordStore[Any]] = []
        if isinstance(w, Always):
            store: RecordStore[Any] = RecordStore(w.kind, w.parse)
            self.stores[wake.source] = store
            self.watchers.append(ListWatcher.of(self.raw, w.watched, store, watch_timeout=self.watch_timeout))
            stores.append(store)
        elif isinstance(w, Served):
            store = RecordStore(w.kind, w.parse)
            self.served[wake.source] = _ServedWatch(w, store)
            stores.append(store)
        elif isinstance(w, Named):
            by_kind = self.named_stores.setdefault(wake.source, {})
            for kind in w.kinds:
                by_kind[kind] = self.named[kind].purpose(w.purpose, RecordStore(kind, w.parse(kind)))
                stores.append(by_kind[kind])
        elif isinstance(w, PerTargetKind):
            stores += self.bundle_targets.values()
        # Labelled: its watches start as policies declare them, routed as LABELLED:<key> (on_change).
        for store in stores:
            store.listeners.append(route)

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Inventory:
        """Start the shared watches (once: later calls are no-ops)."""
        with self._lock:
            if self._started:
                return self
            self._started = True
        for w in self.watchers:
            w.start()
        if not self._start_served():
            threading.Thread(target=self._served_checks, name="served-check", daemon=True).start()
        return self

    def _served_checks(self) -> None:
        """Until every Served watch runs: ask again every ``recheck`` seconds (one discovery GET),
        so a CRD installed after the operator started is watched within that time."""
        interval = min(sw.wake.recheck for sw in self.served.values())
        while not self._stopping.wait(interval):
            if self._start_served():
                return

    def _start_served(self) -> bool:
        """Start each Served watch whose resource the API server now serves and lets us list;
        returns whether every one runs."""
        for sw in self.served.values():
            with self._lock:
                if sw.watcher is not None or self._closed or not self._started:
                    continue
                sw.checked_at = time.monotonic()
            w = sw.wake
            try:
                if not resource_served(self.raw, w.api_version, w.plural):
                    sw.unreadable = None  # not served: nothing of that kind exists to judge
                    if len(sw.store):  # its watch ended (CRD removed) a recheck ago: they are gone
                        sw.store.replace(())
                    continue
                self.raw.get(w.watched.path, {"limit": 1})  # RBAC: a refused list would loop the watch
            except ApiException as e:
                sw.unreadable = f"HTTP {e.status} {e.reason or ''}".strip()
                log.warning("cannot list %s (%s): asked again in %.0fs", w.watched.path, sw.unreadable, w.recheck)
                continue
            sw.unreadable = None
            with self._lock:
                if sw.watcher is not None or self._closed:
                    continue
                sw.watcher = ListWatcher.of(self.raw, w.watched, sw.store, watch_timeout=self.watch_timeout)
                sw.watcher.unserved = functools.partial(self._unserved, sw)
            log.info("%s served: watching them", w.plural)
            sw.watcher.start()
        with self._lock:
            return all(sw.watcher is not None for sw in self.served.values())

    def _unserved(self, sw: _ServedWatch) -> bool:
        """Asked by a Served watch on a 404: whether its resource is no longer served (the CRD was
        removed). Then the watch is forgotten and served checks resume, as at start: without this
        it retried every 10 s forever, heard nothing, and failed /healthz one silence limit later.
        A 404 while the resource is still listed in discovery (an API server warming up) is retried.
        The store is emptied only if the next check still finds the resource unserved."""
        w = sw.wake
        try:
            if resource_served(self.raw, w.api_version, w.plural):
                return False
        except ApiException:
            return False
        with self._lock:
            if self._closed:
                return False
            sw.watcher = None
        log.info("%s no longer served: asking again every %.0fs", w.plural, w.recheck)
        threading.Thread(target=self._served_checks, name="served-check", daemon=True).start()
        return True

    def stop(self) -> None:
        with self._lock:
            self._closed = True
        self._stopping.set()
        for named in self.named.values():
            named.stop()
        self.labelled.stop()
        for w in self.all_watchers():
            w.stop(timeout=2)

    def all_watchers(self) -> list[ListWatcher]:
        with self._lock:
            named = [n.watcher for n in self.named.values() if n.watcher is not None]
            named += [sw.watcher for sw in self.served.values() if sw.watcher is not None]
            targets = list(self._target_watchers.values())
        return self.watchers + targets + named + self.labelled.watchers()

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for w in self.all_watchers():
            if not w.synced.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def health(self, max_silence: float | None = None) -> tuple[bool, str]:
        """Whether every watch is alive and has heard from the API server recently.

        A watch hears from the server at least once per ``watch_timeout`` even on a quiet cluster
        (the server ends the stream then and the watch reopens it), so silence beyond that means
        the API server is unreachable or the watch is stuck. The limit is read here, so that both
        answers of /healthz (kopf's probe in the leader, the standby's own server) apply the same.
        """
        max_silence = max_silence or float(os.environ.get(WATCH_SILENCE_LIMIT_ENV) or 0) or (self.watch_timeout + 90)
        # A healthy watch on a quiet cluster may hear nothing for a whole watch period: a limit at
        # or below it fails /healthz (and restarts the Pod) whenever nothing changes for that long,
        # and "healthy again" would need every watch to reconnect within one limit of the others.
        max_silence = max(max_silence, self.watch_timeout + MIN_SILENCE_MARGIN)
        now = time.monotonic()
        for w in self.all_watchers():
            if w.stopped:
                continue
            if not w._thread.is_alive():  # noqa: SLF001 - the inventory owns its watchers
                return False, f"watch of {w.name} has stopped"
            silence = now - w.last_activity
            if silence > max_silence:
                return False, f"watch of {w.name} silent for {silence:.0f}s"
        return True, "ok"

    # ---- what each policy reads ------------------------------------------------------------------
    def wake_with(self, callback: Callable[[list[str]], None]) -> None:
        """``callback(policies)`` is called (from a watch thread) with the policies a change concerns."""
        self._wake = callback

    def declare(self, policy: str, reads: Reads) -> bool:
        """Hold what ``reads`` needs for ``policy`` (names not yet tracked are read before this
        returns) and release what its previous declaration held; returns whether every source
        the policy reads is synced, i.e. whether it may be evaluated now."""
        with self._declaring:
            with self._lock:
                if policy in self._gone:
                    return False  # a pass still running when its loop was stopped
                old = self._reads.get(policy)
                self._reads[policy] = reads
            if old != reads:
                self._hold(reads)
                if old is not None:
                    self._release(old)
        return self.synced_for(reads)

    def forget(self, policy: str) -> None:
        """The policy's loop ended (deleted, or the operator stops): release what it held."""
        with self._declaring:
            with self._lock:
                self._gone[policy] = None
                while len(self._gone) > MAX_GONE:
                    del self._gone[next(iter(self._gone))]
                old = self._reads.pop(policy, None)
                self._changed_secrets.pop(policy, None)
            if old is not None:
                self._release(old)

    def revive(self, policy: str) -> None:
        """A loop starts for ``policy`` (again, if it was re-created under the same name)."""
        with self._lock:
            self._gone.pop(policy, None)

    def declared(self) -> dict[str, Reads]:
        with self._lock:
            return dict(self._reads)

    def _hold(self, reads: Reads) -> None:
        for wake in WAKES:
            w = wake.watch
            if isinstance(w, Named):
                for kind, keys in _by_kind(w.keys(reads) if w.keys else ()).items():
                    self.named[kind].acquire(w.purpose, keys)
                if w.names:
                    for kind in w.kinds:
                        self.named[kind].acquire_names(w.purpose, w.names(reads))
            elif isinstance(w, PerTargetKind):
                for kind in w.kinds(reads):
                    self._watch_targets(kind)
            elif isinstance(w, Labelled):
                self.labelled.acquire(w.keys(reads))

    def _release(self, reads: Reads) -> None:
        for wake in reversed(WAKES):  # target watches are never released: they serve every policy
            w = wake.watch
            if isinstance(w, Labelled):
                self.labelled.release(w.keys(reads))
            elif isinstance(w, Named):
                for kind, keys in _by_kind(w.keys(reads) if w.keys else ()).items():
                    self.named[kind].release(w.purpose, keys)
                if w.names:
                    for kind in w.kinds:
                        self.named[kind].release_names(w.purpose, w.names(reads))

    def _watch_targets(self, kind: str) -> None:
        if kind not in TARGET_KINDS:
            return
        with self._lock:
            if kind in self._target_watchers:
                return
        if kind not in self._served:
            try:
                self._served[kind] = kind_served(self.raw, kind)
            except ApiException as e:
                log.warning("cannot tell whether %s objects are served (HTTP %s)", kind, e.status)
                return  # asked again on the next declaration
        if not self._served[kind]:
            return  # nothing can be written there either: bundles.py reports NotServed
        with self._lock:
            if kind in self._target_watchers or self._closed:
                return
            watcher = self._target_watchers[kind] = ListWatcher.of(
                self.raw, TARGET_KINDS[kind].watched, self.bundle_targets[kind], watch_timeout=self.watch_timeout)
        watcher.start()

    def synced_for(self, reads: Reads) -> bool:
        """Every Always watch listed, and what ``reads`` holds through the others: its labelled
        watches listed and each object it names one by one read."""
        if not all(w.synced.is_set() for w in self.watchers):
            return False
        for wake in WAKES:
            w = wake.watch
            if isinstance(w, Labelled) and not self.labelled.synced(w.keys(reads)):
                return False
            if isinstance(w, Named) and w.keys:
                if any(self.named[kind].unread(keys) for kind, keys in _by_kind(w.keys(reads)).items()):
                    return False
        return True

    def _route(self, source: str, change: Change) -> None:
        wake = self._wake
        if wake is None:
            return
        with self._lock:
            reads = list(self._reads.items())
        if not reads:
            return
        seen = Seen(source, self._namespace_labels, self.secret)
        hits = [policy for policy, r in reads if concerns(r, change, seen)]
        if hits:
            if change.kind == "Secret":
                self._remember_changed(hits, change.key)
            wake(hits)

    def _remember_changed(self, policies: list[str], key: Key) -> None:
        with self._lock:
            for policy in policies:
                keys = self._changed_secrets.setdefault(policy, set())
                if keys is not None:
                    keys.add(key)
                    if len(keys) > MAX_CHANGED_SECRETS:
                        self._changed_secrets[policy] = None

    def take_changed_secrets(self, policy: str) -> frozenset[Key] | None:
        """The Secrets whose change concerned ``policy`` since the last call (empty: none), or None
        when more than :data:`MAX_CHANGED_SECRETS` changed: its pass judges these first and posts
        their events before it walks every selected Secret (handlers/reconcile.py)."""
        with self._lock:
            keys = self._changed_secrets.pop(policy, set())
        return None if keys is None else frozenset(keys)

    # ---- cert-manager Certificates -------------------------------------------------------------
    def certificates_unreadable(self, wait: float = 5.0) -> str | None:
        """Why Certificates are served but not (yet) read: refused (RBAC) or still listing after
        ``wait`` seconds (a first list just started); None when they are read or the cluster
        serves none (then no Secret has one to judge)."""
        sw = self.served[CERTIFICATES]
        if sw.unreadable:
            return f"the operator may not list certificates.cert-manager.io ({sw.unreadable})"
        if sw.watcher is not None and not sw.watcher.synced.wait(wait):
            return "the operator has not finished listing certificates.cert-manager.io"
        return None

    def certificates_listing(self) -> bool:
        """Whether Certificates are served and their first list is still running (not refused,
        not finished): what :meth:`certificates_unreadable` would wait for."""
        sw = self.served[CERTIFICATES]
        return not sw.unreadable and sw.watcher is not None and not sw.watcher.synced.is_set()

    def certificates_by_secret(self) -> dict[Key, CertificateRecord]:
        """(namespace, spec.secretName) -> its Certificate (the first by name when several name it);
        one pass over the store, so a policy's pass builds it once for all its Secrets."""
        out: dict[Key, CertificateRecord] = {}
        for rec in sorted(self.certificates.snapshot().values(), key=lambda r: (r.namespace, r.name), reverse=True):
            if rec.secret_name:
                out[rec.secret_key] = rec
        return out

    def certificate_for(self, secret: SecretRecord, by_secret: Callable[[], Mapping[Key, CertificateRecord]]
                        ) -> CertificateRecord | None:
        """The Certificate that writes ``secret``: the one its cert-manager annotation names (when
        its spec.secretName still names the Secret), else one whose spec.secretName names it (the
        annotation is written at the first issuance only). ``by_secret`` (a cached
        :meth:`certificates_by_secret`) is asked only then: a pass whose Secrets all carry the
        annotation never sorts every Certificate."""
        owner = secret.cert_manager
        if owner is not None:
            rec = self.certificates.get((secret.namespace, owner.certificate))
            if rec is not None and rec.secret_name == secret.name:
                return rec
        return by_secret().get((secret.namespace, secret.name))

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        return self._namespace_labels(namespace)

    def _namespace_labels(self, namespace: str) -> Mapping[str, str] | None:
        rec = self.namespaces.get(("", namespace))
        return rec.label_map if rec else None

    # ---- lookups ---------------------------------------------------------------------------------
    def bundle(self, kind: str, namespace: str, name: str) -> tuple[BundleRecord | None, bool]:
        """The declared trust bundle source: (record, read); record is None when it does not exist."""
        key = (namespace, name)
        return self.bundle_sources[kind].get(key), not self.named[kind].unread([key])

    def labelled_records(self, key: WatchKey) -> dict:
        """What the labelled watch ``key`` holds (declared by some policy), by (namespace, name)."""
        return self.labelled.records(key)

    def secret(self, key: Key) -> SecretRecord | None:
        return self.secrets.get(key) or self.named_secrets.get(key)

    # ---- mounts ----------------------------------------------------------------------------------
    def _pods_changed(self, change: Change) -> None:
        self._pods_version += 1

    def mounts(self, kind: str = "Secret") -> dict[Key, list[Mount]]:
        """(namespace, name) of each referenced Secret (or ConfigMap) -> the Pods referencing it."""
        version = self._pods_version
        cache = self._mounts_cache
        if kind == "Secret" and cache and cache[0] == version:
            return cache[1]
        result = mounts_index(self.pods.snapshot().values(), kind)
        if kind == "Secret":
            self._mounts_cache = (version, result)
        return result


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

What each policy reads is declared in one place (:class:`~certpolicy.inventory.interest.Reads`):
:meth:`Inventory.declare` holds those sources for it, a change wakes only the policies it
concerns, and :meth:`Inventory.declare` says whether everything the policy reads is synced.
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

from certpolicy.inventory.interest import (
    BUNDLE_SOURCES,
    BUNDLE_TARGETS,
    NAMED_SECRETS,
    NAMESPACES,
    PASSWORD_SECRETS,
    PODS,
    TLS_SECRETS,
    Reads,
)
from certpolicy.inventory.labelled import KINDS as LABELLED_KINDS
from certpolicy.inventory.labelled import LABELLED, LabelledWatches, WatchKey
from certpolicy.inventory.named import NamedObjects
from certpolicy.inventory.records import (
    BundleRecord,
    NamespaceRecord,
    PodRecord,
    SecretRecord,
    parse_bundle_object,
    parse_namespace_object,
    parse_pod_object,
    parse_secret_object,
)
from certpolicy.inventory.recordstore import Change, Key, RecordStore
from certpolicy.inventory.watch import ListWatcher
from certpolicy.kube.managed import kind_served
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.targets import TARGET_KINDS
from certpolicy.kube.watched import Watched

log = logging.getLogger(__name__)
TLS_TYPE = "kubernetes.io/tls"
WATCH_TIMEOUT_ENV = "CERTPOLICY_WATCH_TIMEOUT"
#: Seconds of silence after which a watch counts as dead (default: the watch timeout + 90 s).
WATCH_SILENCE_LIMIT_ENV = "CERTPOLICY_WATCH_SILENCE_LIMIT"
DEFAULT_WATCH_TIMEOUT = 240
MAX_GONE = 1000

TLS_SECRETS_WATCH = Watched(TLS_SECRETS, "/api/v1/secrets", field_selector=f"type={TLS_TYPE}")
PODS_WATCH = Watched(PODS, "/api/v1/pods")
NAMESPACES_WATCH = Watched(NAMESPACES, "/api/v1/namespaces")
#: Objects named one by one: which of them changed, from their metadata only.
NAMED_WATCHES = {
    "Secret": Watched("named-secrets", "/api/v1/secrets", metadata_only=True),
    "ConfigMap": Watched("named-configmaps", "/api/v1/configmaps", metadata_only=True),
}
BUNDLE_SOURCE_KINDS = ("ConfigMap", "Secret")


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


def _parse_named_secret(obj: dict) -> SecretRecord | None:
    # A named TLS Secret is in the TLS watch already; this store holds the other types.
    return None if obj.get("type") == TLS_TYPE else parse_secret_object(obj)


def _password_version(meta_obj: dict) -> str:
    """A password Secret's record: its resourceVersion (from the metadata watch; never its data)."""
    return str((meta_obj.get("metadata") or {}).get("resourceVersion") or "")


def default_watch_timeout() -> int:
    return int(os.environ.get(WATCH_TIMEOUT_ENV) or DEFAULT_WATCH_TIMEOUT)


class Inventory:
    def __init__(self, api_client: ApiClient, *, watch_timeout: int | None = None) -> None:
        self.raw = RawClient(api_client)
        self.watch_timeout = watch_timeout or default_watch_timeout()
        self.secrets: RecordStore[SecretRecord] = RecordStore("Secret", parse_secret_object)
        self.pods: RecordStore[PodRecord] = RecordStore("Pod", parse_pod_object)
        self.namespaces: RecordStore[NamespaceRecord] = RecordStore("Namespace", parse_namespace_object)
        self.watchers = [ListWatcher.of(self.raw, w, s, watch_timeout=self.watch_timeout) for w, s in (
            (TLS_SECRETS_WATCH, self.secrets), (PODS_WATCH, self.pods), (NAMESPACES_WATCH, self.namespaces))]
        # Bundle targets, one store and watch per kind, started when a policy first declares one.
        self.bundle_targets: dict[str, RecordStore[BundleRecord]] = {
            kind: RecordStore(kind, functools.partial(parse_bundle_object, kind=kind)) for kind in TARGET_KINDS}
        self._target_watchers: dict[str, ListWatcher] = {}
        # Objects named one by one: one metadata watch per resource, bodies read for tracked names only.
        self.named = {kind: NamedObjects(self.raw, w, watch_timeout=self.watch_timeout)
                      for kind, w in NAMED_WATCHES.items()}
        self.named_secrets: RecordStore[SecretRecord] = self.named["Secret"].purpose(
            "secret", RecordStore("Secret", _parse_named_secret))
        # Keystore password Secrets (passwordSecretRef names a Secret in each keystore's namespace):
        # tracked by name in every namespace, metadata only, to wake the policies that use them.
        self.password_secrets: RecordStore[str] = self.named["Secret"].purpose(
            "password", RecordStore("Secret", _password_version))
        self.bundle_sources: dict[str, RecordStore[BundleRecord]] = {
            kind: self.named[kind].purpose("bundle", RecordStore(kind, functools.partial(parse_bundle_object,
                                                                                         kind=kind)))
            for kind in BUNDLE_SOURCE_KINDS}
        # Label-selected watches (Secrets of any type, trust stores, caBundles), shared and counted.
        self.labelled = LabelledWatches(self.raw, LABELLED_KINDS, watch_timeout=self.watch_timeout,
                                        on_change=lambda key, change: self._route(f"{LABELLED}:{key}", change))
        self._reads: dict[str, Reads] = {}
        # Policies whose loop ended, most recent last: a pass still running then must not hold
        # anything again. A late pass comes seconds after; the most recent MAX_GONE are enough.
        self._gone: dict[str, None] = {}
        self._declaring = threading.Lock()  # one declaration at a time: holds and releases never interleave
        self._wake: Callable[[list[str]], None] | None = None
        self._lock = threading.Lock()
        self._started = False
        self._closed = False
        self._served: dict[str, bool] = {}  # per target kind: whether the API server serves it
        self._mounts_cache: tuple[int, dict[Key, list[Mount]]] | None = None
        self._pods_version = 0
        self.pods.listeners.append(self._pods_changed)
        routed: list[tuple[str, RecordStore[Any]]] = [
            (TLS_SECRETS, self.secrets), (PODS, self.pods), (NAMESPACES, self.namespaces),
            (NAMED_SECRETS, self.named_secrets), (PASSWORD_SECRETS, self.password_secrets),
            *((BUNDLE_TARGETS, s) for s in self.bundle_targets.values()),
            *((BUNDLE_SOURCES, s) for s in self.bundle_sources.values())]
        for source, store in routed:
            store.listeners.append(functools.partial(self._route, source))

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> Inventory:
        """Start the shared watches (once: later calls are no-ops)."""
        with self._lock:
            if self._started:
                return self
            self._started = True
        for w in self.watchers:
            w.start()
        return self

    def stop(self) -> None:
        with self._lock:
            self._closed = True
        for named in self.named.values():
            named.stop()
        self.labelled.stop()
        for w in self.all_watchers():
            w.stop(timeout=2)

    def all_watchers(self) -> list[ListWatcher]:
        with self._lock:
            named = [n.watcher for n in self.named.values() if n.watcher is not None]
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
        self.named["Secret"].acquire("secret", reads.tracked_secrets())
        self.named["Secret"].acquire_names("password", reads.keystore_passwords)
        if reads.bundle_source is not None:
            src = reads.bundle_source
            self.named[src.kind].acquire("bundle", [(src.namespace, src.name)])
        for kind, _name in reads.targets:
            self._watch_targets(kind)
        self.labelled.acquire(reads.labelled)

    def _release(self, reads: Reads) -> None:
        self.labelled.release(reads.labelled)
        self.named["Secret"].release("secret", reads.tracked_secrets())
        self.named["Secret"].release_names("password", reads.keystore_passwords)
        if reads.bundle_source is not None:
            src = reads.bundle_source
            self.named[src.kind].release("bundle", [(src.namespace, src.name)])

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
        if not all(w.synced.is_set() for w in self.watchers) or not self.labelled.synced(reads.labelled):
            return False
        unread = self.named["Secret"].unread(reads.tracked_secrets())
        if reads.bundle_source is not None:
            src = reads.bundle_source
            unread |= self.named[src.kind].unread([(src.namespace, src.name)])
        return not unread

    def _route(self, source: str, change: Change) -> None:
        wake = self._wake
        if wake is None:
            return
        with self._lock:
            reads = list(self._reads.items())
        if not reads:
            return
        hits = [policy for policy, r in reads if r.concerns(source, change, self._namespace_labels, self.secret)]
        if hits:
            wake(hits)

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


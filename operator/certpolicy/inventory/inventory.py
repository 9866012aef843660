"""The cluster's TLS Secrets, the Pods that mount Secrets, and namespace labels, kept current.

Three cluster-wide list-then-watch loops with server-side filtering where the API allows it
(``fieldSelector=type=kubernetes.io/tls`` for Secrets), plus one loop per namespace that holds a
Secret of another type named in some policy. Memory stays proportional to the certificates:
records hold parsed certificate summaries, never Secret data.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from kubernetes.client import ApiClient

from certpolicy.inventory.records import (
    BundleRecord, NamespaceRecord, PodRecord, SecretRecord, parse_bundle_object, parse_namespace_object,
    parse_pod_object, parse_secret_object,
)
from certpolicy.inventory.store import Key, Listener, RecordStore, key_of
from certpolicy.inventory.watch import ListWatcher
from certpolicy.kube.rawapi import RawClient

log = logging.getLogger(__name__)
TLS_TYPE = "kubernetes.io/tls"


@dataclass(frozen=True)
class Mount:
    namespace: str
    pod: str
    via: str
    sub_path: bool


class Inventory:
    def __init__(self, api_client: ApiClient, *, watch_timeout: int = 240) -> None:
        self.raw = RawClient(api_client)
        self.watch_timeout = watch_timeout
        self.secrets: RecordStore[SecretRecord] = RecordStore("Secret", parse_secret_object)
        self.pods: RecordStore[PodRecord] = RecordStore("Pod", parse_pod_object)
        self.namespaces: RecordStore[NamespaceRecord] = RecordStore("Namespace", parse_namespace_object)
        # Secrets of other types, named explicitly by a policy: one watch per namespace, records kept
        # only for the tracked names.
        self._tracked: set[Key] = set()
        self.named_secrets: RecordStore[SecretRecord] = RecordStore("Secret", self._parse_tracked)
        # Trust bundle targets the operator wrote (labelled): watched so that an edit by someone
        # else is repaired at once, merged with their certificates.
        self.bundle_targets: RecordStore[BundleRecord] = RecordStore("ConfigMap", parse_bundle_object)
        self._named_watchers: dict[str, ListWatcher] = {}
        self._bundle_watchers: dict[tuple[str, str, str], ListWatcher] = {}
        self._bundle_stores: dict[tuple[str, str, str], RecordStore[BundleRecord]] = {}
        self._bundle_listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._started = False
        self.watchers = [
            ListWatcher(self.raw, "/api/v1/secrets", self.secrets, name="secrets",
                        query={"fieldSelector": f"type={TLS_TYPE}"}, watch_timeout=watch_timeout),
            ListWatcher(self.raw, "/api/v1/pods", self.pods, name="pods", watch_timeout=watch_timeout),
            ListWatcher(self.raw, "/api/v1/namespaces", self.namespaces, name="namespaces",
                        watch_timeout=watch_timeout),
            ListWatcher(self.raw, "/api/v1/configmaps", self.bundle_targets, name="bundle-targets",
                        query={"labelSelector": "certpolicy.io/bundle"}, watch_timeout=watch_timeout),
        ]
        self._mounts_cache: tuple[int, dict[Key, list[Mount]]] | None = None
        self._pods_version = 0
        self.pods.listeners.append(self._pods_changed)

    # ---- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "Inventory":
        """Start the watches (once: later calls are no-ops)."""
        with self._lock:
            if self._started:
                return self
            self._started = True
        for w in self.watchers:
            w.start()
        return self

    def stop(self) -> None:
        for w in self.all_watchers():
            w.stop(timeout=2)

    def all_watchers(self) -> list[ListWatcher]:
        with self._lock:
            return self.watchers + list(self._named_watchers.values()) + list(self._bundle_watchers.values())

    def wait_synced(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        for w in self.all_watchers():
            if not w.synced.wait(max(0.0, deadline - time.monotonic())):
                return False
        return True

    def add_listener(self, listener: Listener) -> None:
        for store in (self.secrets, self.pods, self.namespaces, self.named_secrets, self.bundle_targets):
            store.listeners.append(listener)
        with self._lock:
            self._bundle_listeners.append(listener)
            for store in self._bundle_stores.values():
                store.listeners.append(listener)

    def health(self, max_silence: float | None = None) -> tuple[bool, str]:
        """Whether every watch is alive and has heard from the API server recently."""
        max_silence = max_silence or (self.watch_timeout + 90)
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

    # ---- named Secrets of other types ----------------------------------------------------------
    def _parse_tracked(self, obj: dict) -> SecretRecord | None:
        if key_of(obj) not in self._tracked or obj.get("type") == TLS_TYPE:
            return None
        return parse_secret_object(obj)

    def track(self, keys: Iterable[Key]) -> None:
        """Make sure every named Secret is watched (those of type kubernetes.io/tls already are)."""
        new_namespaces = []
        with self._lock:
            for key in keys:
                if key not in self._tracked:
                    self._tracked.add(key)
                    if key[0] not in self._named_watchers:
                        new_namespaces.append(key[0])
            for ns in new_namespaces:
                self._named_watchers[ns] = ListWatcher(
                    self.raw, f"/api/v1/namespaces/{ns}/secrets", self.named_secrets, name=f"secrets-{ns}",
                    query={"fieldSelector": f"type!={TLS_TYPE}"}, watch_timeout=self.watch_timeout,
                ).start()

    # ---- trust bundle sources -------------------------------------------------------------------
    def bundle(self, kind: str, namespace: str, name: str) -> tuple[BundleRecord | None, bool]:
        """The named ConfigMap/Secret holding a trust bundle, watched from the first request on.

        Returns (record, synced): record is None when the object does not exist (once synced).
        """
        key = (kind, namespace, name)
        with self._lock:
            watcher = self._bundle_watchers.get(key)
            if watcher is None:
                plural = "configmaps" if kind == "ConfigMap" else "secrets"
                store: RecordStore[BundleRecord] = RecordStore(kind, parse_bundle_object)
                store.listeners.extend(self._bundle_listeners)
                watcher = ListWatcher(
                    self.raw, f"/api/v1/namespaces/{namespace}/{plural}", store, name=f"{plural}-{namespace}-{name}",
                    query={"fieldSelector": f"metadata.name={name}"}, watch_timeout=self.watch_timeout,
                )
                self._bundle_watchers[key] = watcher
                self._bundle_stores[key] = store
                watcher.start()
            store = self._bundle_stores[key]
        synced = watcher.synced.wait(5)
        return store.get((namespace, name)), synced

    def secret(self, key: Key) -> SecretRecord | None:
        return self.secrets.get(key) or self.named_secrets.get(key)

    # ---- mounts ----------------------------------------------------------------------------------
    def _pods_changed(self, kind: str, key: Key) -> None:
        self._pods_version += 1

    def mounts(self, kind: str = "Secret") -> dict[Key, list[Mount]]:
        """(namespace, name) of each referenced Secret (or ConfigMap) -> the Pods referencing it."""
        version = self._pods_version
        cache = self._mounts_cache
        if kind == "Secret" and cache and cache[0] == version:
            return cache[1]
        index: dict[Key, list[Mount]] = defaultdict(list)
        for pod in self.pods.snapshot().values():
            for ref in pod.references:
                if ref.kind == kind:
                    index[(pod.namespace, ref.name)].append(Mount(pod.namespace, pod.name, ref.via, ref.sub_path))
        result = dict(index)
        if kind == "Secret":
            self._mounts_cache = (version, result)
        return result


def wake_on_change(callback: Callable[[], None]) -> Listener:
    """A listener that ignores which object changed and just calls ``callback``."""

    def listener(kind: str, key: Key) -> None:
        callback()

    return listener

"""Objects named one by one (a Secret in ``spec.selector.names``, a trust bundle source).

One watch per resource however many names are tracked, never one per name or per namespace: a
metadata-only list-then-watch of the whole resource (names and versions, no bodies: the operator
never lists every Secret's data) tells which tracked object changed, and only those are read
with a GET. A name tracked for the first time is read at once, so a policy never judges a name
the inventory has not looked up yet, whether the object existed before or not.

Names are reference-counted per purpose; the watch runs while at least one name is tracked and
is stopped when the last one is released.

A purpose may also track a *name in every namespace* (:meth:`NamedObjects.acquire_names`): a
keystore's ``passwordSecretRef`` names a Secret in each keystore's own namespace. Such objects are
never read: their metadata from the watch goes to the purpose's store as it is, which is all a
wake-up needs (the pass reads the password itself, once).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Iterable

from kubernetes.client import ApiException

from certpolicy.inventory.recordstore import Key, RecordStore, key_of
from certpolicy.inventory.watch import ListWatcher
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.watched import Watched

log = logging.getLogger(__name__)


def _newer(rv: str, than: str | None) -> bool:
    """Whether version ``rv`` may replace ``than`` (resourceVersions are etcd revisions in practice;
    when one does not parse, the later arrival wins)."""
    if than is None:
        return True
    try:
        return int(rv) >= int(than)
    except ValueError:
        return True


class NamedObjects:
    def __init__(self, raw: RawClient, watched: Watched, *, watch_timeout: int = 240) -> None:
        self.raw = raw
        self.watched = watched
        self.watch_timeout = watch_timeout
        self._stores: dict[str, RecordStore] = {}  # purpose -> store (its parse decides what to keep)
        self._counts: dict[str, Counter[Key]] = {}
        #: purpose -> names tracked in every namespace; only purposes that track by name are here,
        #: since a relist replaces these purposes' stores wholesale (never a by-key purpose's store)
        self._names: dict[str, Counter[str]] = {}
        self._versions: dict[Key, str] = {}  # last version applied per tracked key (a deletion's too)
        self._watcher: ListWatcher | None = None
        self._unread: set[Key] = set()  # tracked keys whose last read failed (not 404): not synced
        self._closed = False  # stopped with the operator: a late pass must not start a watch again
        self._lock = threading.Lock()
        self.fetches = 0

    def purpose(self, name: str, store: RecordStore) -> RecordStore:
        self._stores[name] = store
        self._counts[name] = Counter()
        return store

    def _any_tracked(self) -> bool:
        return any(self._counts.values()) or any(self._names.values())

    def _by_name(self, key: Key) -> list[str]:
        return [p for p, c in self._names.items() if c[key[1]] > 0]

    def acquire_names(self, purpose: str, names: Iterable[str]) -> None:
        """Track objects named ``names`` in every namespace for ``purpose``, metadata only (pair
        with :meth:`release_names`)."""
        with self._lock:
            self._names.setdefault(purpose, Counter()).update(names)
            if self._watcher is None and self._any_tracked() and not self._closed:
                self._watcher = ListWatcher.of(self.raw, self.watched, self, watch_timeout=self.watch_timeout).start()

    def release_names(self, purpose: str, names: Iterable[str]) -> None:
        dropped, watcher = [], None
        with self._lock:
            counts = self._names.setdefault(purpose, Counter())
            for name in names:
                counts[name] -= 1
                if counts[name] <= 0:
                    del counts[name]
                    dropped.append(name)
            if not self._any_tracked():
                watcher, self._watcher = self._watcher, None
        store = self._stores[purpose]
        for key in store.snapshot():
            if key[1] in dropped:
                store.remove(key)
        if watcher is not None:
            watcher.stop(timeout=0)

    # ---- tracking ---------------------------------------------------------------------------------
    def _tracked(self, key: Key) -> list[str]:
        return [p for p, c in self._counts.items() if c[key] > 0]

    def acquire(self, purpose: str, keys: Iterable[Key]) -> None:
        """Track ``keys`` for ``purpose`` (once per call: pair with :meth:`release`); a key new to
        the purpose is read now, before this returns."""
        fresh = []
        with self._lock:
            counts = self._counts[purpose]
            for key in keys:
                if counts[key] == 0:
                    fresh.append(key)
                counts[key] += 1
            if self._watcher is None and self._any_tracked() and not self._closed:
                self._watcher = ListWatcher.of(self.raw, self.watched, self, watch_timeout=self.watch_timeout).start()
        for key in fresh:
            self._fetch(key, only=purpose)

    def release(self, purpose: str, keys: Iterable[Key]) -> None:
        dropped = []
        watcher = None
        with self._lock:
            counts = self._counts[purpose]
            for key in keys:
                counts[key] -= 1
                if counts[key] <= 0:
                    del counts[key]
                    dropped.append(key)
                    if not self._tracked(key):
                        self._versions.pop(key, None)
                        self._unread.discard(key)
            if not self._any_tracked():
                watcher, self._watcher = self._watcher, None
        for key in dropped:
            self._stores[purpose].remove(key)
        if watcher is not None:
            watcher.stop(timeout=0)  # its thread ends on its own; never block the caller (the event loop)

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop(timeout=2)

    @property
    def watcher(self) -> ListWatcher | None:
        return self._watcher

    def unread(self, keys: Iterable[Key]) -> set[Key]:
        """Which of ``keys`` could not be read (an API error): a policy reading them must wait."""
        with self._lock:
            return {k for k in keys if k in self._unread}

    def tracked_count(self) -> int:
        with self._lock:
            return len({k for c in self._counts.values() for k in c})

    # ---- reading one object -------------------------------------------------------------------------
    def _path(self, key: Key) -> str:
        ns, name = key
        base, plural = self.watched.path.rsplit("/", 1)
        return f"{base}/namespaces/{ns}/{plural}/{name}" if ns else f"{base}/{plural}/{name}"

    def _fetch(self, key: Key, only: str | None = None) -> None:
        self.fetches += 1
        try:
            obj = self.raw.get(self._path(key))
        except ApiException as e:
            if e.status != 404:
                log.warning("reading %s %s/%s failed: HTTP %s", self.watched.name, key[0], key[1], e.status)
                with self._lock:
                    self._unread.add(key)
                return  # kept as it was; read again on the watch's next word about it
            obj = None
        except Exception as e:  # noqa: BLE001 - connection errors: same as an API error
            log.warning("reading %s %s/%s failed: %s", self.watched.name, key[0], key[1], type(e).__name__)
            with self._lock:
                self._unread.add(key)
            return
        self._apply(key, obj, only)

    def _apply(self, key: Key, obj: dict | None, only: str | None = None, deleted_at: str | None = None) -> None:
        rv = (obj or {}).get("metadata", {}).get("resourceVersion") if obj else deleted_at
        with self._lock:
            purposes = self._tracked(key) if only is None else ([only] if self._counts[only][key] else [])
            if not purposes:
                return
            self._unread.discard(key)
            if rv is not None:
                if not _newer(rv, self._versions.get(key)):
                    return  # an older read that arrived late
                self._versions[key] = rv
        for purpose in purposes:
            if obj is None:
                self._stores[purpose].remove(key)
            else:
                self._stores[purpose].upsert(obj)

    # ---- the metadata watch's store protocol --------------------------------------------------------
    def replace(self, items: Iterable[dict]) -> None:
        seen: dict[Key, str] = {}
        by_name: dict[str, list[dict]] = {p: [] for p in self._names}
        for meta_obj in items:
            key = key_of(meta_obj)
            with self._lock:
                tracked = bool(self._tracked(key))
                named_for = self._by_name(key)
            for purpose in named_for:
                by_name[purpose].append(meta_obj)
            if tracked:
                seen[key] = (meta_obj.get("metadata") or {}).get("resourceVersion", "")
        for purpose, found in by_name.items():
            if found or len(self._stores[purpose]):
                self._stores[purpose].replace(found)
        with self._lock:
            tracked_now = {k for c in self._counts.values() for k in c}
            known = dict(self._versions)
        for key in tracked_now:
            if key not in seen:
                self._apply(key, None)
            elif known.get(key) != seen[key] or key in self._unread:
                self._fetch(key)

    def upsert(self, meta_obj: dict) -> None:
        key = key_of(meta_obj)
        with self._lock:
            named_for = self._by_name(key)
        for purpose in named_for:
            self._stores[purpose].upsert(meta_obj)
        with self._lock:
            if not self._tracked(key) or self._versions.get(key) == (meta_obj.get("metadata") or {}).get(
                    "resourceVersion"):
                return
        self._fetch(key)

    def delete(self, meta_obj: dict) -> None:
        key = key_of(meta_obj)
        with self._lock:
            named_for = self._by_name(key)
        for purpose in named_for:
            store = self._stores[purpose]
            if store.get(key) is None:
                store.upsert(meta_obj)  # tracked after its last change: still heard as a deletion
            store.remove(key)
        self._apply(key_of(meta_obj), None, deleted_at=(meta_obj.get("metadata") or {}).get("resourceVersion"))

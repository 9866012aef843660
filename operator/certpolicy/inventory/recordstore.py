"""The in-memory stores fed by the watches: small parsed records, never Secret bodies.

Each store keeps one record per object and tells its listeners which keys changed, so the
policy loops re-evaluate only when something they select moved. Stores are written by the
watch threads and read by the reconcile threads; a lock guards each map and readers take
snapshots.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
Key = tuple[str, str]  # (namespace, name); namespace "" for cluster-scoped objects
R = TypeVar("R")


@dataclass(frozen=True)
class Change(Generic[R]):
    """One object's record changed: ``old``/``new`` are None when it appeared/disappeared.

    Both sides are given so that a listener can tell whether the object concerned someone before
    *or* after (a label removed takes a Secret out of a selection: its policy must still hear it).
    """

    kind: str
    key: Key
    old: R | None
    new: R | None


Listener = Callable[[Change], None]


def key_of(obj: dict) -> Key:
    meta = obj.get("metadata") or {}
    return meta.get("namespace") or "", meta.get("name") or ""


@dataclass
class RecordStore(Generic[R]):
    """Records of one kind, built by ``parse`` (which may return None to skip an object)."""

    kind: str
    parse: Callable[[dict], R | None]
    listeners: list[Listener] = field(default_factory=list)
    _records: dict[Key, R] = field(default_factory=dict)
    _versions: dict[Key, str] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: Objects whose content could not be fully read (the record says so) or not parsed at all.
    parse_errors: int = 0

    def _parse(self, obj: dict) -> R | None:
        try:
            rec = self.parse(obj)
        except Exception:  # noqa: BLE001 - one bad object must not stop the watch; counted and skipped
            self.parse_errors += 1
            log.warning("could not parse %s %s/%s; skipped", self.kind, *key_of(obj))
            return None
        if getattr(rec, "unreadable", False):
            self.parse_errors += 1
        return rec

    def _notify(self, changes: Iterable[tuple[Key, R | None, R | None]]) -> None:
        for key, old, new in changes:
            change = Change(self.kind, key, old, new)
            for listener in list(self.listeners):
                listener(change)

    def replace(self, items: Iterable[dict]) -> None:
        """The full state after a (re)list; ``items`` may be a lazy iterator of pages."""
        parsed: dict[Key, R] = {}
        versions: dict[Key, str] = {}
        changed: list[Key] = []
        with self._lock:
            old_versions = dict(self._versions)
            old_records = dict(self._records)
        for obj in items:
            key = key_of(obj)
            rv = (obj.get("metadata") or {}).get("resourceVersion", "")
            if old_versions.get(key) == rv and key in old_records:
                parsed[key] = old_records[key]  # unchanged across a relist: no re-parse
            else:
                rec = self._parse(obj)
                if rec is None:
                    continue
                parsed[key] = rec
                changed.append(key)
            versions[key] = rv
        removed = [k for k in old_records if k not in parsed]
        with self._lock:
            self._records = parsed
            self._versions = versions
        self._notify([(k, old_records.get(k), parsed[k]) for k in changed]
                     + [(k, old_records[k], None) for k in removed])

    def upsert(self, obj: dict) -> None:
        key = key_of(obj)
        rv = (obj.get("metadata") or {}).get("resourceVersion", "")
        with self._lock:
            if self._versions.get(key) == rv and key in self._records:
                return
        rec = self._parse(obj)
        with self._lock:
            if rec is None:
                old = self._records.pop(key, None)
                self._versions.pop(key, None)
            else:
                old = self._records.get(key)
                self._records[key] = rec
                self._versions[key] = rv
        if old is not None or rec is not None:
            self._notify([(key, old, rec)])

    def delete(self, obj: dict) -> None:
        self.remove(key_of(obj))

    def remove(self, key: Key) -> None:
        with self._lock:
            old = self._records.pop(key, None)
            self._versions.pop(key, None)
        if old is not None:
            self._notify([(key, old, None)])

    def get(self, key: Key) -> R | None:
        with self._lock:
            return self._records.get(key)

    def snapshot(self) -> dict[Key, R]:
        with self._lock:
            return dict(self._records)

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

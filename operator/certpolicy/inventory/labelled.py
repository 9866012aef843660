"""Objects selected by a server-side label selector: one shared, reference-counted watch per selector.

Policies select Secrets of any type, trust stores (ConfigMaps and Secrets) and caBundle holders
(webhook configurations, APIServices, CRDs) by label. Each distinct (resource, labelSelector,
fieldSelector) gets one list-then-watch, shared by every policy that declares it and stopped when
the last one releases it. The API server does the filtering: only objects carrying the labels are
ever sent, so the bodies of unrelated Secrets (Helm release Secrets reach 1 MiB each) are never
listed. An empty label selector is never watched here (:func:`watch_key` refuses it): selecting
everything would list every body of the resource.

Records are parsed summaries (certificates, never Secret data), built by the parse function of
the :class:`LabelledKind` the watch is for.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from certpolicy.inventory.recordstore import Change, RecordStore
from certpolicy.inventory.watch import ListWatcher
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.watched import Watched

log = logging.getLogger(__name__)

LABELLED = "labelled"  # the change source of every labelled watch


@dataclass(frozen=True)
class LabelledKind:
    """A resource watched by label, and how its objects become records."""

    name: str  # e.g. "store-configmaps": the watch's name in logs and metrics
    kind: str  # Secret | ConfigMap | ValidatingWebhookConfiguration | ...
    path: str  # the cluster-wide collection
    field_selector: str | None
    parse: Callable[[dict[str, Any]], Any]


@dataclass(frozen=True, order=True)
class WatchKey:
    """One labelled watch: which kind, which server-side label selector."""

    kind_name: str
    label_selector: str

    def __str__(self) -> str:
        return f"{self.kind_name}[{self.label_selector}]"


def watch_key(kind: LabelledKind, label_selector: str) -> WatchKey:
    if not label_selector.strip():
        raise ValueError("a labelled watch needs a non-empty label selector (an empty one lists every object)")
    return WatchKey(kind.name, label_selector)


class LabelledWatches:
    def __init__(self, raw: RawClient, kinds: dict[str, LabelledKind], *, watch_timeout: int,
                 on_change: Callable[[WatchKey, Change], None]) -> None:
        self.raw = raw
        self.kinds = kinds
        self.watch_timeout = watch_timeout
        self.on_change = on_change
        self._counts: dict[WatchKey, int] = {}
        self._stores: dict[WatchKey, RecordStore] = {}
        self._watchers: dict[WatchKey, ListWatcher] = {}
        self._lock = threading.Lock()
        self._closed = False

    def acquire(self, keys: frozenset[WatchKey]) -> None:
        start = []
        with self._lock:
            for key in keys:
                self._counts[key] = self._counts.get(key, 0) + 1
                if key in self._watchers or self._closed:
                    continue
                kind = self.kinds[key.kind_name]
                store = RecordStore(kind.kind, kind.parse)
                store.listeners.append(functools.partial(self.on_change, key))
                watched = Watched(f"{kind.name}[{key.label_selector}]", kind.path, label_selector=key.label_selector,
                                  field_selector=kind.field_selector)
                self._stores[key] = store
                self._watchers[key] = w = ListWatcher.of(self.raw, watched, store, watch_timeout=self.watch_timeout)
                start.append(w)
        for w in start:
            w.start()

    def release(self, keys: frozenset[WatchKey]) -> None:
        stop = []
        with self._lock:
            for key in keys:
                n = self._counts.get(key, 0) - 1
                if n > 0:
                    self._counts[key] = n
                    continue
                self._counts.pop(key, None)
                self._stores.pop(key, None)
                w = self._watchers.pop(key, None)
                if w is not None:
                    stop.append(w)
        for w in stop:
            w.stop(timeout=0)  # never block the caller; the thread ends on its own

    def stop(self) -> None:
        with self._lock:
            self._closed = True
            watchers = list(self._watchers.values())
            self._watchers.clear()
        for w in watchers:
            w.stop(timeout=2)

    def synced(self, keys: frozenset[WatchKey]) -> bool:
        with self._lock:
            return all(k in self._watchers and self._watchers[k].synced.is_set() for k in keys)

    def records(self, key: WatchKey) -> dict:
        with self._lock:
            store = self._stores.get(key)
        return store.snapshot() if store is not None else {}

    def watchers(self) -> list[ListWatcher]:
        with self._lock:
            return list(self._watchers.values())


# --- the resources watched by label ----------------------------------------------------------

def _kinds() -> dict[str, LabelledKind]:
    from functools import partial

    from certpolicy.inventory.records import parse_cabundle_object, parse_labelled_secret, parse_truststore_object

    kinds = [
        # Secrets of any type but kubernetes.io/tls (those are in the TLS watch already).
        LabelledKind("labelled-secrets", "Secret", "/api/v1/secrets", "type!=kubernetes.io/tls", parse_labelled_secret),
        LabelledKind("store-configmaps", "ConfigMap", "/api/v1/configmaps", None, partial(parse_truststore_object, kind="ConfigMap")),
        LabelledKind("store-secrets", "Secret", "/api/v1/secrets", None, partial(parse_truststore_object, kind="Secret")),
    ]
    for kind, path in CABUNDLE_PATHS.items():
        kinds.append(LabelledKind(f"cabundle-{kind.lower()}s", kind, path, None, partial(parse_cabundle_object, kind=kind)))
    return {k.name: k for k in kinds}


#: Where each kind holding caBundles is listed (all cluster-scoped; the operator only reads them).
CABUNDLE_PATHS = {
    "ValidatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "MutatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    "APIService": "/apis/apiregistration.k8s.io/v1/apiservices",
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
}
KINDS = _kinds()
LEAF_SECRETS = KINDS["labelled-secrets"]
TRUSTSTORE_KINDS = (KINDS["store-configmaps"], KINDS["store-secrets"])
CABUNDLE_KINDS = tuple(KINDS[f"cabundle-{k.lower()}s"] for k in CABUNDLE_PATHS)

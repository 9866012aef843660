"""Which Secrets a policy governs, decided in memory from the inventory.

A Secret is selected when its namespace matches ``namespaceSelector`` and its labels match
``secretSelector`` (TLS Secrets, and Secrets of any other type that hold a certificate or keystore
by the key patterns, read through a server-side label-selected watch), or when it is listed in ``names`` (any type); with
``mountedOnly`` only Secrets some Pod references remain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from certpolicy.inventory.interest import label_selectors, named_keys
from certpolicy.inventory.inventory import Mount
from certpolicy.inventory.labelled import LEAF_SECRETS, WatchKey, watch_key
from certpolicy.inventory.records import NamespaceRecord, SecretRecord
from certpolicy.inventory.recordstore import Key
from certpolicy.pki.secretdata import TLS_TYPE

R_co = TypeVar("R_co", covariant=True)


class Snapshots(Protocol[R_co]):
    def snapshot(self) -> Mapping[Key, R_co]: ...


class Selectable(Protocol):
    """What :func:`select` reads: the operator's :class:`~certpolicy.inventory.inventory.Inventory`,
    or the plugin's :class:`~certpolicy.plugin.scoped.ScopedInventory` (the same records, read for
    one question instead of watched)."""

    @property
    def namespaces(self) -> Snapshots[NamespaceRecord]: ...

    @property
    def secrets(self) -> Snapshots[SecretRecord]: ...

    def labelled_records(self, key: WatchKey) -> Mapping[Key, SecretRecord]: ...

    def secret(self, key: Key) -> SecretRecord | None: ...

    def mounts(self, kind: str = "Secret") -> Mapping[Key, list[Mount]]: ...


@dataclass(frozen=True)
class Selection:
    secrets: tuple[SecretRecord, ...]
    missing: tuple[Key, ...]  # named but not found
    mounts: Mapping[Key, list[Mount]]
    #: When nothing is selected: which part of the selector matched nothing (counts only).
    why_empty: str = ""


def select(inventory: Selectable, selector_spec: Mapping[str, Any]) -> Selection:
    """The selection from what the inventory holds; named Secrets are held once the policy's
    ``Reads`` are declared (:meth:`Inventory.declare`), which the caller does first."""
    by_label = label_selectors(selector_spec)
    mounted_only = bool(selector_spec.get("mountedOnly"))
    names = named_keys(selector_spec)

    chosen: dict[Key, SecretRecord] = {}
    why = f"none of the {len(names)} Secrets named in names exists" if names else "it names no Secret"
    if by_label is not None:
        ns_sel, secret_sel = by_label
        ns_labels = {k[1]: rec.label_map for k, rec in inventory.namespaces.snapshot().items()}
        in_namespaces = 0
        ns_match: dict[str, bool] = {}  # judged once per namespace, not once per Secret
        for key, rec in inventory.secrets.snapshot().items():
            if not ns_sel.empty:
                ok = ns_match.get(rec.namespace)
                if ok is None:
                    ok = ns_match[rec.namespace] = ns_sel.matches(ns_labels.get(rec.namespace))
                if not ok:
                    continue
            in_namespaces += 1
            if not secret_sel.empty and not secret_sel.matches(rec.label_map):
                continue
            chosen[key] = rec
        if not secret_sel.empty:
            # Secrets of other types carrying the labels, held by a label-selected watch.
            for key, rec in inventory.labelled_records(watch_key(LEAF_SECRETS, secret_sel.to_query())).items():
                if ns_sel.empty or ns_sel.matches(ns_labels.get(rec.namespace)):
                    chosen[key] = rec
        why = _why_empty(ns_sel.empty, sum(1 for labels in ns_labels.values() if ns_sel.matches(labels)),
                         in_namespaces, secret_sel.empty)
    missing: list[Key] = []
    for key in names:
        named = inventory.secret(key)
        if named is None:
            missing.append(key)
        else:
            chosen[key] = named
    mounts = inventory.mounts("Secret")
    if mounted_only:
        if chosen:
            why = f"mountedOnly: none of the {len(chosen)} Secrets it matches is referenced by a Pod"
        chosen = {k: v for k, v in chosen.items() if k in mounts}
    ordered = tuple(chosen[k] for k in sorted(chosen))
    return Selection(ordered, tuple(missing), {k: mounts[k] for k in chosen if k in mounts},
                     why_empty="" if ordered else why)


class OneSecret(Protocol):
    """What :func:`selected_record` reads: single lookups of the operator's inventory."""

    def secret(self, key: Key) -> SecretRecord | None: ...

    def namespace_labels(self, namespace: str) -> Mapping[str, str] | None: ...

    def labelled_records(self, key: WatchKey) -> Mapping[Key, SecretRecord]: ...

    def mounts(self, kind: str = "Secret") -> Mapping[Key, list[Mount]]: ...


def selected_record(inventory: OneSecret, selector_spec: Mapping[str, Any], key: Key) -> SecretRecord | None:
    """The record :func:`select` would give for ``key``, or None when it would not select it: the
    same rules for one Secret, without walking every Secret (a changed Secret's event is posted
    before the pass walks them all). ``tests/unit/inventory/test_selection_one.py`` holds it to
    :func:`select` over every key of a mixed inventory."""
    chosen: SecretRecord | None = None
    if key in named_keys(selector_spec):
        chosen = inventory.secret(key)
    by_label = label_selectors(selector_spec)
    if chosen is None and by_label is not None:
        ns_sel, secret_sel = by_label
        if ns_sel.empty or ns_sel.matches(inventory.namespace_labels(key[0])):
            if not secret_sel.empty:
                chosen = inventory.labelled_records(watch_key(LEAF_SECRETS, secret_sel.to_query())).get(key)
            if chosen is None:
                rec = inventory.secret(key)
                if rec is not None and rec.type == TLS_TYPE and (secret_sel.empty or secret_sel.matches(rec.label_map)):
                    chosen = rec
    if chosen is not None and selector_spec.get("mountedOnly") and key not in inventory.mounts("Secret"):
        return None
    return chosen


def _why_empty(all_namespaces: bool, namespaces: int, tls_secrets: int, any_secret: bool) -> str:
    """Which part of a label selection matched nothing, by counts (never a Secret's content)."""
    where = "the cluster" if all_namespaces else f"the {namespaces} namespaces namespaceSelector matches"
    if not all_namespaces and not namespaces:
        return "namespaceSelector matches 0 namespaces"
    if any_secret:  # no secretSelector: every TLS Secret there is selected, so there is none
        return f"{where} {'holds' if all_namespaces else 'hold'} no TLS Secret"
    return f"secretSelector matches none of the {tls_secrets} TLS Secrets in {where}, nor another Secret with its labels"

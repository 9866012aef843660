"""Which Secrets a policy governs, decided in memory from the inventory.

A Secret is selected when its namespace matches ``namespaceSelector`` and its labels match
``secretSelector`` (TLS Secrets, and Secrets of any other type that hold a certificate or keystore
by the key patterns, read through a server-side label-selected watch), or when it is listed in ``names`` (any type); with
``mountedOnly`` only Secrets some Pod references remain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from certpolicy.inventory.interest import label_selectors, named_keys
from certpolicy.inventory.inventory import Inventory, Mount
from certpolicy.inventory.labelled import LEAF_SECRETS, watch_key
from certpolicy.inventory.records import SecretRecord
from certpolicy.inventory.store import Key


@dataclass(frozen=True)
class Selection:
    secrets: tuple[SecretRecord, ...]
    missing: tuple[Key, ...]  # named but not found
    mounts: Mapping[Key, list[Mount]]


def select(inventory: Inventory, selector_spec: Mapping[str, Any]) -> Selection:
    """The selection from what the inventory holds; named Secrets are held once the policy's
    ``Reads`` are declared (:meth:`Inventory.declare`), which the caller does first."""
    by_label = label_selectors(selector_spec)
    mounted_only = bool(selector_spec.get("mountedOnly"))
    names = named_keys(selector_spec)

    chosen: dict[Key, SecretRecord] = {}
    if by_label is not None:
        ns_sel, secret_sel = by_label
        ns_labels = {k[1]: rec.label_map for k, rec in inventory.namespaces.snapshot().items()}
        for key, rec in inventory.secrets.snapshot().items():
            if not ns_sel.empty and not ns_sel.matches(ns_labels.get(rec.namespace)):
                continue
            if not secret_sel.matches(rec.label_map):
                continue
            chosen[key] = rec
        if not secret_sel.empty:
            # Secrets of other types carrying the labels, held by a label-selected watch.
            for key, rec in inventory.labelled_records(watch_key(LEAF_SECRETS, secret_sel.to_query())).items():
                if ns_sel.empty or ns_sel.matches(ns_labels.get(rec.namespace)):
                    chosen[key] = rec
    missing: list[Key] = []
    for key in names:
        named = inventory.secret(key)
        if named is None:
            missing.append(key)
        else:
            chosen[key] = named
    mounts = inventory.mounts("Secret")
    if mounted_only:
        chosen = {k: v for k, v in chosen.items() if k in mounts}
    ordered = tuple(chosen[k] for k in sorted(chosen))
    return Selection(ordered, tuple(missing), {k: mounts[k] for k in chosen if k in mounts})

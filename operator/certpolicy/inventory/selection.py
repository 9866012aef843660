"""Which Secrets a policy governs, decided in memory from the inventory.

A Secret is selected when its namespace matches ``namespaceSelector`` and its labels match
``secretSelector`` (TLS Secrets only), or when it is listed in ``names`` (any type); with
``mountedOnly`` only Secrets some Pod references remain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from certpolicy.inventory.inventory import Inventory, Mount
from certpolicy.inventory.records import SecretRecord
from certpolicy.inventory.store import Key
from certpolicy.kube.selectors import LabelSelector


@dataclass(frozen=True)
class Selection:
    secrets: tuple[SecretRecord, ...]
    missing: tuple[Key, ...]  # named but not found
    mounts: Mapping[Key, list[Mount]]


def named_keys(selector_spec: Mapping[str, Any]) -> list[Key]:
    return [(n["namespace"], n["name"]) for n in selector_spec.get("names") or ()]


def select(inventory: Inventory, selector_spec: Mapping[str, Any]) -> Selection:
    ns_sel = LabelSelector.from_spec(selector_spec.get("namespaceSelector"))
    secret_sel = LabelSelector.from_spec(selector_spec.get("secretSelector"))
    mounted_only = bool(selector_spec.get("mountedOnly"))
    names = named_keys(selector_spec)
    if any(k[0] and k[1] for k in names):
        inventory.track(names)

    ns_labels = {k[1]: rec.label_map for k, rec in inventory.namespaces.snapshot().items()}
    chosen: dict[Key, SecretRecord] = {}
    if not (selector_spec.get("names") and selector_spec.get("namespaceSelector") is None
            and selector_spec.get("secretSelector") is None):
        # A policy that only lists names selects nothing by label.
        for key, rec in inventory.secrets.snapshot().items():
            if not ns_sel.empty and not ns_sel.matches(ns_labels.get(rec.namespace)):
                continue
            if not secret_sel.matches(rec.label_map):
                continue
            chosen[key] = rec
    missing = []
    for key in names:
        rec = inventory.secret(key)
        if rec is None:
            missing.append(key)
        else:
            chosen[key] = rec
    mounts = inventory.mounts("Secret")
    if mounted_only:
        chosen = {k: v for k, v in chosen.items() if k in mounts}
    ordered = tuple(chosen[k] for k in sorted(chosen))
    return Selection(ordered, tuple(missing), {k: mounts[k] for k in chosen if k in mounts})

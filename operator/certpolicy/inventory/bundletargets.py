"""Where a policy's bundle targets are, and what they are called: one answer for the operator's
bundle writes, its rotation's read-back, and the plugin's rotation plan.

A target is one object of one ``spec.trustBundles`` entry in one namespace, named
``namespace/kind/name/key`` in rotation status.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from certpolicy.environment import operator_namespace
from certpolicy.inventory.inventory import Inventory
from certpolicy.kube.ownership import SYSTEM_NAMESPACES
from certpolicy.kube.selectors import LabelSelector
from certpolicy.kube.targets import target_kind
from certpolicy.policy.bundleref import BundleRef


def entry_namespaces(inventory: Inventory, entry: Mapping[str, Any]) -> list[str]:
    """Where an entry's targets live: the selected namespaces, or ``[""]`` for a cluster-scoped
    kind (one object for the whole cluster)."""
    if not target_kind(BundleRef.parse(entry).kind).namespaced:
        return [""]
    return target_namespaces(inventory, entry)


def target_namespaces(inventory: Inventory, entry: Mapping[str, Any]) -> list[str]:
    """Selected namespaces that can take objects (terminating ones are skipped). A selector never
    picks the system namespaces or the operator's own; naming one in ``namespaces`` makes a
    target that is then refused, with the reason in status."""
    selector = LabelSelector.from_spec(entry.get("namespaceSelector"))
    explicit = set(entry.get("namespaces") or ())
    never = SYSTEM_NAMESPACES | {operator_namespace()}
    out = []
    for (_, name), rec in inventory.namespaces.snapshot().items():
        if rec.terminating:
            continue
        if name in explicit or (("namespaceSelector" in entry or not explicit) and selector.matches(rec.label_map)
                                and name not in never):
            out.append(name)
    return sorted(out)


def target_id(kind: str, namespace: str, name: str, key: str) -> str:
    """How a bundle target is named in rotation status: ``namespace/kind/name/key``."""
    return f"{namespace}/{kind}/{name}/{key}"


def target_ids(inventory: Inventory, entries: Sequence[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any], str]]:
    """Every bundle target as (id ``namespace/kind/name/key``, entry, namespace)."""
    out = []
    for entry in entries:
        ref = BundleRef.parse(entry)
        for ns in entry_namespaces(inventory, entry):
            out.append((target_id(ref.kind, ns, ref.name, ref.key), entry, ns))
    return out


__all__ = ["entry_namespaces", "target_id", "target_ids", "target_namespaces"]

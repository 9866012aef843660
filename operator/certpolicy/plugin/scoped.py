"""The part of the operator's inventory one question needs, filled by targeted reads.

The operator keeps every TLS Secret of the cluster in memory (watches, ``inventory/``). The plugin
used to start that same inventory on a laptop, which listed every TLS Secret of the cluster,
private keys included, for a question about one Secret or one policy. :class:`ScopedInventory`
has the attributes and methods the operator's selection (``inventory/selection.py``) and
rotation observation (``inventory/observation.py``) read — ``namespaces``, ``secrets``, ``pods``,
``labelled_records``, ``secret``, ``mounts`` — so their code runs unchanged, on only what a
question reads:

* :func:`for_policy` — what one policy's selector can select: TLS Secrets listed with the API
  server doing the filtering (``fieldSelector=type=kubernetes.io/tls`` plus the policy's
  ``secretSelector`` as ``labelSelector``, in the namespaces its ``namespaceSelector`` matches, or
  cluster-wide when it has none), Secrets of other types only with the policy's labels (as the
  operator's label-selected watch), each Secret in ``selector.names`` by ``get``, and Pods only
  for ``mountedOnly`` (or when asked: a rotation plan's start-only Pods);
* :func:`for_secret` — what decides whether *one* Secret is selected, by any policy: that Secret,
  its namespace, and the Pods of its namespace when some policy is ``mountedOnly``.

Each Secret is parsed into the operator's record as it arrives, page by page, and its body is
dropped: a record holds certificate summaries and the *outcome* of the key check, never a key.
Every list is paged and capped (``reads.MAX_ITEMS``); a capped list is named in ``capped``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from certpolicy.inventory.interest import label_selectors, named_keys
from certpolicy.inventory.inventory import Mount, mounts_index
from certpolicy.inventory.labelled import LEAF_SECRETS, WatchKey, watch_key
from certpolicy.inventory.records import (
    NamespaceRecord,
    PodRecord,
    SecretRecord,
    parse_labelled_secret,
    parse_namespace_object,
    parse_pod_object,
    parse_secret_object,
)
from certpolicy.inventory.recordstore import Key
from certpolicy.inventory.wakes import TLS_TYPE
from certpolicy.kube.rawapi import METADATA_ONLY, METADATA_ONLY_WATCH
from certpolicy.kube.selectors import LabelSelector
from certpolicy.plugin.reads import get_object, list_items

R = TypeVar("R")


class Records(dict[Key, R]):
    """Records by (namespace, name), read as the inventory's stores are (``snapshot``, ``get``)."""

    def snapshot(self) -> dict[Key, R]:
        return dict(self)


@dataclass
class ScopedInventory:
    namespaces: Records[NamespaceRecord] = field(default_factory=Records)
    secrets: Records[SecretRecord] = field(default_factory=Records)  # kubernetes.io/tls Secrets
    pods: Records[PodRecord] = field(default_factory=Records)
    named: dict[Key, SecretRecord] = field(default_factory=dict)
    labelled: dict[WatchKey, dict[Key, SecretRecord]] = field(default_factory=dict)
    #: lists cut at reads.MAX_ITEMS: what was not looked at is said, never left out silently
    capped: list[str] = field(default_factory=list)

    def labelled_records(self, key: WatchKey) -> dict[Key, SecretRecord]:
        return dict(self.labelled.get(key) or {})

    def secret(self, key: Key) -> SecretRecord | None:
        return self.secrets.get(key) or self.named.get(key)

    def mounts(self, kind: str = "Secret") -> dict[Key, list[Mount]]:
        return mounts_index(self.pods.values(), kind)


def _records(raw, inv: ScopedInventory, what: str, path: str, query: Mapping[str, Any],
             parse: Callable[[dict[str, Any]], R | None], accept: str = "application/json") -> Records[R]:
    """A paged, capped list parsed item by item as pages arrive: only records are kept (a
    Secret's body goes with its page)."""
    items, capped = list_items(raw, path, query, keep=parse, accept=accept)
    if capped:
        inv.capped.append(what)
    return Records({(getattr(r, "namespace", ""), r.name): r for r in items})


def _secrets_path(namespace: str | None) -> str:
    return f"/api/v1/namespaces/{namespace}/secrets" if namespace else "/api/v1/secrets"


def _load_pods(raw, inv: ScopedInventory, namespaces: Iterable[str] | None) -> None:
    """Pods (they hold no Secret data): cluster-wide for None, else in each namespace given."""
    for ns in (None,) if namespaces is None else sorted(set(namespaces)):
        path = f"/api/v1/namespaces/{ns}/pods" if ns else "/api/v1/pods"
        inv.pods.update(_records(raw, inv, f"Pods in {ns or 'the cluster'}", path, {}, parse_pod_object))


def _get_secret(raw, key: Key) -> dict[str, Any] | None:
    return get_object(raw, f"/api/v1/namespaces/{key[0]}/secrets/{key[1]}", f"Secret {key[0]}/{key[1]}")


def for_policy(raw, spec: Mapping[str, Any], *, extra_names: Sequence[Key] = (),
               pods: bool | None = None, namespace: str | None = None) -> ScopedInventory:
    """What the operator's selection of ``spec`` reads (see the module docstring). ``extra_names``:
    Secrets read by name besides ``selector.names`` (a rotation's issued leaves); ``pods``: list
    every Pod (True), or only for ``mountedOnly`` (None); ``namespace``: only what lives there
    (``-n``: a selection outside it is not read, so not to be reported)."""
    inv = ScopedInventory()
    selector = spec.get("selector") or {}
    # Namespaces as metadata only (PartialObjectMetadata): labels and deletionTimestamp are all
    # selection and bundle targets read of them.
    inv.namespaces.update(_records(raw, inv, "Namespaces", "/api/v1/namespaces", {}, parse_namespace_object,
                                   accept=METADATA_ONLY))
    by_label = label_selectors(selector)
    if by_label is not None:
        ns_sel, secret_sel = by_label
        where: list[str | None] = [None] if ns_sel.empty else [
            rec.name for _k, rec in sorted(inv.namespaces.items()) if ns_sel.matches(rec.label_map)]
        if namespace:
            where = [namespace] if where == [None] or namespace in where else []
        labels = {} if secret_sel.empty else {"labelSelector": secret_sel.to_query()}
        others: dict[Key, SecretRecord] = {}
        for ns in where:
            inv.secrets.update(_records(raw, inv, f"TLS Secrets in {ns or 'the cluster'}", _secrets_path(ns),
                                        {"fieldSelector": f"type={TLS_TYPE}", **labels}, parse_secret_object))
            if labels:  # as the operator's label-selected watch of Secrets of other types
                others.update(_records(raw, inv, f"labelled Secrets in {ns or 'the cluster'}", _secrets_path(ns),
                                       {"fieldSelector": f"type!={TLS_TYPE}", **labels}, parse_labelled_secret))
        if labels:
            inv.labelled[watch_key(LEAF_SECRETS, secret_sel.to_query())] = others
    for key in dict.fromkeys([*named_keys(selector), *extra_names]):
        if namespace and key[0] != namespace:
            continue
        obj = _get_secret(raw, key)
        if obj is not None:
            inv.named[key] = parse_secret_object(obj)
    if pods or (pods is None and selector.get("mountedOnly")):
        _load_pods(raw, inv, [namespace] if namespace else None)
    return inv


def for_secret(raw, key: Key, policies: Sequence[Mapping[str, Any]]) -> ScopedInventory:
    """What decides whether Secret ``key`` is selected by each of ``policies``: that Secret (one
    ``get``), its namespace, the Pods of its namespace when a policy is ``mountedOnly``. The
    Secret is parsed into the operator's record — certificate summaries and the *outcome* of
    checking its key against its certificate, as the operator checks it — and its body dropped
    here; ``inv.secret(key)`` is None when it does not exist."""
    inv = ScopedInventory()
    obj = _get_secret(raw, key)
    if obj is None:
        return inv
    ns = get_object(raw, f"/api/v1/namespaces/{key[0]}", f"Namespace {key[0]}", accept=METADATA_ONLY_WATCH)
    if ns is not None:
        inv.namespaces[("", key[0])] = parse_namespace_object(ns)
    record = parse_secret_object(obj)
    inv.named[key] = record
    if obj.get("type") == TLS_TYPE:
        inv.secrets[key] = record
    elif parse_labelled_secret(obj) is not None:  # what the label-selected watch of a policy would hold
        for policy in policies:
            try:
                secret_sel = LabelSelector.from_spec(((policy.get("spec") or {}).get("selector") or {}).get("secretSelector"))
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # the CRD refuses such a selector
            if not secret_sel.empty and secret_sel.matches(record.label_map):
                inv.labelled[watch_key(LEAF_SECRETS, secret_sel.to_query())] = {key: record}
    if any(((p.get("spec") or {}).get("selector") or {}).get("mountedOnly") for p in policies):
        _load_pods(raw, inv, [key[0]])
    return inv

"""What one policy reads from the inventory, declared in one place.

A :class:`Reads` is derived from a policy's spec and says everything the policy depends on:
the Secrets it selects by label or names one by one, the trust bundle it chains to, the bundle
targets it writes, its CA Secrets, truststore passwords and keystore passwords. The inventory uses that one
declaration three ways:

- to hold the sources: objects named one by one are tracked (reference-counted) while some
  policy declares them, and released when none does;
- to route changes: a change wakes only the policies whose ``Reads`` it concerns, by the map
  function of its source in ``inventory/wakes.py`` (the table of every watch);
- to gate evaluation: a policy is evaluated only once every source it reads is synced.

A new wake-up source is an entry in ``inventory/wakes.py``; it needs a field here only when its
map function needs something of the spec that ``Reads`` does not hold yet.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from certpolicy.inventory.labelled import CABUNDLE_KINDS, LEAF_SECRETS, TRUSTSTORE_KINDS, WatchKey, watch_key
from certpolicy.inventory.records import SecretRecord
from certpolicy.inventory.recordstore import Key
from certpolicy.kube.selectors import LabelSelector
from certpolicy.policy.bundleref import BundleRef, BundleRefError

SourceRef = tuple[str, str, str]  # (kind, namespace, name)


def bundle_source(requirements: Mapping[str, Any] | None) -> BundleRef | None:
    """``spec.requirements.trustBundle``: the object and key holding the CAs leaves must chain to
    (None when there is none or it names no object with its namespace: the pass reports that)."""
    spec = (requirements or {}).get("trustBundle")
    if not spec:
        return None
    try:
        ref = BundleRef.parse(spec)
    except BundleRefError:
        return None
    return ref if ref.kind in ("ConfigMap", "Secret") and ref.namespace else None


def source_ref(ref: BundleRef) -> SourceRef:
    return (ref.kind, ref.namespace, ref.name)


def label_selectors(selector: Mapping[str, Any]) -> tuple[LabelSelector, LabelSelector] | None:
    """(namespaceSelector, secretSelector) of a policy that selects TLS Secrets by label; None for
    a policy that only lists names (it selects nothing by label)."""
    if selector.get("names") and selector.get("namespaceSelector") is None and selector.get("secretSelector") is None:
        return None
    return (LabelSelector.from_spec(selector.get("namespaceSelector")),
            LabelSelector.from_spec(selector.get("secretSelector")))


def named_keys(selector: Mapping[str, Any]) -> tuple[Key, ...]:
    return tuple((n["namespace"], n["name"]) for n in selector.get("names") or () if n.get("namespace") and n.get("name"))


def _query(selector: Mapping[str, Any] | None) -> str:
    try:
        return LabelSelector.from_spec(selector).to_query()
    except (ValueError, KeyError, TypeError, AttributeError):
        return ""  # the CRD schema rejects such a selector; nothing to watch


def labelled_watches(spec: Mapping[str, Any]) -> frozenset[WatchKey]:
    """The label-selected watches a policy needs. A selector that selects everything is never
    watched: it would list the body of every Secret (or ConfigMap) in the cluster."""
    keys: set[WatchKey] = set()
    selector = spec.get("selector") or {}
    if q := _query(selector.get("secretSelector")):
        keys.add(watch_key(LEAF_SECRETS, q))
    for stores in (spec.get("trustStores"), (spec.get("requirements") or {}).get("trustedBy")):
        if isinstance(stores, Mapping) and (q := _query(stores.get("selector"))):
            keys.update(watch_key(k, q) for k in TRUSTSTORE_KINDS)
    cab = spec.get("caBundles")
    if isinstance(cab, Mapping) and (q := _query(cab.get("selector"))):
        keys.update(watch_key(k, q) for k in CABUNDLE_KINDS)
    return frozenset(keys)


def keystore_password_names(spec: Mapping[str, Any]) -> frozenset[str]:
    """The Secret names of ``passwordSecretRef`` in spec.selector, spec.trustStores and
    spec.requirements.trustedBy (each a Secret in the keystore's own namespace)."""
    names = set()
    for holder in (spec.get("selector"), spec.get("trustStores"), (spec.get("requirements") or {}).get("trustedBy")):
        ref = holder.get("passwordSecretRef") if isinstance(holder, Mapping) else None
        if isinstance(ref, Mapping) and isinstance(ref.get("name"), str) and ref["name"]:
            names.add(ref["name"])
    return frozenset(names)


def _target_ref(entry: Mapping[str, Any]) -> tuple[str, str]:
    try:
        ref = BundleRef.parse(entry)
    except BundleRefError:
        return "", ""
    return ref.kind, ref.name


@dataclass(frozen=True)
class Reads:
    operator_namespace: str
    by_label: tuple[LabelSelector, LabelSelector] | None = None
    mounted_only: bool = False
    names: frozenset[Key] = frozenset()  # spec.selector.names: Secrets of any type
    issued: frozenset[Key] = frozenset()  # spec.issuance leaves (TLS Secrets the operator writes)
    bundle_source: BundleRef | None = None
    targets: frozenset[tuple[str, str]] = frozenset()  # (kind, name) of each trustBundles entry, any namespace
    passwords: frozenset[str] = frozenset()  # Secrets in the operator namespace holding truststore passwords
    ca_secret: str | None = None  # spec.ca.secretName; its rotation siblings share it as a prefix
    #: Keystore password Secrets (spec.selector, spec.trustStores, requirements.trustedBy
    #: passwordSecretRef): a name, in each keystore's own namespace, so watched in every one.
    keystore_passwords: frozenset[str] = frozenset()
    #: Label-selected watches: Secrets of any type (secretSelector), trust stores (spec.trustStores,
    #: requirements.trustedBy), caBundle holders (spec.caBundles). Never with an empty selector.
    labelled: frozenset[WatchKey] = frozenset()

    @classmethod
    def of(cls, spec: Mapping[str, Any], operator_namespace: str) -> Reads:
        selector = spec.get("selector") or {}
        entries = spec.get("trustBundles") or ()
        passwords = set()
        for entry in entries:
            for fmt in (entry.get("formats") or {}).values():
                ref = (fmt or {}).get("passwordSecretRef") or {}
                if ref.get("name"):
                    passwords.add(str(ref["name"]))
        return cls(
            operator_namespace=operator_namespace,
            by_label=label_selectors(selector),
            mounted_only=bool(selector.get("mountedOnly")),
            names=frozenset(named_keys(selector)),
            issued=frozenset((i.get("namespace", ""), i.get("secretName", "")) for i in spec.get("issuance") or ()),
            bundle_source=bundle_source(spec.get("requirements")),
            targets=frozenset(_target_ref(e) for e in entries),
            passwords=frozenset(passwords),
            ca_secret=((spec.get("ca") or {}).get("secretName") or None),
            labelled=labelled_watches(spec),
            keystore_passwords=keystore_password_names(spec),
        )

    # ---- what the inventory holds for this policy ---------------------------------------------
    @cached_property
    def _tracked_secrets(self) -> frozenset[Key]:
        return self.names | frozenset((self.operator_namespace, p) for p in self.passwords)

    def tracked_secrets(self) -> frozenset[Key]:
        """Secrets held one by one for this policy (of any type: a TLS one is also in the TLS watch)."""
        return self._tracked_secrets

    def tracked_sources(self) -> frozenset[SourceRef]:
        return frozenset({source_ref(self.bundle_source)}) if self.bundle_source else frozenset()

    # ---- what its map functions ask (inventory/wakes.py) --------------------------------------
    @cached_property
    def exact_secrets(self) -> frozenset[Key]:
        """Secrets whose every change concerns this policy, whatever their labels."""
        return self.tracked_secrets() | self.issued

    def selects(self, rec: SecretRecord | None, ns_labels: Callable[[str], Mapping[str, str] | None]) -> bool:
        """Whether the policy selects ``rec`` by label (its namespace's and its own)."""
        if rec is None or self.by_label is None:
            return False
        ns_sel, secret_sel = self.by_label
        if not ns_sel.empty and not ns_sel.matches(ns_labels(rec.namespace)):
            return False
        return secret_sel.matches(rec.label_map)

    def owns_secret(self, key: Key) -> bool:
        """A Secret the policy names, issues or keeps its CA in (the CA's rotation siblings too)."""
        if key in self.exact_secrets:
            return True
        return bool(key[0] == self.operator_namespace and self.ca_secret and key[1].startswith(self.ca_secret))

"""The CertificatePolicies, as the webhook needs them: one list-then-watch, parsed once per version.

kopf watches the policies only in the leader; the webhook answers in every replica, the standby
included, so it keeps its own index (one more watch of a small, cluster-scoped resource). Each
record holds what a decision reads: the enforcement, the parsed requirements, the selector, the
trust bundle source and the policy's own CAs (``status.ca.history``), so that answering never
reads the API server.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from certpolicy import GROUP, PLURAL, VERSION
from certpolicy.inventory.interest import bundle_source, label_selectors, named_keys
from certpolicy.inventory.recordstore import Change, Key, RecordStore
from certpolicy.inventory.watch import ListWatcher
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.selectors import LabelSelector
from certpolicy.kube.watched import Watched
from certpolicy.pki.fingerprint import certificate_fingerprint
from certpolicy.policy.admission import Enforcement, enforcement_from_spec
from certpolicy.policy.bundleref import BundleRef, BundleRefError
from certpolicy.policy.cahistory import trusted_certificates
from certpolicy.policy.renewal import RENEWAL_REASONS
from certpolicy.policy.spec import PolicySpecError, Requirements, renewal_guard_from_spec, requirements_from_spec

POLICIES_WATCH = Watched("webhook-policies", f"/apis/{GROUP}/{VERSION}/{PLURAL}")


@dataclass(frozen=True)
class EnforcedPolicy:
    """One policy as the webhook reads it. ``requirements`` is None for a spec the operator
    reports as invalid (``Ready=False/InvalidSpec``): such a policy is not enforced."""

    name: str
    uid: str
    resource_version: str
    enforcement: Enforcement
    requirements: Requirements | None
    selector: Mapping[str, Any]
    by_label: tuple[LabelSelector, LabelSelector] | None
    names: tuple[Key, ...]
    bundle_source: BundleRef | None
    own_cas: tuple[x509.Certificate, ...]  # status.ca.history's trusted CAs (spec.ca without trustBundle)
    targets: tuple[BundleRef, ...]  # spec.trustBundles entries
    own_anchors: frozenset[str]  # fingerprints of the policy's own CAs (a rotation changes anchors on purpose)
    renewal_ignore: frozenset[str]  # spec.requirements.renewal: regressions not judged (all: guard off)
    target_entries: tuple[Mapping[str, Any], ...]

    @property
    def enforcing(self) -> bool:
        return self.enforcement is not Enforcement.AUDIT and self.requirements is not None

    @property
    def mounted_only(self) -> bool:
        return bool(self.selector.get("mountedOnly"))


def parse_policy(obj: dict[str, Any]) -> EnforcedPolicy:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    try:
        enforcement = enforcement_from_spec(spec)
        requirements: Requirements | None = requirements_from_spec(spec.get("requirements") or {})
        by_label = label_selectors(spec.get("selector") or {})
    except (PolicySpecError, ValueError, KeyError, TypeError):
        enforcement, requirements, by_label = Enforcement.AUDIT, None, None
    history = ((obj.get("status") or {}).get("ca") or {}).get("history") or []
    cas = tuple(trusted_certificates(history)) if spec.get("ca") else ()
    own = cas if not (spec.get("requirements") or {}).get("trustBundle") else ()
    try:
        guard = renewal_guard_from_spec(spec)
        # A guard turned off (renewal.guard: false) judges no regression at admission either.
        ignore = guard.ignore if guard.enabled else frozenset(RENEWAL_REASONS)
    except PolicySpecError:
        ignore = frozenset(RENEWAL_REASONS)
    targets: list[BundleRef] = []
    entries: list[Mapping[str, Any]] = []
    for entry in spec.get("trustBundles") or ():
        try:
            targets.append(BundleRef.parse(entry))
            entries.append(entry)
        except BundleRefError:
            continue
    selector = spec.get("selector") or {}
    return EnforcedPolicy(
        name=meta.get("name", ""), uid=meta.get("uid", ""), resource_version=meta.get("resourceVersion", ""),
        enforcement=enforcement, requirements=requirements, selector=selector, by_label=by_label,
        names=named_keys(selector), bundle_source=bundle_source(spec.get("requirements")), own_cas=own,
        targets=tuple(targets), target_entries=tuple(entries),
        own_anchors=frozenset(certificate_fingerprint(c) for c in cas),
        renewal_ignore=frozenset(ignore))


class PolicyIndex:
    """Every CertificatePolicy, kept current by a list-then-watch; ``on_change`` hears each change
    (the registration is rebuilt from it)."""

    def __init__(self, raw: RawClient, *, watch_timeout: int = 240) -> None:
        self.store: RecordStore[EnforcedPolicy] = RecordStore("CertificatePolicy", parse_policy)
        self.watcher = ListWatcher.of(raw, POLICIES_WATCH, self.store, watch_timeout=watch_timeout)
        self.listeners: list[Callable[[Change], None]] = self.store.listeners

    def start(self) -> PolicyIndex:
        self.watcher.start()
        return self

    def stop(self) -> None:
        self.watcher.stop(timeout=2)

    @property
    def synced(self) -> bool:
        return self.watcher.synced.is_set()

    def get(self, name: str) -> EnforcedPolicy | None:
        return self.store.get(("", name))

    def enforcing(self) -> list[EnforcedPolicy]:
        """The policies that enforce (Warn or Deny, valid spec), by name."""
        return sorted((p for p in self.store.snapshot().values() if p.enforcing), key=lambda p: p.name)

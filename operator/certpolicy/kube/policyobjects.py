"""Every object the operator created for a policy name, found by its label: what a policy left.

The operator labels everything it creates ``certpolicy.io/managed-by=<policy>`` and records the
policy's UID in ``certpolicy.io/managed-by-uid`` (:mod:`certpolicy.kube.ownership`). Listing by
that label, metadata only (``PartialObjectMetadata``: no Secret data crosses the wire), in pages,
at most :data:`MAX_OBJECTS` per kind, answers two questions: what a re-created policy may adopt
from a deleted predecessor of the same name (``handlers/adopt.py``), and what a policy, present
or deleted, left in the cluster (``kubectl certpolicy leftovers``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiException

from certpolicy import GROUP, KIND, PLURAL, VERSION
from certpolicy.kube.ownership import BUNDLE_LABEL, BUNDLE_POLICIES, MANAGED_BY, OWNER_UID, ROLE_LABEL
from certpolicy.kube.rawapi import METADATA_ONLY, RawClient
from certpolicy.kube.targets import TARGET_KINDS

PAGE = 500
MAX_OBJECTS = 5000  # per kind
#: Every bundle target the operator wrote, its own or opted in (``certpolicy.io/bundle=true``).
BUNDLE_TARGETS = BUNDLE_LABEL


@dataclass(frozen=True)
class PolicyObject:
    """One labelled object, as its metadata says: never its data."""

    kind: str
    namespace: str  # "" for a cluster-scoped kind
    name: str
    policy: str  # the certpolicy.io/managed-by label
    uid: str | None  # the certpolicy.io/managed-by-uid annotation (None: handed over by hand)
    role: str  # certpolicy.io/role: ca, leaf, bundle ("" when missing)
    #: certpolicy.io/bundle-policies: the policies whose CAs a bundle target holds
    bundle_policies: tuple[str, ...] = ()
    #: it has an ownerReference to a CertificatePolicy: the garbage collector deletes it with it
    collected: bool = False

    @classmethod
    def of(cls, kind: str, obj: Mapping[str, Any]) -> PolicyObject:
        meta = obj.get("metadata") or {}
        labels, annotations = meta.get("labels") or {}, meta.get("annotations") or {}
        holds = tuple(sorted(filter(None, (annotations.get(BUNDLE_POLICIES) or "").split(","))))
        collected = any(r.get("kind") == KIND for r in meta.get("ownerReferences") or ())
        return cls(kind, meta.get("namespace") or "", meta.get("name") or "", labels.get(MANAGED_BY, ""),
                   annotations.get(OWNER_UID), labels.get(ROLE_LABEL, ""), holds, collected)


@dataclass
class Listing:
    objects: list[PolicyObject] = field(default_factory=list)
    capped: list[str] = field(default_factory=list)  # kinds with more than MAX_OBJECTS
    unavailable: dict[str, str] = field(default_factory=dict)  # kind -> why it could not be listed


def _pages(raw: RawClient, path: str, query: Mapping[str, Any], limit: int) -> tuple[list[dict[str, Any]], bool]:
    items: list[dict[str, Any]] = []
    cont = None
    while True:
        page = raw.get(path, {**query, "limit": PAGE, "continue": cont}, accept=METADATA_ONLY)
        items += page.get("items") or ()
        cont = (page.get("metadata") or {}).get("continue")
        if not cont:
            return items, False
        if len(items) >= limit:
            return items[:limit], True


def list_policy_objects(raw: RawClient, policy: str | None = None, *, selector: str | None = None,
                        limit: int = MAX_OBJECTS) -> Listing:
    """The Secrets, ConfigMaps and ClusterTrustBundles labelled for ``policy`` (every policy when
    None; or matching ``selector``), cluster-wide. A kind the API server does not serve
    (ClusterTrustBundle is beta) or the caller may not list is named in ``unavailable``, never
    silently skipped."""
    selector = selector or (f"{MANAGED_BY}={policy}" if policy else MANAGED_BY)
    out = Listing()
    for kind, target in TARGET_KINDS.items():
        base = "/api/v1" if target.api_version == "v1" else f"/apis/{target.api_version}"
        try:
            items, capped = _pages(raw, f"{base}/{target.plural}", {"labelSelector": selector}, limit)
        except ApiException as e:
            out.unavailable[kind] = "not served by this API server" if e.status == 404 else f"HTTP {e.status}"
            continue
        if capped:
            out.capped.append(kind)
        out.objects += [PolicyObject.of(kind, obj) for obj in items]
    out.objects.sort(key=lambda o: (o.policy, o.kind, o.namespace, o.name))
    return out


def policies_metadata(raw: RawClient, limit: int = MAX_OBJECTS) -> tuple[list[dict[str, Any]], bool]:
    """Every CertificatePolicy's metadata (``PartialObjectMetadata`` items), at most ``limit``;
    returns (items, capped)."""
    return _pages(raw, f"/apis/{GROUP}/{VERSION}/{PLURAL}", {}, limit)


def live_policies(raw: RawClient, limit: int = MAX_OBJECTS) -> dict[str, str] | None:
    """UID -> name of every CertificatePolicy that exists (metadata only); None when there are more
    than ``limit``: then no UID can be proven dead, and nothing may be adopted."""
    items, capped = policies_metadata(raw, limit)
    if capped:
        return None
    return {(i.get("metadata") or {}).get("uid", ""): (i.get("metadata") or {}).get("name", "") for i in items}

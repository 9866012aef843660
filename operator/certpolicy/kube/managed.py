"""Writes to Secrets and ConfigMaps: only objects the operator manages, never a blind overwrite.

A Secret is managed when it carries ``certpolicy.io/managed-by: <policy>``; the operator creates
it that way and refuses to write to any Secret without the label (a user's Secret of the same
name is reported, not replaced). ConfigMap bundle targets are declared in a policy and merged,
never replaced; they get the ``certpolicy.io/bundle`` label so the operator can watch them.

Updates carry the ``resourceVersion`` that was read: a concurrent change by someone else gives
409 Conflict, and the caller re-reads and re-merges instead of overwriting what it did not see.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiException

from certpolicy.inventory.watch import Watched
from certpolicy.kube.rawapi import RawClient

MANAGED_BY = "certpolicy.io/managed-by"
BUNDLE_LABEL = "certpolicy.io/bundle"
BUNDLE_POLICIES = "certpolicy.io/bundle-policies"
MAX_CONFLICT_RETRIES = 5


class NotManaged(Exception):
    """The object exists and is not ours: the operator will not write to it."""


@dataclass(frozen=True)
class WriteResult:
    obj: dict[str, Any]
    written: bool  # False: nothing changed, no write


#: ClusterTrustBundles (KEP-3257): cluster-scoped, the PEM bundle in ``spec.trustBundle``.
CLUSTER_TRUST_BUNDLE = "ClusterTrustBundle"
CTB_GROUP_VERSION = "certificates.k8s.io/v1beta1"


@dataclass(frozen=True)
class TargetKind:
    """Where the objects of one kind the operator writes live in the API."""

    api_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str, name: str = "") -> str:
        scope = f"/namespaces/{namespace}" if self.namespaced else ""
        return f"{self._base}{scope}/{self.plural}" + (f"/{name}" if name else "")

    @property
    def _base(self) -> str:
        return "/api/v1" if self.api_version == "v1" else f"/apis/{self.api_version}"

    @property
    def watched(self) -> Watched:
        """How targets of this kind are watched: one cluster-wide watch of the objects carrying
        ``BUNDLE_LABEL`` (every target gets it), so a user's edit is repaired at once."""
        return Watched(f"bundle-{self.plural}", f"{self._base}/{self.plural}", label_selector=BUNDLE_LABEL)


TARGET_KINDS = {
    "Secret": TargetKind("v1", "secrets"),
    "ConfigMap": TargetKind("v1", "configmaps"),
    CLUSTER_TRUST_BUNDLE: TargetKind(CTB_GROUP_VERSION, "clustertrustbundles", namespaced=False),
}


def _path(kind: str, namespace: str, name: str = "") -> str:
    return TARGET_KINDS[kind].path(namespace, name)


def cluster_trust_bundles_served(raw: RawClient) -> bool:
    """Whether the API server serves ClusterTrustBundles (beta, off by default until enabled)."""
    try:
        resources = raw.get(f"/apis/{CTB_GROUP_VERSION}").get("resources") or ()
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return any(r.get("name") == "clustertrustbundles" for r in resources)


def read(raw: RawClient, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return raw.get(_path(kind, namespace, name))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_managed_secret(raw: RawClient, namespace: str, name: str, policy: str, data: Mapping[str, bytes],
                         *, secret_type: str = "kubernetes.io/tls", labels: Mapping[str, str] | None = None,
                         annotations: Mapping[str, str] | None = None, expected_version: str | None = None
                         ) -> WriteResult:
    """Create the Secret, or update it if it is ours and its data differs.

    ``expected_version`` guards a read-decide-write cycle: if the Secret changed since the caller
    read it, the write fails with 409 and the caller decides again on fresh data.
    """
    encoded = {k: b64(v) for k, v in data.items()}
    meta_labels = {MANAGED_BY: policy, **(labels or {})}
    existing = read(raw, "Secret", namespace, name)
    if existing is None:
        body = {"apiVersion": "v1", "kind": "Secret", "type": secret_type,
                "metadata": {"name": name, "namespace": namespace, "labels": meta_labels,
                             "annotations": dict(annotations or {})},
                "data": encoded}
        return WriteResult(raw.post(_path("Secret", namespace), body), True)
    labels_now = (existing.get("metadata") or {}).get("labels") or {}
    if labels_now.get(MANAGED_BY) != policy:
        raise NotManaged(f"Secret {namespace}/{name} exists and is not managed by CertificatePolicy {policy} "
                         f"(no {MANAGED_BY}={policy} label); it was left untouched")
    if expected_version is not None and existing["metadata"]["resourceVersion"] != expected_version:
        raise ApiException(status=409, reason="Conflict: the Secret changed since it was read")
    if existing.get("data") == encoded and all(labels_now.get(k) == v for k, v in meta_labels.items()):
        return WriteResult(existing, False)
    existing["data"] = encoded
    existing.setdefault("metadata", {}).setdefault("labels", {}).update(meta_labels)
    if annotations:
        existing["metadata"].setdefault("annotations", {}).update(annotations)
    return WriteResult(raw.put(_path("Secret", namespace, name), existing), True)


def merge_into_target(raw: RawClient, kind: str, namespace: str, name: str, policy: str,
                      update: Callable[[dict[str, Any] | None], dict[str, Any] | None]) -> WriteResult:
    """Read-modify-write of a bundle target with optimistic concurrency.

    ``update(current)`` returns the full new content as ``{"data": {...}, "binaryData": {...}}``
    (``{"spec": {...}}`` for a ClusterTrustBundle), or None when nothing must change; it is called
    again on fresh data after a 409 conflict, so a concurrent edit is merged, not overwritten.
    """
    for _attempt in range(MAX_CONFLICT_RETRIES):
        current = read(raw, kind, namespace, name)
        if current is not None and kind == "Secret":
            if ((current.get("metadata") or {}).get("labels") or {}).get(MANAGED_BY) is None:
                raise NotManaged(f"Secret {namespace}/{name} exists and is not managed by the operator; "
                                 "bundle targets of kind Secret are only written when the operator created them")
        content = update(current)
        if content is None:
            return WriteResult(current or {}, False)
        if current is None:
            meta = {"name": name, "labels": {BUNDLE_LABEL: "true"}, "annotations": {BUNDLE_POLICIES: policy}}
            if TARGET_KINDS[kind].namespaced:
                meta["namespace"] = namespace
            if kind == "Secret":
                meta["labels"][MANAGED_BY] = policy
            body = {"apiVersion": TARGET_KINDS[kind].api_version, "kind": kind, "metadata": meta, **content}
            if kind == "Secret":
                body["type"] = "Opaque"
            try:
                return WriteResult(raw.post(_path(kind, namespace), body), True)
            except ApiException as e:
                if e.status == 409:  # created by someone else in between: merge into theirs
                    continue
                raise
        meta = current.setdefault("metadata", {})
        meta.setdefault("labels", {})[BUNDLE_LABEL] = "true"
        owners = set(filter(None, (meta.setdefault("annotations", {}).get(BUNDLE_POLICIES) or "").split(",")))
        meta["annotations"][BUNDLE_POLICIES] = ",".join(sorted(owners | {policy}))
        current.update(content)  # the top-level fields update() returned, each replaced whole
        try:
            return WriteResult(raw.put(_path(kind, namespace, name), current), True)
        except ApiException as e:
            if e.status != 409:
                raise
    raise ApiException(status=409, reason=f"{kind} {namespace}/{name} kept changing; will retry on the next pass")

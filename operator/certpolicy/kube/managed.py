"""Writes to Secrets, ConfigMaps and ClusterTrustBundles: only objects this policy owns, never a blind overwrite.

Who owns what is decided in :mod:`certpolicy.kube.ownership`: an object is written only when it
was created for the very policy (name and UID) in the same role, or, for a bundle target, when
its owner opted in with ``certpolicy.io/inject-ca-from``. Anything else raises
:class:`NotManaged` and is reported, never replaced. Bundle targets are merged, never replaced;
they get the ``certpolicy.io/bundle`` label so the operator can watch them.

Updates carry the ``resourceVersion`` that was read: a concurrent change by someone else gives
409 Conflict, and the caller re-reads and re-merges instead of overwriting what it did not see.

This module is the one door for the operator's writes to objects it does not keep as its own
records: no module outside ``certpolicy/kube`` sends a POST, PUT, PATCH or DELETE
(``tests/unit/kube/test_one_write_door.py`` keeps it so). The operator's own records have their
own modules here: status (``status.py``), events (``events.py``) and the Lease (``lease.py``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiException

from certpolicy.kube.ownership import (
    BUNDLE_LABEL,
    BUNDLE_POLICIES,
    CLAIMS,
    MANAGED_BY,
    OWNER_UID,
    ROLE_BUNDLE,
    ROLE_LEAF,
    NotManaged,
    Owner,
    TargetConflict,
    adoptable,
    check_bundle_target,
    check_managed,
    conflicting_claims,
    encode_claims,
    read_claims,
    with_claim,
)
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.targets import TARGET_KINDS

__all__ = ["BUNDLE_LABEL", "BUNDLE_POLICIES", "MANAGED_BY", "NotManaged", "Owner", "TargetConflict", "WriteResult",
           "adopt", "adopt_object", "b64", "create_managed_secret", "delete_managed_configmap",
           "delete_managed_secret", "kind_served", "merge_into_target", "resource_served", "read", "restart_body", "restart_workload",
           "sync_managed_secret_metadata", "update_managed_secret", "whoami", "write_managed_configmap",
           "write_managed_secret", "write_operator_object"]

MAX_CONFLICT_RETRIES = 5


@dataclass(frozen=True)
class WriteResult:
    obj: dict[str, Any]
    written: bool  # False: nothing changed, no write


def _path(kind: str, namespace: str, name: str = "") -> str:
    return TARGET_KINDS[kind].path(namespace, name)


def kind_served(raw: RawClient, kind: str) -> bool:
    """Whether the API server serves this kind (core kinds always; a beta kind such as
    ClusterTrustBundle only where its API is enabled)."""
    target = TARGET_KINDS[kind]
    return target.api_version == "v1" or resource_served(raw, target.api_version, target.plural)


def resource_served(raw: RawClient, api_version: str, plural: str) -> bool:
    """Whether the API server serves ``plural`` in the group/version ``api_version`` (a CRD's
    resource is served only while the CRD is installed)."""
    try:
        resources = raw.get(f"/apis/{api_version}").get("resources") or ()
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return any(r.get("name") == plural for r in resources)


def read(raw: RawClient, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return raw.get(_path(kind, namespace, name))
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def write_managed_secret(raw: RawClient, namespace: str, name: str, owner: Owner, data: Mapping[str, bytes],
                         *, role: str, secret_type: str = "kubernetes.io/tls",
                         labels: Mapping[str, str] | None = None, annotations: Mapping[str, str] | None = None,
                         expected_version: str | None = None) -> WriteResult:
    """Create the Secret, or update it if it was created for ``owner`` in ``role`` and its data differs.

    ``expected_version`` guards a read-decide-write cycle: if the Secret changed since the caller
    read it, the write fails with 409 and the caller decides again on fresh data.
    """
    encoded = {k: b64(v) for k, v in data.items()}
    meta_labels = {**owner.labels(role), **(labels or {})}
    meta_annotations = {**owner.annotations(), **(annotations or {})}
    existing = read(raw, "Secret", namespace, name)
    if existing is None:
        body = {"apiVersion": "v1", "kind": "Secret", "type": secret_type,
                "metadata": {"name": name, "namespace": namespace, "labels": meta_labels,
                             "annotations": meta_annotations},
                "data": encoded}
        return WriteResult(raw.post(_path("Secret", namespace), body), True)
    check_managed(existing, owner, role, f"Secret {namespace}/{name}")
    if expected_version is not None and existing["metadata"]["resourceVersion"] != expected_version:
        raise ApiException(status=409, reason="Conflict: the Secret changed since it was read")
    meta = existing.setdefault("metadata", {})
    labels_now, annotations_now = meta.get("labels") or {}, meta.get("annotations") or {}
    if (existing.get("data") == encoded and all(labels_now.get(k) == v for k, v in meta_labels.items())
            and all(annotations_now.get(k) == v for k, v in owner.annotations().items())):
        return WriteResult(existing, False)
    existing["data"] = encoded
    meta.setdefault("labels", {}).update(meta_labels)
    meta.setdefault("annotations", {}).update(meta_annotations)
    return WriteResult(raw.put(_path("Secret", namespace, name), existing), True)


def create_managed_secret(raw: RawClient, namespace: str, name: str, owner: Owner, data: Mapping[str, bytes],
                          *, role: str, annotations: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """Create-only: the Secret as stored, or None when one of that name exists already (409; the
    caller reads what is there and never overwrites it). The CA Secrets are made this way: a key
    pair, once written, is never replaced by another writer's copy in memory."""
    body = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": namespace, "labels": owner.labels(role),
                         "annotations": {**owner.annotations(), **(annotations or {})}},
            "data": {k: b64(v) for k, v in data.items()}}
    try:
        return raw.post(_path("Secret", namespace), body)
    except ApiException as e:
        if e.status == 409:
            return None
        raise


def update_managed_secret(raw: RawClient, current: Mapping[str, Any], owner: Owner, data: Mapping[str, bytes],
                          *, role: str) -> WriteResult:
    """Replace the data of ``current`` (a Secret as the caller read it) when it was created for
    ``owner`` in ``role``: a PUT at the resourceVersion read, so a change made since gives 409 and
    the caller decides again on fresh data. No read of its own: the caller's read is the one."""
    meta = current["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    check_managed(current, owner, role, f"Secret {namespace}/{name}")
    encoded = {k: b64(v) for k, v in data.items()}
    labels = {**(meta.get("labels") or {}), **owner.labels(role)}
    annotations = {**(meta.get("annotations") or {}), **owner.annotations()}
    if current.get("data") == encoded and labels == meta.get("labels") and annotations == meta.get("annotations"):
        return WriteResult(dict(current), False)
    body = {**current, "metadata": {**meta, "labels": labels, "annotations": annotations}, "data": encoded}
    return WriteResult(raw.put(_path("Secret", namespace, name), body), True)


def delete_managed_secret(raw: RawClient, current: Mapping[str, Any], owner: Owner, *, role: str) -> bool:
    """Delete ``current`` (a Secret as the caller read it) when it was created for ``owner`` in
    ``role`` and is still that object at that version (preconditions on uid and resourceVersion: a
    change since gives 409). False when it is gone already."""
    meta = current["metadata"]
    check_managed(current, owner, role, f"Secret {meta['namespace']}/{meta['name']}")
    try:
        raw.delete(_path("Secret", meta["namespace"], meta["name"]),
                   body={"kind": "DeleteOptions", "apiVersion": "v1",
                         "preconditions": {"uid": meta["uid"], "resourceVersion": meta["resourceVersion"]}})
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def sync_managed_secret_metadata(raw: RawClient, namespace: str, name: str, owner: Owner, labels: Mapping[str, str],
                                 annotations: Mapping[str, str], resource_version: str) -> WriteResult:
    """Add ``labels`` and ``annotations`` to a leaf Secret issued for ``owner``, without touching its data.

    Guarded like every write here: refused for a Secret that is not ours, and a merge patch with the
    ``resourceVersion`` that was read (409 if it changed meanwhile; the next pass decides again).
    """
    existing = read(raw, "Secret", namespace, name)
    if existing is None:
        raise NotManaged(f"Secret {namespace}/{name} does not exist")
    check_managed(existing, owner, ROLE_LEAF, f"Secret {namespace}/{name}")
    meta = existing["metadata"]
    if all((meta.get("labels") or {}).get(k) == v for k, v in labels.items()) and \
            all((meta.get("annotations") or {}).get(k) == v for k, v in annotations.items()):
        return WriteResult(existing, False)
    body = {"metadata": {"resourceVersion": resource_version, "labels": dict(labels),
                         "annotations": dict(annotations)}}
    return WriteResult(raw.patch(_path("Secret", namespace, name), body), True)


def write_managed_configmap(raw: RawClient, namespace: str, name: str, owner: Owner, data: Mapping[str, str],
                            *, role: str, owner_reference: Mapping[str, Any] | None = None,
                            expected_version: str | None = None) -> WriteResult:
    """Create the ConfigMap, or replace its data if it was created for ``owner`` in ``role``.

    ``expected_version`` is the resourceVersion the caller's copy came from (None: it believes
    there is none): the update carries it, so a concurrent writer's change gives 409 instead of
    being overwritten, and a create over an existing object gives 409 too.
    """
    labels = owner.labels(role)
    if expected_version is None:
        body = {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": name, "namespace": namespace, "labels": labels,
                             "annotations": owner.annotations(),
                             **({"ownerReferences": [dict(owner_reference)]} if owner_reference else {})},
                "data": dict(data)}
        return WriteResult(raw.post(_path("ConfigMap", namespace), body), True)
    existing = read(raw, "ConfigMap", namespace, name)
    if existing is None:
        raise ApiException(status=409, reason=f"Conflict: ConfigMap {namespace}/{name} is gone")
    check_managed(existing, owner, role, f"ConfigMap {namespace}/{name}")
    if existing["metadata"]["resourceVersion"] != expected_version:
        raise ApiException(status=409, reason="Conflict: the ConfigMap changed since it was read")
    if existing.get("data") == dict(data):
        return WriteResult(existing, False)
    existing["data"] = dict(data)
    return WriteResult(raw.put(_path("ConfigMap", namespace, name), existing), True)


def delete_managed_configmap(raw: RawClient, namespace: str, name: str, owner: Owner, *, role: str,
                             resource_version: str) -> bool:
    """Delete the ConfigMap if it was created for ``owner`` in ``role`` and is still at
    ``resource_version`` (a precondition: a concurrent change gives 409). False if it was gone."""
    existing = read(raw, "ConfigMap", namespace, name)
    if existing is None:
        return False
    check_managed(existing, owner, role, f"ConfigMap {namespace}/{name}")
    try:
        raw.delete(_path("ConfigMap", namespace, name),
                   body={"kind": "DeleteOptions", "apiVersion": "v1",
                         "preconditions": {"uid": existing["metadata"]["uid"], "resourceVersion": resource_version}})
    except ApiException as e:
        if e.status == 404:
            return False
        raise
    return True


def adopt(raw: RawClient, kind: str, namespace: str, name: str, owner: Owner, live_uids: frozenset[str]) -> bool:
    """Take over an object a deleted predecessor of the same name left (see ``ownership.adoptable``),
    decided on a fresh read: a merge patch of the ``certpolicy.io/managed-by-uid`` annotation alone,
    with the ``resourceVersion`` read (409 if it changed meanwhile: the next pass looks again).
    The label is not touched, so the admission policy (manifests/admissionpolicy.yaml) lets it
    through. False when the object is gone or not adoptable any more."""
    return adopt_object(raw, kind, read(raw, kind, namespace, name), owner, live_uids) is not None


def adopt_object(raw: RawClient, kind: str, current: Mapping[str, Any] | None, owner: Owner,
                 live_uids: frozenset[str]) -> dict[str, Any] | None:
    """:func:`adopt` on an object the caller has just read: the object as patched, or None when
    it is gone or not adoptable."""
    if current is None or not adoptable(current, owner, live_uids):
        return None
    meta = current["metadata"]
    return raw.patch(_path(kind, meta.get("namespace") or "", meta["name"]),
                     {"metadata": {"resourceVersion": meta["resourceVersion"], "annotations": {OWNER_UID: owner.uid}}})


#: The workload kinds a rotation may rollout-restart (``spec.rotation.restartWorkloads``), by API plural.
RESTARTABLE = {"Deployment": "deployments", "StatefulSet": "statefulsets", "DaemonSet": "daemonsets"}


def workload_path(kind: str, namespace: str, name: str) -> str:
    return f"/apis/apps/v1/namespaces/{namespace}/{RESTARTABLE[kind]}/{name}"


def restart_workload(raw: RawClient, kind: str, namespace: str, name: str, annotations: Mapping[str, str]) -> None:
    """``kubectl rollout restart``: a merge patch of pod-template annotations and nothing else.

    The owner opted in through its policy's ``spec.rotation.restartWorkloads``; the admission
    policy on the operator's own writes (manifests/admissionpolicy.yaml) admits exactly the
    ``restartedAt`` + ``restarted-for`` annotations, so any other body is refused there too."""
    raw.patch(workload_path(kind, namespace, name), restart_body(annotations))


def restart_body(annotations: Mapping[str, str]) -> dict[str, Any]:
    """The whole merge patch of a rollout restart: pod-template annotations only."""
    return {"spec": {"template": {"metadata": {"annotations": dict(annotations)}}}}


def write_operator_object(raw: RawClient, collection: str, name: str, body: Mapping[str, Any],
                          existing: Mapping[str, Any] | None) -> dict[str, Any]:
    """Create or replace one of the operator's install-level objects (the webhook's Secrets and its
    ValidatingWebhookConfiguration), which belong to no policy: created when ``existing`` (the
    caller's read, after it checked the object is the operator's) is None, else replaced at its
    resourceVersion (409 if it changed since)."""
    if existing is None:
        return raw.post(collection, dict(body))
    meta = {**body.get("metadata", {}), "resourceVersion": existing["metadata"]["resourceVersion"]}
    return raw.put(f"{collection}/{name}", {**body, "metadata": meta})


def whoami(raw: RawClient) -> str:
    """The operator's own user name, from a SelfSubjectReview: a POST that stores nothing, but
    sent through the write gate like every POST, so only the leader asks."""
    review = raw.post("/apis/authentication.k8s.io/v1/selfsubjectreviews",
                      {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})
    return str(((review.get("status") or {}).get("userInfo") or {}).get("username") or "")


def merge_into_target(raw: RawClient, kind: str, namespace: str, name: str, owner: Owner,
                      update: Callable[[dict[str, Any] | None], dict[str, Any] | None], *, key: str,
                      exclusive: bool = False, alive: Callable[[str], bool] = lambda _name: True) -> WriteResult:
    """Read-modify-write of a bundle target with optimistic concurrency.

    ``update(current)`` returns the full new content as ``{"data": {...}, "binaryData": {...}}``
    (``{"spec": {...}}`` for a ClusterTrustBundle), or None when nothing must change; it is called
    again on fresh data after a 409 conflict, so a concurrent edit is merged, not overwritten.

    An existing object is written only when it is this policy's bundle or opted in for it
    (NotManaged otherwise); a claim on ``key`` by another live policy (``alive(name)``) that cannot
    coexist with this one raises TargetConflict before anything is written.
    """
    where = f"{kind} {namespace}/{name}" if namespace else f"{kind} {name}"
    for _attempt in range(MAX_CONFLICT_RETRIES):
        current = read(raw, kind, namespace, name)
        claims = read_claims(current)
        if current is not None:
            check_bundle_target(current, owner, where)
            others = conflicting_claims(claims, key, owner, exclusive, alive)
            if others:
                mode = "exclusive" if exclusive else "shared"
                raise TargetConflict(f"{where} key {key!r} is claimed by CertificatePolicy {', '.join(others)}; "
                                     f"this policy's {mode} claim cannot coexist with it, so nothing was written "
                                     "(make both non-exclusive, or point one at another key)")
        new_claims = encode_claims(with_claim(claims, key, owner, exclusive, alive))
        content = update(current)
        annotations_now = ((current or {}).get("metadata") or {}).get("annotations") or {}
        if content is None and annotations_now.get(CLAIMS) == new_claims:
            return WriteResult(current or {}, False)
        if current is None:
            if content is None:
                return WriteResult({}, False)
            meta = {"name": name, "labels": {BUNDLE_LABEL: "true", **owner.labels(ROLE_BUNDLE)},
                    "annotations": {BUNDLE_POLICIES: owner.name, CLAIMS: new_claims, **owner.annotations()}}
            target = TARGET_KINDS[kind]
            if target.namespaced:
                meta["namespace"] = namespace
            body = {"apiVersion": target.api_version, "kind": kind, "metadata": meta, **target.create_fields,
                    **content}
            try:
                return WriteResult(raw.post(_path(kind, namespace), body), True)
            except ApiException as e:
                if e.status == 409:  # created by someone else in between: decide again on theirs
                    continue
                raise
        meta = current.setdefault("metadata", {})
        meta.setdefault("labels", {})[BUNDLE_LABEL] = "true"
        annotations = meta.setdefault("annotations", {})
        owners = set(filter(None, (annotations.get(BUNDLE_POLICIES) or "").split(",")))
        annotations[BUNDLE_POLICIES] = ",".join(sorted(owners | {owner.name}))
        annotations[CLAIMS] = new_claims
        if content is not None:
            current.update(content)  # the top-level fields update() returned, each replaced whole
        try:
            return WriteResult(raw.put(_path(kind, namespace, name), current), True)
        except ApiException as e:
            if e.status != 409:
                raise
    raise ApiException(status=409, reason=f"{kind} {namespace}/{name} kept changing; will retry on the next pass")

"""Who may write an object: the operator writes only what it created for *this* policy, or what opted in.

A policy author can name any object in a spec. Without these rules one policy could overwrite
another policy's CA key, an issued leaf's key, an application's ConfigMap, or the API server's
``kube-system/extension-apiserver-authentication``. So every write asks, on the object as read:

* **created for this policy** — label ``certpolicy.io/managed-by=<policy name>`` and annotation
  ``certpolicy.io/managed-by-uid=<policy UID>`` (set on every object the operator creates). A
  policy deleted and re-created under the same name has another UID and does not inherit the old
  one's objects by itself; an object labelled by hand without the UID annotation is an explicit
  hand-over to the policy it names (how a CA Secret made elsewhere is adopted);
* **left by a predecessor** — labelled with this policy's name, annotated with the UID of a policy
  that no longer exists (a ``Retain`` delete, then a re-create): taken over only when the new
  policy says so with ``spec.ca.adopt: true`` (:func:`adoptable`), by rewriting that annotation;
  an object whose UID is a live policy's is never taken;
* **opted in** — a user's existing bundle target carrying the annotation
  ``certpolicy.io/inject-ca-from=<policy>[,<policy>...]``, the convention of OpenShift's
  ``service.beta.openshift.io/inject-cabundle`` and cert-manager's ``cert-manager.io/inject-ca-from``;
* a **role** — ``certpolicy.io/role`` is ``ca``, ``leaf`` or ``bundle``: a policy's own issued
  leaf is not a bundle target, and its bundle is not a CA.

Independently of ownership some targets are refused outright: data keys that hold keys or leaf
certificates in TLS Secrets, the system namespaces (unless the operator is started with
``--allow-system-namespaces``) and the operator's own namespace (it holds CA material only).

Two policies may share an opted-in target key only when neither is ``exclusive``: each write
records the policy's claim on the key (annotation ``certpolicy.io/bundle-claims``) and a policy
finding a conflicting claim of another live policy stops and reports, instead of the two
rewriting the key in turn forever.

Pure: decisions over metadata maps, no API calls.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

MANAGED_BY = "certpolicy.io/managed-by"
BUNDLE_LABEL = "certpolicy.io/bundle"  # on every bundle target: the inventory watches them by it
BUNDLE_POLICIES = "certpolicy.io/bundle-policies"  # annotation: the policies whose CAs a target holds
OWNER_UID = "certpolicy.io/managed-by-uid"
ROLE_LABEL = "certpolicy.io/role"
INJECT_CA_FROM = "certpolicy.io/inject-ca-from"
CLAIMS = "certpolicy.io/bundle-claims"

ROLE_CA, ROLE_LEAF, ROLE_BUNDLE = "ca", "leaf", "bundle"
#: The renewal guard's baseline shards (kube/baselines.py): fingerprints, never a certificate.
ROLE_BASELINE = "renewal-baseline"

#: Namespaces of the cluster itself; a bundle or leaf lands there only with --allow-system-namespaces.
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})

#: Data keys that hold private keys or leaf certificates in TLS, SSH, basic-auth and token Secrets,
#: and the usual file names of keys and certificates: never a bundle target key.
FORBIDDEN_KEYS = frozenset({
    "tls.key", "tls.crt", "ssh-privatekey", "password", "token", ".dockerconfigjson", ".dockercfg",
    "key.pem", "cert.pem", "privkey.pem", "fullchain.pem", "private.key", "server.key", "server.crt",
    "client.key", "client.crt", "keystore.p12", "keystore.jks", "keystore.pfx",
})
FORBIDDEN_KEY_SUFFIXES = (".key",)


class NotManaged(Exception):
    """The object exists and is not this policy's to write: it is left untouched and reported."""


class TargetConflict(Exception):
    """Another live policy claims the same target key and one of the two claims is exclusive."""


@dataclass(frozen=True)
class Owner:
    """The policy an object is written for: its name and UID (a re-created policy has a new UID)."""

    name: str
    uid: str

    @classmethod
    def of(cls, policy: Mapping[str, Any]) -> Owner:
        meta = policy["metadata"]
        return cls(meta["name"], meta.get("uid", ""))

    def labels(self, role: str) -> dict[str, str]:
        return {MANAGED_BY: self.name, ROLE_LABEL: role}

    def annotations(self) -> dict[str, str]:
        return {OWNER_UID: self.uid} if self.uid else {}


def _meta(obj: Mapping[str, Any] | None) -> tuple[Mapping[str, str], Mapping[str, str]]:
    meta = (obj or {}).get("metadata") or {}
    return meta.get("labels") or {}, meta.get("annotations") or {}


def created_for(obj: Mapping[str, Any] | None, owner: Owner) -> bool:
    """Whether ``obj`` was created (or explicitly handed over) for this very policy."""
    labels, annotations = _meta(obj)
    if labels.get(MANAGED_BY) != owner.name:
        return False
    uid = annotations.get(OWNER_UID)
    return uid is None or not owner.uid or uid == owner.uid


def predecessor_uid(obj: Mapping[str, Any] | None, owner: Owner) -> str | None:
    """The UID of the *other* policy of this name an object was created for (labelled with this
    policy's name, annotated with another UID); None when it is this policy's, or not labelled so."""
    labels, annotations = _meta(obj)
    uid = annotations.get(OWNER_UID)
    if labels.get(MANAGED_BY) != owner.name or not uid or not owner.uid or uid == owner.uid:
        return None
    return uid


def adoptable(obj: Mapping[str, Any] | None, owner: Owner, live_uids: Collection[str]) -> bool:
    """Whether a policy with ``spec.ca.adopt`` may take ``obj`` over: created for an earlier policy
    of the same name whose UID belongs to no existing CertificatePolicy (``live_uids``)."""
    uid = predecessor_uid(obj, owner)
    return uid is not None and uid not in live_uids


def adopt_hint(owner: Owner) -> str:
    """The exact fix for an object a deleted predecessor of the same name left."""
    return (f"set spec.ca.adopt: true on CertificatePolicy {owner.name} to take over what a deleted policy of "
            f"this name left (kubectl patch certificatepolicy {owner.name} --type=merge -p "
            "'{\"spec\":{\"ca\":{\"adopt\":true}}}')")


def opted_in(obj: Mapping[str, Any] | None, owner: Owner) -> bool:
    """Whether the object's owner asked for this policy's CAs (``certpolicy.io/inject-ca-from``)."""
    _, annotations = _meta(obj)
    names = {n.strip() for n in (annotations.get(INJECT_CA_FROM) or "").split(",")}
    return owner.name in names


def owner_description(obj: Mapping[str, Any] | None) -> str:
    """Who the object belongs to, for a message (names only: never any data)."""
    labels, annotations = _meta(obj)
    if labels.get(MANAGED_BY):
        uid = annotations.get(OWNER_UID)
        return f"CertificatePolicy {labels[MANAGED_BY]}" + (f" (uid {uid})" if uid else "")
    return "its creator (no certpolicy.io/managed-by label)"


def check_managed(obj: Mapping[str, Any], owner: Owner, role: str, what: str) -> None:
    """Raise NotManaged unless ``obj`` was created for ``owner`` in ``role`` (a missing role label
    is accepted for CA Secrets and leaves labelled by hand: the hand-over names the policy)."""
    labels, _ = _meta(obj)
    if (earlier := predecessor_uid(obj, owner)) is not None:
        raise NotManaged(f"{what} was created for an earlier CertificatePolicy {owner.name} (uid {earlier}), not "
                         f"this one; it was left untouched. If that policy was deleted, {adopt_hint(owner)}")
    if not created_for(obj, owner):
        raise NotManaged(f"{what} exists and belongs to {owner_description(obj)}, not to CertificatePolicy "
                         f"{owner.name}; it was left untouched")
    if labels.get(ROLE_LABEL, role) != role:
        raise NotManaged(f"{what} is this policy's {labels[ROLE_LABEL]} object, not a {role}; it was left untouched")


def check_bundle_target(obj: Mapping[str, Any], owner: Owner, what: str) -> None:
    """Raise NotManaged unless an existing bundle target is this policy's or opted in for it."""
    if opted_in(obj, owner):
        return
    labels, _ = _meta(obj)
    if created_for(obj, owner) and labels.get(ROLE_LABEL) == ROLE_BUNDLE:
        return
    if (earlier := predecessor_uid(obj, owner)) is not None:
        raise NotManaged(f"{what} was created for an earlier CertificatePolicy {owner.name} (uid {earlier}), not "
                         f"this one; it was left untouched. If that policy was deleted, {adopt_hint(owner)}")
    raise NotManaged(f"{what} exists and was not created for CertificatePolicy {owner.name} (it belongs to "
                     f"{owner_description(obj)}); to receive this policy's CAs its owner annotates it "
                     f"{INJECT_CA_FROM}={owner.name}")


def refused_key(key: str) -> str | None:
    """Why a bundle may not be written at data key ``key`` (None: it may)."""
    if key in FORBIDDEN_KEYS or key.endswith(FORBIDDEN_KEY_SUFFIXES):
        return f"key {key!r} holds private keys or leaf certificates in TLS Secrets and is never a bundle target"
    return None


def refused_namespace(namespace: str, operator_namespace: str, allow_system: bool) -> str | None:
    """Why the operator writes no bundle or leaf in ``namespace`` (None: it may)."""
    if namespace == operator_namespace:
        return (f"namespace {namespace} is the operator's own and holds CA material only; "
                "bundles and leaves go to application namespaces")
    if namespace in SYSTEM_NAMESPACES and not allow_system:
        return (f"namespace {namespace} belongs to the cluster itself; the operator writes there only when "
                "started with --allow-system-namespaces")
    return None


# ---- claims on a shared target key ----------------------------------------------------------------

def read_claims(obj: Mapping[str, Any] | None) -> dict[str, dict[str, str]]:
    """``{key: {policy: "exclusive"|"shared"}}`` from the target's claims annotation (garbage: none)."""
    _, annotations = _meta(obj)
    try:
        raw = json.loads(annotations.get(CLAIMS) or "{}")
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): {str(p): str(m) for p, m in v.items()} for k, v in raw.items() if isinstance(v, dict)}


def claim_mode(exclusive: bool) -> str:
    return "exclusive" if exclusive else "shared"


def conflicting_claims(claims: Mapping[str, Mapping[str, str]], key: str, owner: Owner, exclusive: bool,
                       alive: Callable[[str], bool]) -> list[str]:
    """The other live policies whose claim on ``key`` cannot coexist with this one's."""
    out = []
    for other, mode in sorted((claims.get(key) or {}).items()):
        if other == owner.name or not alive(other):
            continue
        if exclusive or mode == "exclusive":
            out.append(f"{other} ({mode})")
    return out


def with_claim(claims: Mapping[str, Mapping[str, str]], key: str, owner: Owner, exclusive: bool,
               alive: Callable[[str], bool]) -> dict[str, dict[str, str]]:
    """The claims with this policy's claim on ``key`` recorded and claims of deleted policies dropped."""
    out = {k: {p: m for p, m in v.items() if p == owner.name or alive(p)} for k, v in claims.items()}
    out.setdefault(key, {})[owner.name] = claim_mode(exclusive)
    return {k: v for k, v in out.items() if v}


def without_claims(claims: Mapping[str, Mapping[str, str]], owner_name: str) -> dict[str, dict[str, str]]:
    out = {k: {p: m for p, m in v.items() if p != owner_name} for k, v in claims.items()}
    return {k: v for k, v in out.items() if v}


def encode_claims(claims: Mapping[str, Mapping[str, str]]) -> str:
    return json.dumps(claims, sort_keys=True, separators=(",", ":"))

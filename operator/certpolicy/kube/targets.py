"""The kinds of object a trust bundle is written to, one class each: the only place that knows
where a kind lives in the API, how it stores a PEM bundle and truststores, and how it is watched.

Everything else (the merge-and-verify driver, the rotation's read-back, the inventory's watches,
the writes in :mod:`certpolicy.kube.managed`) asks the kind; who may write an object is
:mod:`certpolicy.kube.ownership`'s, the same for every kind, so a new target kind — a JKS
store, a webhook configuration's ``caBundle`` — is one subclass here plus its entry in
:data:`TARGET_KINDS` (and its field in the CRD and :mod:`certpolicy.policy.bundleref`).

Values are as the API returns them (JSON maps); PEM and truststores go in and out as bytes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from certpolicy.kube.ownership import BUNDLE_LABEL
from certpolicy.kube.watched import Watched
from certpolicy.policy.bundleref import CLUSTER_TRUST_BUNDLE, CONFIG_MAP, CTB_KEY, SECRET

CTB_GROUP_VERSION = "certificates.k8s.io/v1beta1"

Obj = Mapping[str, Any]


def _b64decode(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError):
        return b""  # present but unreadable: merged as an empty bundle, then rewritten


def _b64_or_none(value: object) -> bytes | None:
    if not isinstance(value, str | bytes):
        return None  # b64decode's TypeError, said first
    try:
        return base64.b64decode(value)
    except (binascii.Error, ValueError, TypeError):
        return None


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _base(api_version: str) -> str:
    return "/api/v1" if api_version == "v1" else f"/apis/{api_version}"


@dataclass(frozen=True)
class ApiKind:
    """Where objects of one kind live in the API."""

    kind: str
    api_version: str
    plural: str
    namespaced: bool = True

    def path(self, namespace: str, name: str = "") -> str:
        scope = f"/namespaces/{namespace}" if self.namespaced else ""
        return f"{_base(self.api_version)}{scope}/{self.plural}" + (f"/{name}" if name else "")


@dataclass(frozen=True)
class TargetKind(ApiKind):
    """A kind of object that holds a trust bundle. Subclasses say how it stores one."""

    #: whether it can hold truststores (``formats``) next to the PEM
    holds_truststores: bool = True
    #: top-level fields of a newly created object besides metadata and the content
    create_fields: Mapping[str, Any] = field(default_factory=dict)
    #: what to do when the API server does not serve the kind (for a beta API)
    served_note: str = ""

    @property
    def watched(self) -> Watched:
        """How targets of this kind are watched: one cluster-wide watch of the objects carrying
        ``BUNDLE_LABEL`` (every target gets it), so a user's edit is repaired at once."""
        return Watched(f"bundle-{self.plural}", f"{_base(self.api_version)}/{self.plural}", label_selector=BUNDLE_LABEL)

    def read_pem(self, obj: Obj | None, key: str) -> bytes | None:
        """The PEM bundle stored at ``key``; None when the object or the key is absent."""
        raise NotImplementedError

    def read_truststore_bytes(self, obj: Obj | None, key: str) -> bytes | None:
        """The truststore file stored at ``key``; None when absent or unreadable."""
        return None

    def contents(self, obj: Obj) -> dict[str, bytes | None]:
        """Every key the object holds and its bytes (None: present but not decodable), for the
        inventory's view of a bundle object."""
        raise NotImplementedError

    def render(self, current: Obj | None, key: str, pem: bytes, stores: Mapping[str, bytes | None]) -> dict[str, Any]:
        """The top-level fields to write (each replaces the object's field as a whole): the current
        content with ``pem`` at ``key`` and each truststore at its key (None: the key removed, for a
        truststore that would hold no certificate), everything else kept."""
        raise NotImplementedError


@dataclass(frozen=True)
class ConfigMapTarget(TargetKind):
    """PEM in ``data[key]`` (text); truststores in ``binaryData``."""

    def read_pem(self, obj: Obj | None, key: str) -> bytes | None:
        value = (obj or {}).get("data", {}) or {}
        return value[key].encode() if key in value else None

    def read_truststore_bytes(self, obj: Obj | None, key: str) -> bytes | None:
        return _b64decode(((obj or {}).get("binaryData") or {}).get(key)) or None

    def contents(self, obj: Obj) -> dict[str, bytes | None]:
        out: dict[str, bytes | None] = {k: str(v).encode() for k, v in (obj.get("data") or {}).items()}
        out.update({k: _b64_or_none(v) for k, v in (obj.get("binaryData") or {}).items()})
        return out

    def render(self, current: Obj | None, key: str, pem: bytes, stores: Mapping[str, bytes | None]) -> dict[str, Any]:
        data = dict((current or {}).get("data") or {})
        binary = dict((current or {}).get("binaryData") or {})
        data[key] = pem.decode()
        _put_stores(binary, stores)
        out: dict[str, Any] = {"data": data}
        if binary or (current or {}).get("binaryData"):
            out["binaryData"] = binary  # replaced whole: a removed last truststore must not stay
        return out


@dataclass(frozen=True)
class SecretTarget(TargetKind):
    """PEM and truststores base64-encoded in ``data``."""

    def read_pem(self, obj: Obj | None, key: str) -> bytes | None:
        return _b64decode(((obj or {}).get("data") or {}).get(key))

    def read_truststore_bytes(self, obj: Obj | None, key: str) -> bytes | None:
        return _b64decode(((obj or {}).get("data") or {}).get(key)) or None

    def contents(self, obj: Obj) -> dict[str, bytes | None]:
        return {k: _b64_or_none(v) for k, v in (obj.get("data") or {}).items()}

    def render(self, current: Obj | None, key: str, pem: bytes, stores: Mapping[str, bytes | None]) -> dict[str, Any]:
        data = dict((current or {}).get("data") or {})
        data[key] = _b64(pem)
        _put_stores(data, stores)
        return {"data": data}


@dataclass(frozen=True)
class ClusterTrustBundleTarget(TargetKind):
    """KEP-3257: cluster-scoped, the PEM bundle in ``spec.trustBundle``, no truststores."""

    def read_pem(self, obj: Obj | None, key: str) -> bytes | None:
        pem = ((obj or {}).get("spec") or {}).get(CTB_KEY)
        return pem.encode() if isinstance(pem, str) else None

    def render(self, current: Obj | None, key: str, pem: bytes, stores: Mapping[str, bytes | None]) -> dict[str, Any]:
        return {"spec": {**((current or {}).get("spec") or {}), CTB_KEY: pem.decode()}}

    def contents(self, obj: Obj) -> dict[str, bytes | None]:
        pem = self.read_pem(obj, CTB_KEY)
        return {CTB_KEY: pem} if pem is not None else {}


def _put_stores(field: dict[str, str], stores: Mapping[str, bytes | None]) -> None:
    """Each truststore at its key, base64-encoded; None removes the key."""
    for k, v in stores.items():
        if v is None:
            field.pop(k, None)
        else:
            field[k] = _b64(v)


TARGET_KINDS: dict[str, TargetKind] = {
    CONFIG_MAP: ConfigMapTarget(CONFIG_MAP, "v1", "configmaps"),
    SECRET: SecretTarget(SECRET, "v1", "secrets", create_fields={"type": "Opaque"}),
    CLUSTER_TRUST_BUNDLE: ClusterTrustBundleTarget(CLUSTER_TRUST_BUNDLE, CTB_GROUP_VERSION, "clustertrustbundles",
                                                   namespaced=False, holds_truststores=False,
                                                   served_note="beta: enable the ClusterTrustBundle feature gate "
                                                               "and that runtime-config"),
}


def target_kind(kind: str) -> TargetKind:
    """The kind named ``kind``; KeyError for a kind that holds no bundle."""
    return TARGET_KINDS[kind]

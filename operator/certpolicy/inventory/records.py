"""What the inventory remembers of each watched object: enough to select and judge, no Secret data.

A Secret record keeps the parsed, public part of its certificates (the ``SecretMaterial`` of
the validation engine, which never retains the private key) and the outcome of the key check.
A Pod record keeps only which Secrets and ConfigMaps it references, and which of them it mounts
through ``subPath`` (such mounts never receive updates).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from certpolicy.pki.secretdata import SecretMaterial, material_from_secret


@dataclass(frozen=True)
class SecretRecord:
    namespace: str
    name: str
    uid: str
    resource_version: str
    type: str
    labels: tuple[tuple[str, str], ...]
    material: SecretMaterial

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def parse_secret_object(obj: dict[str, Any]) -> SecretRecord:
    meta = obj.get("metadata") or {}
    material = material_from_secret(obj.get("type") or "Opaque", obj.get("data") or {})
    return SecretRecord(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        resource_version=meta.get("resourceVersion", ""),
        type=obj.get("type") or "Opaque",
        labels=tuple(sorted((meta.get("labels") or {}).items())),
        material=material,
    )


@dataclass(frozen=True)
class Reference:
    """A Pod's reference to a Secret, ConfigMap or (projected, by name) ClusterTrustBundle."""

    kind: str  # "Secret" | "ConfigMap" | "ClusterTrustBundle"
    name: str
    via: str  # "volume" | "projected" | "env" | "envFrom"
    sub_path: bool = False

    @property
    def read_at_start_only(self) -> bool:
        """True when a running container never sees an update of the object: a ``subPath`` mount
        is copied when the container starts, ``env``/``envFrom`` are resolved then."""
        return self.sub_path or self.via in ("env", "envFrom")


#: Pod (or pod template) annotation: "true" says the Pod reads its trust bundles only when it
#: starts (e.g. a Java truststore loaded by the JVM), however they are mounted.
TRUST_AT_START_ANNOTATION = "certpolicy.io/trust-loaded-at-start"
_RESTARTABLE = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True)
class PodRecord:
    namespace: str
    name: str
    references: frozenset[Reference]
    #: ``status.startTime``; None while the Pod has not started (it will read what is current).
    started_at: dt.datetime | None = None
    #: What ``kubectl rollout restart`` would act on: ``Deployment|StatefulSet|DaemonSet/ns/name``.
    owner: str | None = None
    trust_at_start: bool = False


def _time(value: Any) -> dt.datetime | None:
    try:
        return dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _owner(meta: dict[str, Any]) -> str | None:
    """The restartable owner of a Pod: its controller, or for a ReplicaSet the Deployment whose
    name it carries (``<deployment>-<pod-template-hash>``, as the Deployment controller names it)."""
    ns = meta.get("namespace", "")
    for ref in meta.get("ownerReferences") or ():
        if not ref.get("controller"):
            continue
        kind, name = ref.get("kind"), ref.get("name", "")
        if kind in _RESTARTABLE:
            return f"{kind}/{ns}/{name}"
        template_hash = (meta.get("labels") or {}).get("pod-template-hash")
        if kind == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
            return f"Deployment/{ns}/{name[: -len(template_hash) - 1]}"
    return None


def _volume_refs(volume: dict[str, Any]) -> list[tuple[str, str, str]]:
    refs = []
    if volume.get("secret"):
        refs.append(("Secret", volume["secret"].get("secretName", ""), "volume"))
    if volume.get("configMap"):
        refs.append(("ConfigMap", volume["configMap"].get("name", ""), "volume"))
    for src in (volume.get("projected") or {}).get("sources") or ():
        if src.get("secret"):
            refs.append(("Secret", src["secret"].get("name", ""), "projected"))
        if src.get("configMap"):
            refs.append(("ConfigMap", src["configMap"].get("name", ""), "projected"))
        if src.get("clusterTrustBundle"):  # by name (a signerName/labelSelector projection names none)
            refs.append(("ClusterTrustBundle", src["clusterTrustBundle"].get("name", ""), "projected"))
    return refs


def parse_pod_object(obj: dict[str, Any]) -> PodRecord | None:
    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    volumes = {v.get("name"): _volume_refs(v) for v in spec.get("volumes") or ()}
    containers = list(spec.get("initContainers") or ()) + list(spec.get("containers") or ()) + list(
        spec.get("ephemeralContainers") or ()
    )
    refs: set[Reference] = set()
    sub_path_volumes: set[str] = set()
    for c in containers:
        for m in c.get("volumeMounts") or ():
            if m.get("subPath") or m.get("subPathExpr"):
                sub_path_volumes.add(m.get("name"))
        for env in c.get("env") or ():
            vf = env.get("valueFrom") or {}
            if vf.get("secretKeyRef"):
                refs.add(Reference("Secret", vf["secretKeyRef"].get("name", ""), "env"))
            if vf.get("configMapKeyRef"):
                refs.add(Reference("ConfigMap", vf["configMapKeyRef"].get("name", ""), "env"))
        for ef in c.get("envFrom") or ():
            if ef.get("secretRef"):
                refs.add(Reference("Secret", ef["secretRef"].get("name", ""), "envFrom"))
            if ef.get("configMapRef"):
                refs.add(Reference("ConfigMap", ef["configMapRef"].get("name", ""), "envFrom"))
    for vname, vrefs in volumes.items():
        for kind, name, via in vrefs:
            refs.add(Reference(kind, name, via, sub_path=vname in sub_path_volumes))
    refs = {r for r in refs if r.name}
    if not refs:
        return None  # Pods that reference nothing are not worth remembering
    annotations = meta.get("annotations") or {}
    return PodRecord(meta.get("namespace", ""), meta.get("name", ""), frozenset(refs),
                     _time((obj.get("status") or {}).get("startTime")), _owner(meta),
                     str(annotations.get(TRUST_AT_START_ANNOTATION, "")).lower() == "true")


@dataclass(frozen=True)
class NamespaceRecord:
    name: str
    labels: tuple[tuple[str, str], ...]
    terminating: bool = False

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def parse_namespace_object(obj: dict[str, Any]) -> NamespaceRecord:
    meta = obj.get("metadata") or {}
    terminating = bool(meta.get("deletionTimestamp")) or (obj.get("status") or {}).get("phase") == "Terminating"
    return NamespaceRecord(meta.get("name", ""), tuple(sorted((meta.get("labels") or {}).items())), terminating)


@dataclass(frozen=True)
class BundleRecord:
    """A trust bundle source or target: the certificates found under each data key."""

    namespace: str
    name: str
    kind: str
    resource_version: str
    certificates: tuple[tuple[str, tuple], ...]  # (data key, certificates)
    problems: tuple[tuple[str, tuple[str, ...]], ...]

    def certs(self, key: str) -> tuple:
        return dict(self.certificates).get(key, ())

    def has_key(self, key: str) -> bool:
        return key in dict(self.certificates)


def parse_bundle_object(obj: dict[str, Any], kind: str | None = None) -> BundleRecord:
    """``kind`` comes from the watch (list items carry no ``kind``); a ClusterTrustBundle's PEM is
    its ``spec.trustBundle``, reported under that key."""
    import base64
    import binascii

    from certpolicy.pki.load import load_certificates

    meta = obj.get("metadata") or {}
    kind = kind or obj.get("kind") or ("Secret" if "type" in obj else "ConfigMap")
    certs, problems = [], []
    raw: dict[str, bytes] = {}
    if kind == "ClusterTrustBundle":
        pem = (obj.get("spec") or {}).get("trustBundle")
        if isinstance(pem, str):
            raw["trustBundle"] = pem.encode()
    elif kind == "ConfigMap":
        raw.update({k: v.encode() for k, v in (obj.get("data") or {}).items()})
        for k, v in (obj.get("binaryData") or {}).items():
            try:
                raw[k] = base64.b64decode(v)
            except (binascii.Error, ValueError):
                problems.append((k, ("not valid base64",)))
    else:
        for k, v in (obj.get("data") or {}).items():
            try:
                raw[k] = base64.b64decode(v)
            except (binascii.Error, ValueError):
                problems.append((k, ("not valid base64",)))
    for k, data in sorted(raw.items()):
        if k.endswith((".p12", ".pfx", ".jks")):
            continue  # encoded truststores: verified by their writer, not read as PEM here
        loaded = load_certificates(data)
        certs.append((k, loaded.certificates))
        if loaded.problems:
            problems.append((k, tuple(loaded.problems)))
    return BundleRecord(meta.get("namespace", ""), meta.get("name", ""), kind, meta.get("resourceVersion", ""),
                        tuple(certs), tuple(problems))

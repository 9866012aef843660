"""What the inventory remembers of each watched object: enough to select and judge, no Secret data.

A Secret record keeps the parsed, public part of its certificates (the ``SecretMaterial`` of
the validation engine, which never retains the private key) and the outcome of the key check.
A Pod record keeps only which Secrets and ConfigMaps it references, and which of them it mounts
through ``subPath`` (such mounts never receive updates).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from certpolicy.interning import shared
from certpolicy.pki.secretdata import SecretMaterial, material_from_secret
from certpolicy.policy.certmanager import CertManagerOwner, owner_of
from certpolicy.timestamps import parse_rfc3339

if TYPE_CHECKING:
    from cryptography import x509

    from certpolicy.pki.load import LoadProblem


#: Secret annotation: a person accepts a renewal the guard reported as a regression by writing the
#: new leaf's SHA-256 fingerprint here (lowercase hex); see handlers/renewal.py.
RENEWAL_ACCEPTED_ANNOTATION = "certpolicy.io/renewal-accepted"


@dataclass(frozen=True, slots=True)  # slots: 48 bytes less per held Secret (tracemalloc, Python 3.11)
class SecretRecord:
    namespace: str
    name: str
    uid: str
    resource_version: str
    type: str
    labels: tuple[tuple[str, str], ...]
    material: SecretMaterial
    #: The ``certpolicy.io/renewal-accepted`` annotation (a leaf's SHA-256), read, never written.
    renewal_accepted: str | None = None
    #: The cert-manager Certificate that writes this Secret (its annotations), named in findings.
    cert_manager: CertManagerOwner | None = None

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def unreadable(self) -> bool:
        return any(p.reason in _UNREADABLE for p in self.material.problems)


_UNREADABLE = frozenset({"MalformedCertificate", "MalformedSecretData", "KeystoreUnreadable", "KeystorePartlyRead",
                         "DoubleEncoded", "InputTooLarge"})


def parse_secret_object(obj: dict[str, Any]) -> SecretRecord:
    meta = obj.get("metadata") or {}
    material = material_from_secret(obj.get("type") or "Opaque", obj.get("data") or {})
    return SecretRecord(
        # One object for what a namespace's Secrets repeat (the inventory holds every record).
        namespace=shared(meta.get("namespace", "")),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        resource_version=meta.get("resourceVersion", ""),
        type=shared(obj.get("type") or "Opaque"),
        labels=shared(tuple(sorted((meta.get("labels") or {}).items()))),
        material=material,
        renewal_accepted=(meta.get("annotations") or {}).get(RENEWAL_ACCEPTED_ANNOTATION),
        cert_manager=owner_of(meta.get("namespace", ""), meta.get("annotations")),
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


def _time(value: object) -> dt.datetime | None:
    try:
        return parse_rfc3339(str(value)) if value else None
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
    certificates: tuple[tuple[str, tuple[x509.Certificate, ...]], ...]  # (data key, certificates)
    problems: tuple[tuple[str, tuple[LoadProblem, ...]], ...]  # (data key, what loading it met)

    def certs(self, key: str) -> tuple[x509.Certificate, ...]:
        return dict(self.certificates).get(key, ())

    def has_key(self, key: str) -> bool:
        return key in dict(self.certificates)

    def keys(self) -> tuple[str, ...]:
        """The data keys the object holds (names only), sorted."""
        return tuple(sorted(k for k, _ in self.certificates))


def parse_bundle_object(obj: dict[str, Any], kind: str | None = None) -> BundleRecord:
    """``kind`` comes from the watch (list items carry no ``kind``); how each kind stores its
    bundle is the kind's (:mod:`certpolicy.kube.targets`): a ClusterTrustBundle's PEM is its
    ``spec.trustBundle``, reported under that key."""
    from certpolicy.kube.targets import target_kind
    from certpolicy.pki.load import LoadProblem, load_certificates

    meta = obj.get("metadata") or {}
    kind = kind or obj.get("kind") or ("Secret" if "type" in obj else "ConfigMap")
    certs: list[tuple[str, tuple[x509.Certificate, ...]]] = []
    problems: list[tuple[str, tuple[LoadProblem, ...]]] = []
    raw: dict[str, bytes] = {}
    for k, value in target_kind(kind).contents(obj).items():
        if value is None:  # the key is the tuple's first item, as for load_certificates' problems
            problems.append((k, (LoadProblem("MalformedSecretData", "not valid base64"),)))
        else:
            raw[k] = value
    for k, data in sorted(raw.items()):
        if k.endswith((".p12", ".pfx", ".jks")):
            continue  # encoded truststores: verified by their writer, not read as PEM here
        loaded = load_certificates(data)
        certs.append((k, loaded.certificates))
        if loaded.problems:
            problems.append((k, tuple(loaded.problems)))
    return BundleRecord(meta.get("namespace", ""), meta.get("name", ""), kind, meta.get("resourceVersion", ""),
                        tuple(certs), tuple(problems))


# --- label-selected Secrets of any type, trust stores, caBundles ---------------------------------


def parse_labelled_secret(obj: dict[str, Any]) -> SecretRecord | None:
    """A Secret of any type selected by label is a certificate Secret only if some data key
    holds a certificate or keystore by the key patterns; a database password that happens to
    carry the same labels is not selected (and its data is not kept)."""
    from certpolicy.pki.secretdata import NON_TLS_TYPES, classify_data_key

    if obj.get("type") in NON_TLS_TYPES:
        return None
    if not any(classify_data_key(k) in ("cert", "chain", "keystore") for k in (obj.get("data") or {})):
        return None
    return parse_secret_object(obj)


@dataclass(frozen=True)
class TruststoreDataKey:
    """One data key holding certificates: what it holds and what could not be read."""

    key: str
    format: str
    certificates: tuple
    problems: tuple  # LoadProblems (messages never hold the password)
    needs_password: bool = False  # a password-protected store read without one


@dataclass(frozen=True)
class TruststoreRecord:
    """A ConfigMap or Secret selected as holding trust stores: each store-like data key, read."""

    kind: str
    namespace: str
    name: str
    uid: str
    resource_version: str
    labels: tuple[tuple[str, str], ...]
    entries: tuple[TruststoreDataKey, ...]

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)

    @property
    def unreadable(self) -> bool:
        return any(p.reason in _UNREADABLE for e in self.entries for p in e.problems)


def _decoded(obj: dict[str, Any], kind: str) -> tuple[dict[str, bytes], list[str]]:
    import base64
    import binascii

    raw: dict[str, bytes] = {}
    bad: list[str] = []
    if kind == "ConfigMap":
        raw.update({k: v.encode() for k, v in (obj.get("data") or {}).items() if isinstance(v, str)})
        encoded = obj.get("binaryData") or {}
    else:
        encoded = obj.get("data") or {}
    for k, v in encoded.items():
        try:
            raw[k] = base64.b64decode(v, validate=True)
        except (binascii.Error, ValueError, TypeError):
            bad.append(k)
    return raw, bad


def parse_truststore_object(obj: dict[str, Any], kind: str) -> TruststoreRecord:
    """Every data key that may hold certificates (by the key patterns), read by content with its
    sibling password if there is one. Which keys count as trust stores is the policy's choice."""
    from certpolicy.pki.certstores import JCEKS, JKS, PKCS12, read_certstore, sibling_password
    from certpolicy.pki.load import LoadProblem
    from certpolicy.pki.secretdata import classify_data_key

    meta = obj.get("metadata") or {}
    raw, bad = _decoded(obj, kind)
    entries = [TruststoreDataKey(k, "", (), (LoadProblem("MalformedSecretData", "value is not valid base64", k),)) for k in bad]
    for k in sorted(raw):
        if classify_data_key(k) in (None, "key", "password"):
            continue
        _, password = sibling_password(k, raw)
        store = read_certstore(raw[k], password, source=k)
        needs = password is None and store.format in (PKCS12, JKS, JCEKS) and (store.unreadable or store.unverified)
        entries.append(TruststoreDataKey(k, store.format, store.certificates, store.problems, needs))
    return TruststoreRecord(kind, meta.get("namespace", ""), meta.get("name", ""), meta.get("uid", ""),
                       meta.get("resourceVersion", ""), tuple(sorted((meta.get("labels") or {}).items())),
                       tuple(entries))


#: Annotations naming the Secret that serves a webhook or APIService (``namespace/name``).
SERVING_SECRET_ANNOTATIONS = ("certpolicy.io/serving-secret", "cert-manager.io/inject-ca-from-secret")


@dataclass(frozen=True)
class CABundleRecord:
    """The caBundles of one webhook configuration, APIService or CRD (conversion webhook)."""

    kind: str
    name: str
    uid: str
    resource_version: str
    labels: tuple[tuple[str, str], ...]
    serving_secret: tuple[str, str] | None  # (namespace, name) from an annotation
    bundles: tuple[tuple[str, tuple[x509.Certificate, ...], tuple[LoadProblem, ...]], ...]  # (where, certificates, problems)

    @property
    def namespace(self) -> str:
        return ""

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


def parse_cabundle_object(obj: dict[str, Any], kind: str) -> CABundleRecord:
    import base64
    import binascii

    from certpolicy.pki.load import LoadProblem, load_certificates

    meta = obj.get("metadata") or {}
    spec = obj.get("spec") or {}
    found: list[tuple[str, Any]] = []
    if kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        for i, hook in enumerate(obj.get("webhooks") or ()):
            found.append((f"webhooks[{i}] ({hook.get('name', '')})", (hook.get("clientConfig") or {}).get("caBundle")))
    elif kind == "APIService":
        found.append(("spec.caBundle", spec.get("caBundle")))
    else:  # CustomResourceDefinition
        webhook = (spec.get("conversion") or {}).get("webhook") or {}
        if (spec.get("conversion") or {}).get("strategy") == "Webhook":
            found.append(("spec.conversion.webhook.clientConfig.caBundle", (webhook.get("clientConfig") or {}).get("caBundle")))
    bundles: list[tuple[str, tuple[x509.Certificate, ...], tuple[LoadProblem, ...]]] = []
    for where, value in found:
        if not value:
            bundles.append((where, (), (LoadProblem("NoCertificate", "caBundle is empty: the API server verifies the "
                                                    "webhook against its own roots only", where),)))
            continue
        try:
            pem = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError, TypeError):
            bundles.append((where, (), (LoadProblem("MalformedSecretData", "caBundle is not valid base64", where),)))
            continue
        loaded = load_certificates(pem)
        bundles.append((where, loaded.certificates, tuple(p.with_source(where) for p in loaded.problems)))
    annotations = meta.get("annotations") or {}
    serving = None
    for a in SERVING_SECRET_ANNOTATIONS:
        ns, _, name = (annotations.get(a) or "").partition("/")
        if ns and name:
            serving = (ns, name)
            break
    return CABundleRecord(kind, meta.get("name", ""), meta.get("uid", ""), meta.get("resourceVersion", ""),
                          tuple(sorted((meta.get("labels") or {}).items())), serving, tuple(bundles))


@dataclass(frozen=True)
class CertificateRecord:
    """What judging a cert-manager ``Certificate`` needs (``policy/certmanager.judge_certificate_spec``)
    and nothing more: the watch keeps thousands of them, so not their whole objects."""

    namespace: str
    name: str
    secret_name: str
    usages: tuple[str, ...] = ()
    dns_names: tuple[str, ...] = ()
    ip_addresses: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    email_addresses: tuple[str, ...] = ()
    key_algorithm: str | None = None
    key_size: int | None = None
    duration: str | None = None
    issuer_ref: tuple[str, str, str] = ("", "", "")  # name, kind, group
    renewal_time: str | None = None
    not_after: str | None = None
    ready: str | None = None  # the Ready condition's status: "True", "False", "Unknown" or None

    @property
    def secret_key(self) -> tuple[str, str]:
        return (self.namespace, self.secret_name)

    def as_object(self) -> dict[str, Any]:
        """The Certificate as ``judge_certificate_spec`` reads it (an absent field stays absent)."""
        key = {k: v for k, v in (("algorithm", self.key_algorithm), ("size", self.key_size)) if v is not None}
        spec: dict[str, Any] = {"secretName": self.secret_name, "usages": list(self.usages),
                                "dnsNames": list(self.dns_names), "ipAddresses": list(self.ip_addresses),
                                "uris": list(self.uris), "emailAddresses": list(self.email_addresses),
                                "privateKey": key}
        if self.duration is not None:
            spec["duration"] = self.duration
        status = {k: v for k, v in (("renewalTime", self.renewal_time), ("notAfter", self.not_after)) if v}
        return {"metadata": {"namespace": self.namespace, "name": self.name}, "spec": spec, "status": status}


#: Bound on each list a Certificate record keeps (cert-manager's own webhook allows more; the
#: judge needs the names, and a Certificate with more is refused by most issuers anyway).
MAX_CERTIFICATE_LIST = 100


def _strs(value: object) -> tuple[str, ...]:
    return tuple(v for v in value if isinstance(v, str))[:MAX_CERTIFICATE_LIST] if isinstance(value, list) else ()


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def parse_certificate_object(obj: dict[str, Any]) -> CertificateRecord:
    """A ``certificates.cert-manager.io/v1`` object, trimmed to :class:`CertificateRecord`; a field
    of the wrong type is kept as absent (the judge treats it so too)."""
    meta, spec, status = _dict(obj.get("metadata")), _dict(obj.get("spec")), _dict(obj.get("status"))
    key, issuer = _dict(spec.get("privateKey")), _dict(spec.get("issuerRef"))
    size = key.get("size")
    ready = next((c.get("status") for c in status.get("conditions") or ()
                  if isinstance(c, dict) and c.get("type") == "Ready"), None)
    return CertificateRecord(
        namespace=_str(meta.get("namespace")) or "", name=_str(meta.get("name")) or "",
        secret_name=_str(spec.get("secretName")) or "",
        usages=_strs(spec.get("usages")), dns_names=_strs(spec.get("dnsNames")),
        ip_addresses=_strs(spec.get("ipAddresses")), uris=_strs(spec.get("uris")),
        email_addresses=_strs(spec.get("emailAddresses")),
        key_algorithm=_str(key.get("algorithm")),
        key_size=size if isinstance(size, int) and not isinstance(size, bool) else None,
        duration=_str(spec.get("duration")),
        issuer_ref=(_str(issuer.get("name")) or "", _str(issuer.get("kind")) or "", _str(issuer.get("group")) or ""),
        renewal_time=_str(status.get("renewalTime")), not_after=_str(status.get("notAfter")),
        ready=_str(ready),
    )

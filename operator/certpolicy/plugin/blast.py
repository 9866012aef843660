"""``kubectl certpolicy blast-radius CA|BUNDLE``: everything that depends on a CA.

The first question of every rotation and of every CA compromise. A CA is named by its
fingerprint (``sha256:<hex>``, a unique prefix of at least 8 hex digits is enough) or by a
bundle, whose every certificate is then asked about: ``configmap/NS/NAME[:KEY]``,
``secret/NS/NAME[:KEY]``, ``clustertrustbundle/NAME`` or ``policy/NAME`` (the policy's CAs,
from its status).

What depends on a CA:

* **Secrets whose certificate chains to it** — the operator's engine (:func:`evaluate`) verifies
  each TLS Secret's chain against that CA alone; and Secrets that carry it (``tls.crt`` chain,
  ``ca.crt``, or any other key holding PEM certificates: Secret trust bundles);
* **trust bundles that hold it** — ConfigMaps (any key holding PEM), ClusterTrustBundles;
* **caBundles that hold it** — validating and mutating webhooks, APIServices, CRD conversion
  webhooks;
* **Pods that use any of those** Secrets or ConfigMaps (volumes, projected volumes, env, envFrom)
  or ClusterTrustBundles (projected);
* **CertificatePolicies** whose CA it is (current or in their CA history).

:func:`radius` is pure: objects in, dependents out. Nothing here writes to the cluster, and
nothing printed comes from a Secret's data but certificate subjects and fingerprints.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import datetime as dt
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cryptography import x509

from certpolicy.inventory.records import parse_pod_object
from certpolicy.pki.bundle import read_bundle
from certpolicy.pki.fingerprint import PREFIX, certificate_fingerprint, short
from certpolicy.pki.inspect import summarize
from certpolicy.pki.load import load_certificates
from certpolicy.pki.secretdata import material_from_manifest
from certpolicy.plugin.output import dump, structured, table
from certpolicy.plugin.reads import Objects, read
from certpolicy.policy.evaluate import evaluate
from certpolicy.policy.spec import requirements_from_spec
from certpolicy.timestamps import rfc3339

#: kinds read, and whether the command fails without them
KINDS = {"CertificatePolicy": False, "Secret": True, "ConfigMap": True, "Pod": True, "ClusterTrustBundle": False,
         "ValidatingWebhookConfiguration": False, "MutatingWebhookConfiguration": False, "APIService": False,
         "CustomResourceDefinition": False}
ORDER = ("CertificatePolicy", "Secret", "ConfigMap", "ClusterTrustBundle", "ValidatingWebhookConfiguration",
         "MutatingWebhookConfiguration", "APIService", "CustomResourceDefinition", "Pod")
KEY_LIKE = re.compile(r"(^|[._-])(key|password|token)$|ssh-privatekey|\.dockerconfigjson|\.dockercfg")
MIN_PREFIX = 8
CHAINS = "its certificate chains to the CA"  # how a Secret issued under the CA depends on it
_REQUIREMENTS = requirements_from_spec({})  # only the chain is looked at


class TargetError(Exception):
    """The CA or bundle named cannot be found or holds no certificate: exit 3."""


@dataclass(frozen=True)
class CA:
    fingerprint: str
    subject: str
    not_after: str

    @classmethod
    def of(cls, cert: x509.Certificate) -> CA:
        s = summarize(cert)
        return cls(s.fingerprint, s.subject, rfc3339(s.not_after))

    def to_dict(self) -> dict[str, str]:
        return {"fingerprint": self.fingerprint, "subject": self.subject, "notAfter": self.not_after}


@dataclass(frozen=True)
class Dependent:
    kind: str
    namespace: str
    name: str
    via: str  # how it depends on the CA, for a human
    ca: str  # the fingerprint it depends on


# --- reading certificates out of objects ---------------------------------------------------------


def _decode(value: Any) -> bytes:
    try:
        return base64.b64decode(value or "", validate=False)
    except (binascii.Error, ValueError):
        return b""


def _pem_values(data: Mapping[str, Any] | None, *, encoded: bool, skip: Iterable[str] = ()) -> Iterator[tuple[str, bytes]]:
    """(key, bytes) of the values that hold PEM certificates; never a key-like entry."""
    skipped = set(skip)
    for key, value in (data or {}).items():
        if key in skipped or KEY_LIKE.search(key):
            continue
        raw = _decode(value) if encoded else (value.encode() if isinstance(value, str) else b"")
        if b"-----BEGIN CERTIFICATE-----" in raw:
            yield key, raw


_CERTIFICATE_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)


def certificates_only(secret: Mapping[str, Any]) -> dict[str, Any]:
    """The Secret with its data cut to the PEM certificates it carries (``tls.crt``, ``ca.crt``, a
    trust bundle under any other key), each value re-encoded from its CERTIFICATE blocks alone:
    no private key (``tls.key``, nor one pasted into ``tls.crt``), password or token stays in
    memory. Applied to each Secret as its page arrives."""
    data: dict[str, str] = {}
    for key, raw in _pem_values(secret.get("data"), encoded=True):
        blocks = _CERTIFICATE_PEM.findall(raw)
        if blocks:
            data[key] = base64.b64encode(b"\n".join(blocks) + b"\n").decode()
    return {**{k: v for k, v in secret.items() if k not in ("data", "stringData")}, "data": data}


def _fingerprints(raw: bytes) -> dict[str, x509.Certificate]:
    bundle = read_bundle(raw)
    return dict(zip(bundle.fingerprints, bundle.certificates))


def _meta(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return meta.get("namespace", ""), meta.get("name", "")


def _ca_bundles(kind: str, obj: Mapping[str, Any]) -> Iterator[tuple[str, bytes]]:
    """(where, PEM) of every caBundle an object carries."""
    spec = obj.get("spec") or {}
    if kind in ("ValidatingWebhookConfiguration", "MutatingWebhookConfiguration"):
        for hook in obj.get("webhooks") or ():
            ca = (hook.get("clientConfig") or {}).get("caBundle")
            if ca:
                yield f"webhook {hook.get('name')} caBundle", _decode(ca)
    elif kind == "APIService" and spec.get("caBundle"):
        yield "caBundle", _decode(spec["caBundle"])
    elif kind == "CustomResourceDefinition":
        ca = (((spec.get("conversion") or {}).get("webhook") or {}).get("clientConfig") or {}).get("caBundle")
        if ca:
            yield "conversion webhook caBundle", _decode(ca)
    elif kind == "ClusterTrustBundle" and spec.get("trustBundle"):
        yield "trustBundle", spec["trustBundle"].encode()


def _policy_cas(policy: Mapping[str, Any]) -> Iterator[tuple[str, x509.Certificate]]:
    """(state, certificate) of each CA a policy has recorded (status.ca.history)."""
    for h in ((policy.get("status") or {}).get("ca") or {}).get("history") or ():
        for cert in load_certificates((h.get("certificate") or "").encode()).certificates:
            yield str(h.get("state") or "recorded"), cert


# --- which CA ------------------------------------------------------------------------------------


def all_certificates(objects: Objects) -> dict[str, x509.Certificate]:
    """Every certificate the cluster shows (chains, bundles, caBundles, policies' CAs)."""
    found: dict[str, x509.Certificate] = {}
    for policy in objects.of("CertificatePolicy"):
        for _state, cert in _policy_cas(policy):
            found.setdefault(certificate_fingerprint(cert), cert)
    for secret in objects.of("Secret"):
        for _key, raw in _pem_values(secret.get("data"), encoded=True):
            found.update(_fingerprints(raw))
    for cm in objects.of("ConfigMap"):
        for _key, raw in _pem_values(cm.get("data"), encoded=False):
            found.update(_fingerprints(raw))
    for kind in ("ClusterTrustBundle", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
                 "APIService", "CustomResourceDefinition"):
        for obj in objects.of(kind):
            for _where, raw in _ca_bundles(kind, obj):
                found.update(_fingerprints(raw))
    return found


def resolve(target: str, objects: Objects) -> list[x509.Certificate]:
    """The CA certificates ``target`` names (see the module docstring)."""
    text = target.strip()
    hexpart = text.lower().removeprefix(PREFIX).replace(":", "")
    if re.fullmatch(r"[0-9a-f]+", hexpart):
        if len(hexpart) < MIN_PREFIX:
            raise TargetError(f"{target}: give at least {MIN_PREFIX} hex digits of the fingerprint")
        matches = [c for fp, c in all_certificates(objects).items() if fp.removeprefix(PREFIX).startswith(hexpart)]
        if not matches:
            raise TargetError(f"no certificate with fingerprint {target} in the cluster's Secrets, bundles, "
                              "caBundles or policies")
        if len(matches) > 1:
            raise TargetError(f"{target} matches {len(matches)} certificates: give more of the fingerprint")
        return matches
    kind, _, rest = text.partition("/")
    kind = kind.lower()
    ref, _, key = rest.partition(":")
    if kind in ("configmap", "cm", "secret"):
        ns, _, name = ref.partition("/")
        if not ns or not name:
            raise TargetError(f"{target}: expected {kind}/NAMESPACE/NAME[:KEY]")
        real = "ConfigMap" if kind in ("configmap", "cm") else "Secret"
        obj = next((o for o in objects.of(real) if _meta(o) == (ns, name)), None)
        if obj is None:
            raise TargetError(f"{real} {ns}/{name} not found")
        values = _pem_values(obj.get("data"), encoded=real == "Secret")
        certs = [c for k, raw in values if not key or k == key for c in _fingerprints(raw).values()]
    elif kind in ("clustertrustbundle", "ctb"):
        obj = next((o for o in objects.of("ClusterTrustBundle") if _meta(o)[1] == ref), None)
        if obj is None:
            raise TargetError(f"ClusterTrustBundle {ref} not found")
        certs = [c for _w, raw in _ca_bundles("ClusterTrustBundle", obj) for c in _fingerprints(raw).values()]
    elif kind in ("policy", "certificatepolicy", "certpol"):
        obj = next((o for o in objects.of("CertificatePolicy") if _meta(o)[1] == ref), None)
        if obj is None:
            raise TargetError(f"CertificatePolicy {ref} not found")
        certs = [c for state, c in _policy_cas(obj) if state != "retired"]
    else:
        raise TargetError(f"{target}: expected a fingerprint (sha256:...), configmap/NS/NAME[:KEY], "
                          "secret/NS/NAME[:KEY], clustertrustbundle/NAME or policy/NAME")
    if not certs:
        raise TargetError(f"{target} holds no certificate" + (f" under key {key!r}" if key else ""))
    unique = {certificate_fingerprint(c): c for c in certs}
    return list(unique.values())


# --- what depends on it --------------------------------------------------------------------------


def radius(cas: Sequence[x509.Certificate], objects: Objects, now: dt.datetime) -> list[Dependent]:
    fps = {certificate_fingerprint(c) for c in cas}
    out: dict[tuple[str, str, str, str], Dependent] = {}

    def add(kind: str, ns: str, name: str, via: str, fp: str) -> None:
        out.setdefault((kind, ns, name, fp), Dependent(kind, ns, name, via, fp))

    holders: dict[tuple[str, str, str], set[str]] = {}  # (kind, ns, name) -> CA fingerprints it depends on
    for secret in objects.of("Secret"):
        ns, name = _meta(secret)
        data = secret.get("data") or {}
        material = material_from_manifest(secret) if "tls.crt" in data else None
        if material is not None and material.leaf is not None:
            ev = evaluate(_REQUIREMENTS, material, list(cas), now)
            if ev.anchor_fingerprint in fps:
                add("Secret", ns, name, f"{CHAINS} ({material.certificate_source})",
                    ev.anchor_fingerprint)
            for entry in ev.certificates:
                if entry.summary.fingerprint in fps and entry.source in ("secret", "ca.crt"):
                    add("Secret", ns, name, f"carries the CA in {'ca.crt' if entry.source == 'ca.crt' else 'tls.crt'}",
                        entry.summary.fingerprint)
        skip = ("tls.crt", "ca.crt") if material is not None else ()
        for key, raw in _pem_values(data, encoded=True, skip=skip):
            for fp in _fingerprints(raw).keys() & fps:
                add("Secret", ns, name, f"trust bundle in key {key}", fp)
    for cm in objects.of("ConfigMap"):
        ns, name = _meta(cm)
        for key, raw in _pem_values(cm.get("data"), encoded=False):
            for fp in _fingerprints(raw).keys() & fps:
                add("ConfigMap", ns, name, f"trust bundle in key {key}", fp)
    for kind in ("ClusterTrustBundle", "ValidatingWebhookConfiguration", "MutatingWebhookConfiguration",
                 "APIService", "CustomResourceDefinition"):
        for obj in objects.of(kind):
            ns, name = _meta(obj)
            for where, raw in _ca_bundles(kind, obj):
                for fp in _fingerprints(raw).keys() & fps:
                    add(kind, ns, name, where, fp)
    for d in out.values():
        holders.setdefault((d.kind, d.namespace, d.name), set()).add(d.ca)
    for policy in objects.of("CertificatePolicy"):
        _ns, name = _meta(policy)
        for state, cert in _policy_cas(policy):
            fp = certificate_fingerprint(cert)
            if fp in fps:
                add("CertificatePolicy", "", name, f"its CA ({state})", fp)
        source = ((policy.get("spec") or {}).get("requirements") or {}).get("trustBundle") or {}
        for kind in ("configMap", "secret"):
            ref = source.get(kind) or {}
            held = holders.get(("ConfigMap" if kind == "configMap" else "Secret", ref.get("namespace", ""), ref.get("name", "")))
            for fp in held or ():
                add("CertificatePolicy", "", name, f"requirements.trustBundle is {kind} {ref.get('namespace')}/{ref.get('name')}", fp)
    for pod in objects.of("Pod"):
        ns, name = _meta(pod)
        for kind, ref_ns, ref_name, how in pod_references(pod):
            for fp in holders.get((kind, ref_ns, ref_name), ()):
                add("Pod", ns, name, f"{how} {kind} {ref_name}", fp)
    return sorted(out.values(), key=lambda d: (ORDER.index(d.kind), d.namespace, d.name, d.ca))


_HOW = {"volume": "mounts", "projected": "mounts (projected)", "env": "reads (env)", "envFrom": "reads (envFrom)"}


def pod_references(pod: Mapping[str, Any]) -> Iterator[tuple[str, str, str, str]]:
    """(kind, namespace, name, how) of each Secret, ConfigMap and ClusterTrustBundle a Pod uses,
    as the operator's inventory reads them (:func:`parse_pod_object`)."""
    record = parse_pod_object(dict(pod))
    if record is None:
        return
    for ref in sorted(record.references, key=lambda r: (r.kind, r.name, r.via)):
        namespace = "" if ref.kind == "ClusterTrustBundle" else record.namespace
        yield ref.kind, namespace, ref.name, _HOW.get(ref.via, ref.via) + (" with subPath" if ref.sub_path else "")


# --- the verb ------------------------------------------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Every Secret, Pod, trust bundle, caBundle and policy that depends on a CA. CA: a "
                          "fingerprint (sha256:..., or a unique prefix), configmap/NS/NAME[:KEY], secret/NS/NAME[:KEY], "
                          "clustertrustbundle/NAME or policy/NAME.")
    parser.add_argument("target", metavar="CA|BUNDLE")
    parser.add_argument("--all-secrets", action="store_true",
                        help="read every Secret, not only TLS Secrets and the operator's bundle targets: finds a trust "
                             "bundle kept in a Secret of another type (each cut to its certificates as it arrives)")
    parser.epilog = ("Reads: list CertificatePolicies, ClusterTrustBundles, webhook configurations, APIServices and "
                     "CRDs; list ConfigMaps, Pods, Secrets of type kubernetes.io/tls (fieldSelector) and Secrets "
                     "labelled certpolicy.io/bundle (every Secret with --all-secrets), cluster-wide or, with -n NS, in "
                     "NS only; get the Secret a secret/NS/NAME target names. Each Secret is cut to its certificates "
                     "as its page arrives: no tls.key is kept or printed. configmap/NAME and secret/NAME without a "
                     "namespace: -n, else the context's namespace.")


def report(target: str, objects: Objects, now: dt.datetime) -> dict[str, Any]:
    cas = resolve(target, objects)
    dependents = radius(cas, objects, now)
    counts: dict[str, int] = {}
    for kind in ORDER:
        n = len({(d.namespace, d.name) for d in dependents if d.kind == kind})
        if n:
            counts[kind] = n
    return {"target": target, "cas": [CA.of(c).to_dict() for c in cas], "counts": counts,
            "dependents": [asdict(d) for d in dependents], "capped": objects.capped,
            "unavailable": objects.unavailable}


#: Kinds that live in a namespace: with -n, listed in that namespace only.
NAMESPACED = {"Secret": "secrets", "ConfigMap": "configmaps", "Pod": "pods"}


def read_objects(raw, target: str, all_secrets: bool, namespace: str | None = None) -> Objects:
    """What blast-radius reads: the kinds of :data:`KINDS` (Secrets, ConfigMaps and Pods only in
    ``namespace`` when given); of Secrets, each cut to its certificates as it arrives
    (:func:`certificates_only`), only ``kubernetes.io/tls`` ones (the API server filters) and the
    operator's bundle targets (``certpolicy.io/bundle`` label) — or, with ``all_secrets``, every
    Secret (a trust bundle in an Opaque Secret of your own) — plus the Secret ``target`` names."""
    from certpolicy.kube.ownership import BUNDLE_LABEL
    from certpolicy.plugin.reads import get_object, list_kind

    objects = read(raw, {kind: required for kind, required in KINDS.items() if kind not in NAMESPACED})

    def path(kind: str) -> str:
        return f"/api/v1/namespaces/{namespace}/{NAMESPACED[kind]}" if namespace else f"/api/v1/{NAMESPACED[kind]}"

    for kind in ("ConfigMap", "Pod"):
        list_kind(raw, kind, objects, required=KINDS[kind], path=path(kind))
    queries = [{}] if all_secrets else [{"fieldSelector": "type=kubernetes.io/tls"}, {"labelSelector": BUNDLE_LABEL}]
    for query in queries:
        list_kind(raw, "Secret", objects, required=True, query=query, keep=certificates_only, path=path("Secret"))
    kind, _, rest = target.strip().partition("/")
    ns, _, name = rest.partition(":")[0].partition("/")
    if kind.lower() == "secret" and ns and name:
        obj = get_object(raw, f"/api/v1/namespaces/{ns}/secrets/{name}", f"Secret {ns}/{name}")
        objects.items.setdefault("Secret", []).extend([{**certificates_only(obj), "kind": "Secret"}] if obj else [])
    unique = {_meta(s): s for s in objects.of("Secret")}
    objects.items["Secret"] = list(unique.values())
    return objects


def with_namespace(target: str, namespace: str) -> str:
    """``configmap/NAME[:KEY]`` and ``secret/NAME[:KEY]`` in ``namespace`` (-n, else the context's)."""
    kind, _, rest = target.strip().partition("/")
    if kind.lower() in ("configmap", "cm", "secret") and "/" not in rest.partition(":")[0]:
        return f"{kind}/{namespace}/{rest}"
    return target


def run(args: argparse.Namespace, raw) -> int:
    from certpolicy.plugin.reads import context_namespace

    target = with_namespace(args.target, args.namespace or context_namespace(args.kubeconfig, args.context))
    objects = read_objects(raw, target, args.all_secrets, args.namespace)
    doc = report(target, objects, dt.datetime.now(dt.UTC))
    if structured(args):
        dump(doc, sys.stdout, args.output)
        return 0
    for ca in doc["cas"]:
        print(f"CA {ca['fingerprint']}  {ca['subject']}  notAfter {ca['notAfter']}")
    total = sum(doc["counts"].values())
    print(f"{total} objects depend on it" + (": " + ", ".join(f"{n} {k}" for k, n in doc["counts"].items()) if total else ""))
    if doc["dependents"]:
        print()
        several = len(doc["cas"]) > 1
        table(["kind", "namespace", "name", "depends through"] + (["ca"] if several else []),
              [[d["kind"], d["namespace"] or "-", d["name"], d["via"]] + ([short(d["ca"])] if several else [])
               for d in doc["dependents"]], sys.stdout)
    for kind in doc["capped"]:
        print(f"warning: more than the first {len(objects.of(kind))} {kind}s were not examined", file=sys.stderr)
    for kind, why in doc["unavailable"].items():
        print(f"note: {kind} not examined ({why})", file=sys.stderr)
    return 0

"""Writing a policy's CA certificates into every trust bundle target, and verifying each one.

The trust-manager split: the *sources* are the policy's trusted CAs (from its CA history), the
*build* is :func:`certpolicy.pki.bundle.merge` (sets, canonical order, foreign certificates kept),
the *targets* are a ConfigMap (or opt-in Secret) per selected namespace or one cluster-wide
ClusterTrustBundle, and the *encodings* are
PEM plus an optional PKCS#12 truststore. Each target is written only when its set of
certificates (or truststore entries) changes, then read back from the API and verified on its
own: one store updated and another forgotten is exactly the outage this guards against.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from kubernetes.client import ApiException

from certpolicy.handlers.settings import allow_system_namespaces, operator_namespace
from certpolicy.inventory.inventory import Inventory
from certpolicy.kube.managed import (CLUSTER_TRUST_BUNDLE, CTB_GROUP_VERSION, NotManaged, cluster_trust_bundles_served,
                                     merge_into_target, read)
from certpolicy.kube.ownership import SYSTEM_NAMESPACES, Owner, TargetConflict, refused_key, refused_namespace
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.selectors import LabelSelector
from certpolicy.kube.status import policy_path
from certpolicy.pki.bundle import contains, merge, read_bundle
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.pki.truststore import build_truststore, truststore_matches
from certpolicy.policy.report import Problem

MAX_LISTED_TARGETS = 100
CTB_KEY = "trustBundle"  # the PEM of a ClusterTrustBundle is spec.trustBundle


@dataclass(frozen=True)
class TargetState:
    kind: str
    namespace: str
    name: str
    key: str
    state: str  # Verified | Pending | Error | NotManaged | Refused | Conflict | NotServed
    message: str = ""
    written: bool = False

    def to_dict(self) -> dict[str, str]:
        d = {"kind": self.kind, "namespace": self.namespace, "name": self.name, "state": self.state}
        if self.message:
            d["message"] = self.message
        return d


@dataclass
class BundleReport:
    targets: list[TargetState] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    writes: int = 0

    @property
    def verified(self) -> int:
        return sum(1 for t in self.targets if t.state == "Verified")

    def status(self) -> dict[str, Any]:
        return {
            "total": len(self.targets),
            "verified": self.verified,
            "targets": [t.to_dict() for t in sorted(self.targets, key=lambda t: (t.state == "Verified", t.namespace))
                        ][:MAX_LISTED_TARGETS],
        }


@dataclass(frozen=True)
class TargetRef:
    """What one ``spec.trustBundles`` entry writes: kind, object name and the key of the PEM."""

    kind: str  # ConfigMap | Secret | ClusterTrustBundle
    name: str
    key: str

    @classmethod
    def of(cls, entry: Mapping[str, Any]) -> TargetRef:
        if entry.get("clusterTrustBundle"):
            return cls(CLUSTER_TRUST_BUNDLE, entry["clusterTrustBundle"]["name"], CTB_KEY)
        kind = "ConfigMap" if entry.get("configMap") else "Secret"
        ref = entry.get("configMap") or entry.get("secret")
        return cls(kind, ref["name"], ref.get("key", "ca.crt"))

    @property
    def cluster_scoped(self) -> bool:
        return self.kind == CLUSTER_TRUST_BUNDLE


def entry_namespaces(inventory: Inventory, entry: Mapping[str, Any]) -> list[str]:
    """Where an entry's targets live: the selected namespaces, or ``[""]`` for a cluster-scoped
    ClusterTrustBundle (one object for the whole cluster)."""
    if TargetRef.of(entry).cluster_scoped:
        return [""]
    return target_namespaces(inventory, entry)


def target_namespaces(inventory: Inventory, entry: Mapping[str, Any]) -> list[str]:
    """Selected namespaces that can take objects (terminating ones are skipped). A selector never
    picks the system namespaces or the operator's own; naming one in ``namespaces`` makes a
    target that is then refused, with the reason in status."""
    selector = LabelSelector.from_spec(entry.get("namespaceSelector"))
    explicit = set(entry.get("namespaces") or ())
    never = SYSTEM_NAMESPACES | {operator_namespace()}
    out = []
    for (_, name), rec in inventory.namespaces.snapshot().items():
        if rec.terminating:
            continue
        if name in explicit or (("namespaceSelector" in entry or not explicit) and selector.matches(rec.label_map)
                                and name not in never):
            out.append(name)
    return sorted(out)


def target_id(kind: str, namespace: str, name: str, key: str) -> str:
    """How a bundle target is named in rotation status: ``namespace/kind/name/key``."""
    return f"{namespace}/{kind}/{name}/{key}"


def read_truststore_password(raw: RawClient, ref: Mapping[str, str] | None) -> tuple[bytes | None, Problem | None]:
    if not ref:
        return b"", None
    obj = read(raw, "Secret", operator_namespace(), ref["name"])
    where = f"Secret {operator_namespace()}/{ref['name']} key {ref['key']}"
    if obj is None or ref["key"] not in (obj.get("data") or {}):
        return None, Problem("TruststorePasswordMissing", f"the truststore password {where} does not exist")
    try:
        password = base64.b64decode(obj["data"][ref["key"]]).rstrip(b"\r\n")
    except (binascii.Error, ValueError):
        return None, Problem("TruststorePasswordMissing", f"the truststore password {where} is not valid base64")
    try:
        password.decode("utf-8")
    except UnicodeDecodeError:
        return None, Problem("TruststorePasswordInvalid", f"the truststore password {where} is not valid UTF-8 "
                                                          "(PKCS#12 passwords are text); the truststore is not "
                                                          "written until it is, the PEM bundle is")
    return password, None


def _current_content(kind: str, obj: Mapping[str, Any] | None, key: str) -> tuple[bytes | None, dict, dict]:
    """(PEM bytes at ``key``, data map, binaryData map) of a target as read from the API."""
    if obj is None:
        return None, {}, {}
    if kind == CLUSTER_TRUST_BUNDLE:
        pem = (obj.get("spec") or {}).get(CTB_KEY)
        return (pem.encode() if isinstance(pem, str) else None), {}, {}
    data = dict(obj.get("data") or {})
    binary = dict(obj.get("binaryData") or {})
    if kind == "Secret":
        try:
            pem = base64.b64decode(data[key]) if key in data else None
        except (binascii.Error, ValueError):
            pem = b""
        return pem, data, binary
    return (data[key].encode() if key in data else None), data, binary


def policy_alive(raw: RawClient) -> Callable[[str], bool]:
    """Whether a CertificatePolicy of that name exists (asked once per name per pass): a claim on a
    shared target by a policy that is gone no longer blocks anyone."""
    known: dict[str, bool] = {}

    def alive(name: str) -> bool:
        if name not in known:
            try:
                raw.get(policy_path(name))
                known[name] = True
            except ApiException as e:
                known[name] = e.status != 404
        return known[name]

    return alive


def refusal(kind: str, namespace: str, key: str) -> str | None:
    """Why a target is never written, whoever owns it (None: ownership decides)."""
    if kind == CLUSTER_TRUST_BUNDLE:
        return None
    return refused_key(key) or refused_namespace(namespace, operator_namespace(), allow_system_namespaces())


def distribute(raw: RawClient, inventory: Inventory, owner: Owner, entries: Sequence[Mapping[str, Any]],
               trusted: Sequence[x509.Certificate], retired: set[str], primary: str | None,
               only: set[str] | None = None) -> BundleReport:
    """Merge ``trusted`` into every target (removing ``retired``), then read each back and verify."""
    report = BundleReport()
    want = {fingerprint(c) for c in trusted}
    ctb_served: bool | None = None
    alive = policy_alive(raw)
    for entry in entries:
        ref = TargetRef.of(entry)
        kind, key = ref.kind, ref.key
        exclusive = bool(entry.get("exclusive"))
        p12 = (entry.get("formats") or {}).get("pkcs12")
        if ref.cluster_scoped:
            if ctb_served is None:
                ctb_served = cluster_trust_bundles_served(raw)
            if not ctb_served:
                message = (f"the API server does not serve {CTB_GROUP_VERSION} ClusterTrustBundles (beta: enable the "
                           "ClusterTrustBundle feature gate and that runtime-config), so "
                           f"ClusterTrustBundle {ref.name} cannot be written")
                report.targets.append(TargetState(kind, "", ref.name, key, "NotServed", message))
                report.problems.append(Problem("ClusterTrustBundleNotServed", message))
                continue
        password: bytes | None = b""
        if p12:
            # The password Secret is in the policy's Reads: a password created after the policy,
            # or changed, wakes it and re-encodes the truststore at once.
            password, problem = read_truststore_password(raw, p12.get("passwordSecretRef"))
            if problem:
                report.problems.append(problem)
                p12 = None
        for ns in entry_namespaces(inventory, entry):
            if only is not None and target_id(kind, ns, ref.name, key) not in only:
                continue
            why = refusal(kind, ns, key)
            if why:
                report.targets.append(TargetState(kind, ns, ref.name, key, "Refused", why))
                continue
            report.targets.append(_write_target(raw, owner, kind, ns, ref.name, key, trusted, retired,
                                                exclusive, p12, password, primary, want, alive))
            if report.targets[-1].written:
                report.writes += 1
    return report


def _write_target(raw: RawClient, owner: Owner, kind: str, ns: str, name: str, key: str,
                  trusted: Sequence[x509.Certificate], retired: set[str], exclusive: bool,
                  p12: Mapping[str, Any] | None, password: bytes | None, primary: str | None,
                  want: set[str], alive: Callable[[str], bool]) -> TargetState:
    def update(current: dict[str, Any] | None) -> dict[str, Any] | None:
        pem, data, binary = _current_content(kind, current, key)
        merged = merge(pem, trusted, retired - want, exclusive=exclusive)
        changed = merged.changed or pem is None
        new_data = dict(data)
        new_binary = dict(binary)
        pem_text = merged.pem
        if kind == CLUSTER_TRUST_BUNDLE:
            if not changed:
                return None
            return {"spec": {**((current or {}).get("spec") or {}), CTB_KEY: pem_text}}
        if kind == "Secret":
            new_data[key] = base64.b64encode(pem_text.encode()).decode()
        else:
            new_data[key] = pem_text
        if merged.changed is False and pem is not None and kind == "ConfigMap" and data.get(key) != pem_text:
            new_data[key] = data[key]  # same set, other formatting: leave the bytes alone (no churn)
        if p12:
            store_key = p12["key"]
            store_map = new_data if kind == "Secret" else new_binary
            old = store_map.get(store_key)
            try:
                old_bytes = base64.b64decode(old) if old else None
            except (binascii.Error, ValueError):
                old_bytes = None
            certs = list(read_bundle(merged.pem).certificates)
            alias = p12.get("alias") or owner.name
            prim = primary if primary in {fingerprint(c) for c in certs} else None
            if not truststore_matches(old_bytes, password, certs, alias, prim):
                store_map[store_key] = base64.b64encode(build_truststore(certs, alias, password, prim)).decode()
                changed = True
        if not changed:
            return None
        out: dict[str, Any] = {"data": new_data}
        if kind == "ConfigMap" and new_binary:
            out["binaryData"] = new_binary
        return out

    try:
        result = merge_into_target(raw, kind, ns, name, owner, update, key=key, exclusive=exclusive, alive=alive)
    except NotManaged as e:
        return TargetState(kind, ns, name, key, "NotManaged", str(e))
    except TargetConflict as e:
        return TargetState(kind, ns, name, key, "Conflict", str(e))
    except ApiException as e:
        return TargetState(kind, ns, name, key, "Error", f"HTTP {e.status}: {str(e.reason)[:200]}")
    # Read back on its own, from the API, after this target's own write.
    try:
        back = read(raw, kind, ns, name)
    except ApiException as e:
        return TargetState(kind, ns, name, key, "Error", f"read-back failed: HTTP {e.status}", result.written)
    pem, _, _ = _current_content(kind, back, key)
    check = contains(pem, want, absent=retired - want)
    if check.ok:
        return TargetState(kind, ns, name, key, "Verified", written=result.written)
    missing = ", ".join(sorted(fp.removeprefix("sha256:")[:12] for fp in check.missing))
    return TargetState(kind, ns, name, key, "Pending", f"missing {missing}" if missing else "retired CA still present",
                       result.written)


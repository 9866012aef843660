"""Naming the cert-manager ``Certificate`` behind a Secret, and what to change in it (pure).

cert-manager writes the Secret of a ``Certificate`` itself and marks it with annotations
(``pkg/apis/certmanager/v1/types.go``). Editing that Secret is pointless: the next issuance
overwrites it. A finding on such a Secret therefore names the Certificate and its issuer and says
which field of the Certificate to change — "Certificate integration/mirth (Issuer integration/ca):
add `client auth` to spec.usages" — in the finding's message, so the status, the event and
``kubectl certpolicy why`` all say it.

:func:`owner_of` reads the annotations; :data:`CERTIFICATE_FIX` maps a finding reason to the
Certificate field to change (reasons it lacks are named without a field); :func:`name_owner`
rewrites an evaluation's findings. Usage names are cert-manager's spelling (``KeyUsage``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from certpolicy.policy.dnsnames import pattern_allows, san_covers
from certpolicy.policy.durations import format_duration, parse_duration
from certpolicy.policy.findings import MISSING_EKU_REASON, Finding, Role, finding
from certpolicy.policy.spec import Requirements

if TYPE_CHECKING:
    from certpolicy.policy.evaluate import Evaluation

GROUP = "cert-manager.io"
CERTIFICATE_NAME_ANNOTATION = "cert-manager.io/certificate-name"
ISSUER_NAME_ANNOTATION = "cert-manager.io/issuer-name"
ISSUER_KIND_ANNOTATION = "cert-manager.io/issuer-kind"
ISSUER_GROUP_ANNOTATION = "cert-manager.io/issuer-group"

#: Kubernetes object names are at most 253 characters; longer annotation values are not names.
_MAX_NAME = 253

#: Our EKU names (``extendedKeyUsages``) as cert-manager spells them in ``spec.usages``.
USAGE_NAMES: dict[str, str] = {
    "serverAuth": "server auth",
    "clientAuth": "client auth",
    "codeSigning": "code signing",
    "emailProtection": "email protection",
    "timeStamping": "timestamping",
    "ocspSigning": "ocsp signing",
}

#: What to change in the Certificate for a finding of this reason about its leaf. A reason about
#: the chain or the CA points at the issuer instead (:data:`ISSUER_FIX`); any other finding names
#: the Certificate without a fix.
CERTIFICATE_FIX: dict[str, str] = {
    **{MISSING_EKU_REASON[eku]: f"add `{name}` to spec.usages" for eku, name in USAGE_NAMES.items()},
    "NoExtendedKeyUsage": "list the usages the policy requires in spec.usages",
    "AnyExtendedKeyUsageOnly": "list the required usages in spec.usages instead of `any`",
    "NoSubjectAltName": "set spec.dnsNames (or spec.ipAddresses)",
    "DNSNameNotAllowed": "remove the name from spec.dnsNames",
    "IPAddressNotAllowed": "remove the address from spec.ipAddresses",
    "MissingRequiredDNSName": "add the name to spec.dnsNames",
    "MissingRequiredIPAddress": "add the address to spec.ipAddresses",
    "InvalidDNSName": "correct the name in spec.dnsNames",
    "WeakRSAKey": "raise spec.privateKey.size (or set spec.privateKey.algorithm: ECDSA) with rotationPolicy: Always",
    "DisallowedCurve": "set spec.privateKey.size to an allowed curve (256, 384 or 521 for ECDSA)",
    "UnsupportedKeyAlgorithm": "set spec.privateKey.algorithm to RSA or ECDSA",
    "LeafIsCA": "remove spec.isCA",
    "RenewalDroppedUsage": "add the dropped usage back to spec.usages",
    "RenewalDroppedDNSName": "add the name back to spec.dnsNames",
    "RenewalDroppedIPAddress": "add the address back to spec.ipAddresses",
    "RenewalWeakerKey": "set spec.privateKey back to the previous algorithm and size",
    "RenewalShorterLifetime": "check spec.duration (and the issuer's maximum)",
    "Expired": "find why it was not renewed: the Certificate's Ready and Issuing conditions, its CertificateRequests",
    "ExpiringSoon": "check that it renews: spec.renewBefore, the Ready and Issuing conditions",
}

#: Reasons whose fix is the issuer's CA, not the Certificate's spec.
ISSUER_FIX: dict[str, str] = {
    "UntrustedChain": "its CA does not chain to the policy's trust bundle",
    "UnknownRoot": "its CA's root is not in the policy's trust bundle",
    "IncompleteChain": "its CA's chain is not complete in tls.crt",
    "IntermediateExcludesUsage": "its CA's EKU excludes a usage the leaf needs",
    "RenewalChangedAnchor": "it now signs from another trust anchor",
    "PublicCAClientAuth": "a public CA will not issue clientAuth: use a private CA Issuer",
}


@dataclass(frozen=True, slots=True)
class CertManagerOwner:
    """The cert-manager Certificate that writes a Secret, and the issuer it asks."""

    namespace: str
    certificate: str
    issuer_name: str | None = None
    issuer_kind: str = "Issuer"
    issuer_group: str = GROUP

    @property
    def certificate_ref(self) -> str:
        return f"Certificate {self.namespace}/{self.certificate}"

    @property
    def issuer_ref(self) -> str | None:
        """``Issuer ns/name``, ``ClusterIssuer name``, or an external issuer with its group."""
        if not self.issuer_name:
            return None
        kind = self.issuer_kind if self.issuer_group == GROUP else f"{self.issuer_kind}.{self.issuer_group}"
        if self.issuer_kind == "ClusterIssuer" and self.issuer_group == GROUP:
            return f"ClusterIssuer {self.issuer_name}"
        return f"{kind} {self.namespace}/{self.issuer_name}"

    def describe(self) -> str:
        issuer = self.issuer_ref
        return f"{self.certificate_ref} ({issuer})" if issuer else self.certificate_ref

    def to_dict(self) -> dict[str, str | None]:
        return {"certificate": f"{self.namespace}/{self.certificate}", "issuer": self.issuer_ref}


def owner_of(namespace: str, annotations: Mapping[str, str] | None) -> CertManagerOwner | None:
    """The Certificate named by a Secret's cert-manager annotations; None without one (or with a
    value that cannot be an object name: annotations are anyone's to write)."""
    annotations = annotations or {}
    name = annotations.get(CERTIFICATE_NAME_ANNOTATION)
    if not _is_name(name):
        return None
    issuer = annotations.get(ISSUER_NAME_ANNOTATION)
    kind = annotations.get(ISSUER_KIND_ANNOTATION) or "Issuer"
    group = annotations.get(ISSUER_GROUP_ANNOTATION) or GROUP
    return CertManagerOwner(namespace, str(name), str(issuer) if _is_name(issuer) else None,
                            kind if _is_name(kind) else "Issuer", group if _is_name(group) else GROUP)


def _is_name(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_NAME and value.isprintable() and " " not in value


def fix_for(f: Finding, owner: CertManagerOwner) -> str:
    """What the message of finding ``f`` on a Secret written for ``owner`` adds: where to fix it."""
    if f.reason in ISSUER_FIX and owner.issuer_ref:
        return f"{owner.issuer_ref} (of {owner.certificate_ref}): {ISSUER_FIX[f.reason]}"
    fix = CERTIFICATE_FIX.get(f.reason)
    # Expiry and key findings are about whichever certificate the finding names: only the leaf's
    # are the Certificate's to fix.
    if fix and (f.cert is None or f.cert.role is Role.LEAF):
        return f"{owner.describe()}: {fix}"
    return f"written by {owner.describe()}"


def name_finding(f: Finding, owner: CertManagerOwner) -> Finding:
    return dataclasses.replace(f, message=f"{f.message} — {fix_for(f, owner)}")


def name_owner(evaluation: Evaluation, owner: CertManagerOwner | None) -> Evaluation:
    """The evaluation with every finding's message naming the Certificate (unchanged without one)."""
    if owner is None or not evaluation.findings:
        return evaluation
    return dataclasses.replace(evaluation, findings=tuple(name_finding(f, owner) for f in evaluation.findings))


# --- judging a Certificate's spec: what its next issuance will produce ----------------------------

#: cert-manager's usages when ``spec.usages`` is empty (``DefaultKeyUsages``): no EKU at all.
DEFAULT_USAGES = ("digital signature", "key encipherment")
#: cert-manager's default key: RSA 2048; ECDSA defaults to P-256 (``pkg/util/pki/generate.go``).
_DEFAULT_SIZE = {"RSA": 2048, "ECDSA": 256}
_ECDSA_CURVES = {256: "P-256", 384: "P-384", 521: "P-521"}
#: cert-manager's default spec.duration (90 days).
DEFAULT_DURATION_HOURS = 2160
_EKU_OF_USAGE = {name: eku for eku, name in USAGE_NAMES.items()}


def judge_certificate_spec(certificate: Mapping[str, Any], req: Requirements) -> list[Finding]:
    """``CertificateSpecViolates`` findings: what the Certificate's spec would put into its next
    leaf that ``req`` refuses (usages, dnsNames, privateKey, duration), naming ``status.renewalTime``.

    Pure and defensive: a spec field of the wrong type is judged as absent (cert-manager's webhook
    would refuse such a Certificate, so it issues nothing from it) and never raises.
    """
    meta = _mapping(certificate.get("metadata"))
    spec = _mapping(certificate.get("spec"))
    status = _mapping(certificate.get("status"))
    ref = f"Certificate {meta.get('namespace', '')}/{meta.get('name', '')}"
    when = (f"the renewal at {status['renewalTime']}" if isinstance(status.get("renewalTime"), str)
            else "the next issuance")
    lacks: list[tuple[str, str]] = []  # (what the leaf will lack or carry, the field to change)

    usages = _strings(spec.get("usages")) or list(DEFAULT_USAGES)
    have = {_EKU_OF_USAGE[u] for u in usages if u in _EKU_OF_USAGE}
    for eku in req.extended_key_usages:
        if eku not in have:
            name = USAGE_NAMES.get(eku, eku)
            lacks.append((f"will lack {eku}", f"add `{name}` to spec.usages"))

    dns = _strings(spec.get("dnsNames"))
    if req.allowed_dns_names:
        for name in dns:
            if not any(pattern_allows(p, name) for p in req.allowed_dns_names):
                lacks.append((f"will carry the DNS name {name!r}, which allowedDNSNames does not allow",
                              "remove it from spec.dnsNames"))
    for required in req.required_dns_names:
        if not any(san_covers(name, required) for name in dns):
            lacks.append((f"will lack the required DNS name {required!r}", "add it to spec.dnsNames"))
    if req.require_san and not dns and not _strings(spec.get("ipAddresses")) and not _strings(spec.get("uris")) \
            and not _strings(spec.get("emailAddresses")):
        lacks.append(("will have no subjectAltName", "set spec.dnsNames (or spec.ipAddresses)"))

    key = _mapping(spec.get("privateKey"))
    algorithm = key.get("algorithm") if isinstance(key.get("algorithm"), str) else "RSA"
    size = key.get("size") if isinstance(key.get("size"), int) and not isinstance(key.get("size"), bool) else None
    if algorithm == "RSA":
        bits = size or _DEFAULT_SIZE["RSA"]
        if bits < req.minimum_rsa_bits:
            lacks.append((f"will have an RSA {bits}-bit key, below minimumRSABits {req.minimum_rsa_bits}",
                          "raise spec.privateKey.size"))
    elif algorithm == "ECDSA":
        curve = _ECDSA_CURVES.get(size or _DEFAULT_SIZE["ECDSA"])
        if curve is not None and curve not in req.allowed_ec_curves:
            lacks.append((f"will have a {curve} key, not in allowedECCurves", "set spec.privateKey.size to an "
                          f"allowed curve ({', '.join(req.allowed_ec_curves)})"))
    else:
        lacks.append((f"will have an {algorithm} key, which the checks do not accept",
                      "set spec.privateKey.algorithm to RSA or ECDSA"))

    duration = _duration(spec.get("duration"))
    if duration is not None and duration <= req.critical_before:
        lacks.append((f"will live {format_duration(duration)}, within expiry.criticalBefore "
                      f"({format_duration(req.critical_before)}): ExpiringSoon from the day it is issued",
                      "lengthen spec.duration"))

    return [finding("CertificateSpecViolates", f"{when} {what} — {ref}: {fix}") for what, fix in lacks]


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _strings(value: object) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _duration(value: object) -> dt.timedelta | None:
    if value is None:
        return dt.timedelta(hours=DEFAULT_DURATION_HOURS)
    try:
        duration = parse_duration(value) if isinstance(value, str) else None
    except ValueError:
        return None
    return duration if duration is not None and duration > dt.timedelta(0) else None

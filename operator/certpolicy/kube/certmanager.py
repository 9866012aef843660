"""Reads and the two writes of a cert-manager CA Issuer's rotation (``spec.ca.certManager``).

The rotation of a CA behind a cert-manager ``CA`` Issuer touches two kinds of objects the
operator did not create, each only because the policy names the Issuer (the opt-in):

* the Issuer's CA Secret (``spec.ca.secretName`` of the Issuer), whose ``tls.crt``, ``tls.key``
  and ``ca.crt`` are replaced at step 3 (:func:`write_issuer_ca_secret`: a PUT at the
  resourceVersion read, nothing else of the Secret changed);
* the Certificates whose ``issuerRef`` names the Issuer, asked to re-issue the way ``cmctl renew``
  does (:func:`request_reissue`: the ``Issuing`` condition, reason ``ManuallyTriggered``, through
  the status subresource).

Everything else here is a bounded read: the Issuer, and the Certificates pointing at it (an
Issuer's namespace, or cluster-wide for a ClusterIssuer, paged and capped at
:data:`MAX_CERTIFICATES`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiException

from certpolicy.kube.managed import b64
from certpolicy.kube.rawapi import RawClient
from certpolicy.timestamps import rfc3339

GROUP, VERSION = "cert-manager.io", "v1"
#: Certificates read per page, and at most in all, when the rotation lists those of an Issuer.
PAGE, MAX_CERTIFICATES = 500, 5000
#: The data keys of the Issuer's Secret the rotation writes (cert-manager's CA issuer reads
#: ``tls.crt`` and ``tls.key``, and ``ca.crt`` when present); nothing else of the Secret changes.
CA_KEYS = ("tls.crt", "tls.key", "ca.crt")
REISSUE_REASON = "ManuallyTriggered"


@dataclass(frozen=True)
class IssuerRef:
    """``spec.ca.certManager.issuerRef``; ``namespace`` is the Issuer's, or for a ClusterIssuer
    cert-manager's cluster resource namespace (where its Secret lives)."""

    kind: str
    name: str
    namespace: str

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any], cluster_resource_namespace: str) -> IssuerRef | None:
        ref = ((spec.get("ca") or {}).get("certManager") or {}).get("issuerRef")
        if not ref:
            return None
        kind = str(ref.get("kind") or "Issuer")
        ns = str(ref.get("namespace") or "") if kind == "Issuer" else cluster_resource_namespace
        return cls(kind, str(ref.get("name") or ""), ns)

    def __str__(self) -> str:
        return f"Issuer {self.namespace}/{self.name}" if self.kind == "Issuer" else f"ClusterIssuer {self.name}"

    def path(self) -> str:
        if self.kind == "Issuer":
            return f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/issuers/{self.name}"
        return f"/apis/{GROUP}/{VERSION}/clusterissuers/{self.name}"

    def names(self, certificate: Mapping[str, Any]) -> bool:
        """Whether a Certificate's ``spec.issuerRef`` points at this Issuer (kind defaults to
        Issuer, group to cert-manager.io, as cert-manager reads them)."""
        ref = (certificate.get("spec") or {}).get("issuerRef") or {}
        if (ref.get("group") or GROUP) != GROUP or (ref.get("kind") or "Issuer") != self.kind:
            return False
        if ref.get("name") != self.name:
            return False
        ns = (certificate.get("metadata") or {}).get("namespace")
        return self.kind == "ClusterIssuer" or ns == self.namespace


def read_issuer(raw: RawClient, ref: IssuerRef) -> dict[str, Any] | None:
    """The Issuer as stored; None when it does not exist."""
    try:
        return raw.get(ref.path())
    except ApiException as e:
        if e.status == 404:
            return None
        raise


@dataclass(frozen=True)
class IssuedCertificates:
    """The Certificates whose issuerRef names the Issuer, by their Secret's ``namespace/name``;
    ``capped`` when more than :data:`MAX_CERTIFICATES` were listed (the rest is not seen)."""

    by_secret: Mapping[str, Mapping[str, Any]]
    capped: bool = False


def list_issued(raw: RawClient, ref: IssuerRef, *, cap: int = MAX_CERTIFICATES) -> IssuedCertificates:
    """One bounded, paged list: the Issuer's namespace, or every namespace for a ClusterIssuer."""
    path = (f"/apis/{GROUP}/{VERSION}/namespaces/{ref.namespace}/certificates" if ref.kind == "Issuer"
            else f"/apis/{GROUP}/{VERSION}/certificates")
    found: dict[str, Mapping[str, Any]] = {}
    query: dict[str, Any] = {"limit": min(PAGE, cap)}
    seen = 0
    while True:
        listing = raw.get(path, query)
        for item in listing.get("items") or ():
            seen += 1
            if ref.names(item):
                meta = item.get("metadata") or {}
                secret = (item.get("spec") or {}).get("secretName")
                if secret:
                    found[f"{meta.get('namespace')}/{secret}"] = item
        query["continue"] = (listing.get("metadata") or {}).get("continue")
        if not query["continue"]:
            return IssuedCertificates(found)
        if seen >= cap:
            return IssuedCertificates(found, capped=True)


def condition(certificate: Mapping[str, Any], ctype: str) -> Mapping[str, Any] | None:
    for c in (certificate.get("status") or {}).get("conditions") or ():
        if c.get("type") == ctype:
            return c
    return None


def is_ready(certificate: Mapping[str, Any]) -> bool:
    """Ready=True for the Certificate's current generation, and no issuance in progress."""
    ready = condition(certificate, "Ready")
    gen = (certificate.get("metadata") or {}).get("generation")
    issuing = condition(certificate, "Issuing")
    return bool(ready and ready.get("status") == "True" and ready.get("observedGeneration", gen) == gen
                and not (issuing and issuing.get("status") == "True"))


def request_reissue(raw: RawClient, certificate: Mapping[str, Any], now: dt.datetime, message: str) -> bool:
    """What ``cmctl renew`` does: set ``Issuing=True`` (reason ``ManuallyTriggered``) through the
    status subresource, at the resourceVersion read. False when an issuance is already running.

    cert-manager writes a Certificate's status often; a write that loses to one of its own (409)
    is tried once more on the Certificate read again, so one busy Certificate does not hold the
    re-issue requests of the others in the same pass until the next retry."""
    try:
        return _request_reissue(raw, certificate, now, message)
    except ApiException as e:
        if e.status != 409:
            raise
        meta = certificate["metadata"]
        fresh = raw.get(f"/apis/{GROUP}/{VERSION}/namespaces/{meta['namespace']}/certificates/{meta['name']}")
        return _request_reissue(raw, fresh, now, message)


def _request_reissue(raw: RawClient, certificate: Mapping[str, Any], now: dt.datetime, message: str) -> bool:
    issuing = condition(certificate, "Issuing")
    if issuing is not None and issuing.get("status") == "True":
        return False
    meta = certificate["metadata"]
    conditions = [dict(c) for c in (certificate.get("status") or {}).get("conditions") or ()
                  if c.get("type") != "Issuing"]
    conditions.append({"type": "Issuing", "status": "True", "reason": REISSUE_REASON, "message": message[:1000],
                       "lastTransitionTime": rfc3339(now),
                       "observedGeneration": meta.get("generation")})
    raw.patch(f"/apis/{GROUP}/{VERSION}/namespaces/{meta['namespace']}/certificates/{meta['name']}/status",
              {"metadata": {"resourceVersion": meta.get("resourceVersion")}, "status": {"conditions": conditions}})
    return True


def write_issuer_ca_secret(raw: RawClient, current: Mapping[str, Any], data: Mapping[str, bytes]) -> dict[str, Any]:
    """Replace :data:`CA_KEYS` of the Issuer's Secret as read (``current``): a PUT at its
    resourceVersion (409 when it changed since), every other key, label and annotation kept."""
    if set(data) - set(CA_KEYS):
        raise ValueError(f"only {', '.join(CA_KEYS)} are written into an Issuer's Secret")
    meta = current["metadata"]
    body = {**current, "data": {**(current.get("data") or {}), **{k: b64(v) for k, v in data.items()}}}
    return raw.put(f"/api/v1/namespaces/{meta['namespace']}/secrets/{meta['name']}", body)

"""The webhook's serving certificate and the CA that signs it, in two Secrets of the operator's namespace.

The leader creates them (``ensure``) and renews the serving certificate in the last third of its
lifetime; every replica serves what the serving Secret holds (``load``), so the standby answers
with the same certificate. The API server trusts the CA through the configuration's ``caBundle``
(:mod:`certpolicy.webhook.registration`). Both Secrets carry ``certpolicy.io/managed-by`` (the
value names no policy), so the ValidatingAdmissionPolicy on the operator's own writes admits
them, and the operator never overwrites a Secret of those names that it did not create.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import logging
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from certpolicy.kube.managed import b64, read, write_operator_object
from certpolicy.kube.ownership import MANAGED_BY, ROLE_LABEL
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.targets import TARGET_KINDS
from certpolicy.pki.issue import KeyPair, create_ca, issue_leaf, load_key_pair

log = logging.getLogger(__name__)
CA_SECRET = "certpolicy-webhook-ca"
SERVING_SECRET = "certpolicy-webhook-tls"
MANAGER = "certpolicy-operator-webhook"  # the managed-by value: no policy's
ROLE = "webhook"
CA_VALIDITY = dt.timedelta(days=5 * 365)
SERVING_VALIDITY = dt.timedelta(days=90)


class NotOurs(RuntimeError):
    """A Secret of the webhook's names exists and the operator did not create it."""


@dataclass(frozen=True)
class Serving:
    """What the webhook needs: its key pair and the CA certificate(s) the API server must trust."""

    cert_pem: bytes
    key_pem: bytes
    ca_pem: bytes
    resource_version: str


def _ours(obj: dict) -> bool:
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return labels.get(MANAGED_BY) == MANAGER and labels.get(ROLE_LABEL) == ROLE


def _pair(obj: dict) -> KeyPair | None:
    data = obj.get("data") or {}
    try:
        return load_key_pair(base64.b64decode(data.get("tls.crt", "")), base64.b64decode(data.get("tls.key", "")))
    except ValueError:
        return None


def _sans_cover(cert: x509.Certificate, hosts: tuple[str, ...]) -> bool:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    names = set(san.get_values_for_type(x509.DNSName)) | {str(i) for i in san.get_values_for_type(x509.IPAddress)}
    return set(hosts) <= names


def _due(cert: x509.Certificate, now: dt.datetime) -> bool:
    """In the last third of its lifetime (or past it): renew."""
    life = cert.not_valid_after_utc - cert.not_valid_before_utc
    return now >= cert.not_valid_after_utc - life / 3


def _write(raw: RawClient, namespace: str, name: str, pair: KeyPair, existing: dict | None, extra: dict,
           annotations: dict[str, str] | None = None) -> dict:
    body: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
        "metadata": {"name": name, "namespace": namespace, "labels": {MANAGED_BY: MANAGER, ROLE_LABEL: ROLE},
                     "annotations": annotations or {}},
        "data": {"tls.crt": b64(pair.cert_pem), "tls.key": b64(pair.key_pem), **extra}}
    return write_operator_object(raw, TARGET_KINDS["Secret"].path(namespace), name, body, existing)


#: On the CA Secret: a value different from ROTATED starts a rotation of the webhook CA now.
ROTATE = "certpolicy.io/rotate"
ROTATED = "certpolicy.io/rotated"
NEXT_CRT, NEXT_KEY = "next.crt", "next.key"


@dataclass(frozen=True)
class CAs:
    """The webhook's CAs as its Secret holds them: the current one and, during a rotation, the next."""

    current: KeyPair
    next: KeyPair | None

    @property
    def bundle_pem(self) -> bytes:
        """What the configuration's caBundle must hold: both CAs while a rotation runs."""
        return self.current.cert_pem + (self.next.cert_pem if self.next else b"")


def _next(obj: dict) -> KeyPair | None:
    data = obj.get("data") or {}
    if NEXT_CRT not in data:
        return None
    return _pair({"data": {"tls.crt": data[NEXT_CRT], "tls.key": data.get(NEXT_KEY, "")}})


def ensure_ca(raw: RawClient, namespace: str, now: dt.datetime, *, may_promote: bool) -> CAs:
    """The webhook CA (created when absent). A rotation starts when the CA is in the last third of
    its life or the Secret's ``certpolicy.io/rotate`` annotation changed: the next CA is added next
    to the current one (the caBundle then holds both). ``may_promote`` (every replica has served a
    certificate from the next CA for long enough) makes the next CA the current one, alone."""
    obj = read(raw, "Secret", namespace, CA_SECRET)
    if obj is not None and not _ours(obj):
        raise NotOurs(f"Secret {namespace}/{CA_SECRET} exists and was not created by the operator's webhook")
    current = _pair(obj) if obj is not None else None
    if obj is None or current is None:
        current = create_ca("certpolicy-operator webhook CA", validity=CA_VALIDITY, now=now)
        _write(raw, namespace, CA_SECRET, current, obj, {})
        log.info("webhook CA %s created in Secret %s/%s", current.fingerprint, namespace, CA_SECRET)
        return CAs(current, None)
    annotations = dict((obj.get("metadata") or {}).get("annotations") or {})
    nxt = _next(obj)
    requested = bool(annotations.get(ROTATE)) and annotations.get(ROTATE) != annotations.get(ROTATED)
    if nxt is None and (_due(current.cert, now) or requested):
        nxt = create_ca("certpolicy-operator webhook CA", validity=CA_VALIDITY, now=now)
        if requested:
            annotations[ROTATED] = annotations[ROTATE]
        _write(raw, namespace, CA_SECRET, current, obj, {NEXT_CRT: b64(nxt.cert_pem), NEXT_KEY: b64(nxt.key_pem)},
               annotations)
        log.info("webhook CA rotation: next CA %s added next to %s", nxt.fingerprint, current.fingerprint)
    elif nxt is not None and may_promote:
        _write(raw, namespace, CA_SECRET, nxt, obj, {}, annotations)
        log.info("webhook CA rotation: CA %s is the only one now (%s retired)", nxt.fingerprint, current.fingerprint)
        return CAs(nxt, None)
    return CAs(current, nxt)


def ensure_serving(raw: RawClient, namespace: str, hosts: tuple[str, ...], issuer: KeyPair, now: dt.datetime,
                   bundle_pem: bytes) -> bool:
    """A current serving certificate for ``hosts`` from ``issuer``; returns whether one was issued."""
    obj = read(raw, "Secret", namespace, SERVING_SECRET)
    if obj is not None and not _ours(obj):
        raise NotOurs(f"Secret {namespace}/{SERVING_SECRET} exists and was not created by the operator's webhook")
    pair = _pair(obj) if obj is not None else None
    if (pair is not None and pair.cert.issuer == issuer.cert.subject and _sans_cover(pair.cert, hosts)
            and not _due(pair.cert, now) and _signed_by(pair.cert, issuer.cert)):
        return False
    dns = [h for h in hosts if not _is_ip(h)]
    ips = [h for h in hosts if _is_ip(h)]
    leaf = issue_leaf(issuer, common_name="certpolicy-operator webhook", dns_names=dns, ip_addresses=ips,
                      usages=("serverAuth",), validity=SERVING_VALIDITY, now=now)
    _write(raw, namespace, SERVING_SECRET, leaf, obj, {"ca.crt": b64(bundle_pem)})
    log.info("webhook serving certificate issued for %s by CA %s", ", ".join(hosts), issuer.fingerprint)
    return True


def serving_issuer(raw: RawClient, namespace: str) -> str | None:
    """The fingerprint of the CA that signed the serving certificate the Secret holds now."""
    obj = read(raw, "Secret", namespace, SERVING_SECRET)
    pair = _pair(obj) if obj is not None and _ours(obj) else None
    if pair is None:
        return None
    ca = read(raw, "Secret", namespace, CA_SECRET)
    for candidate in ((_pair(ca), _next(ca)) if ca is not None else ()):
        if candidate is not None and _signed_by(pair.cert, candidate.cert):
            return candidate.fingerprint
    return None


def _signed_by(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
        return True
    except (ValueError, TypeError, Exception):  # noqa: BLE001 - InvalidSignature and friends: not signed by it
        return False


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


def load(raw: RawClient, namespace: str) -> Serving | None:
    """The serving key pair and its CA, as the serving Secret holds them (None until it exists)."""
    obj = read(raw, "Secret", namespace, SERVING_SECRET)
    if obj is None or not _ours(obj):
        return None
    data = obj.get("data") or {}
    try:
        return Serving(base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]),
                       base64.b64decode(data.get("ca.crt", "")), obj["metadata"]["resourceVersion"])
    except (KeyError, ValueError):
        return None

"""The policy's private CA: created when absent, adopted as-is when present, tracked in a history.

The CA key pair lives in a ``kubernetes.io/tls`` Secret in the operator's namespace. A Secret
made elsewhere (OpenSSL, Vault, step-ca) is adopted read-only: the operator never writes to a
Secret it did not create. The CAs a policy has ever put in bundles are tracked explicitly in
``status.ca.history`` — bundles are merged by that record, never by guessing from subjects.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from certpolicy.handlers.settings import operator_namespace
from certpolicy.kube.managed import NotManaged, read, write_managed_secret
from certpolicy.kube.rawapi import RawClient
from certpolicy.pki.issue import KeyPair, create_ca, load_key_pair
from certpolicy.pki.inspect import summarize
from certpolicy.pki.load import load_certificates
from certpolicy.policy.report import Problem
from certpolicy.policy.spec import parse_duration
from certpolicy.kube.conditions import rfc3339

# History states: "active" issues leaves; "next" is trusted ahead of a rotation; "previous" is
# still trusted (leaves may chain to it); "retired" was removed from every bundle.
TRUSTED_STATES = ("active", "next", "previous")


@dataclass(frozen=True)
class CAInfo:
    secret_name: str
    key_pair: KeyPair

    @property
    def fingerprint(self) -> str:
        return self.key_pair.fingerprint


def _decode(data: Mapping[str, str], key: str) -> bytes | None:
    value = data.get(key)
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None


def load_ca_secret(raw: RawClient, name: str, namespace: str | None = None) -> tuple[CAInfo | None, Problem | None]:
    """Read a CA key pair from a Secret; (None, None) when the Secret does not exist."""
    namespace = namespace or operator_namespace()
    obj = read(raw, "Secret", namespace, name)
    if obj is None:
        return None, None
    data = obj.get("data") or {}
    cert_pem, key_pem = _decode(data, "tls.crt"), _decode(data, "tls.key")
    where = f"CA Secret {namespace}/{name}"
    if not cert_pem or not key_pem:
        return None, Problem("CAUnusable", f"{where} needs tls.crt and tls.key (PEM)")
    try:
        kp = load_key_pair(cert_pem, key_pem)
    except Exception as e:  # noqa: BLE001 - reported; the message names no key material
        return None, Problem("CAUnusable", f"{where} cannot be used: {type(e).__name__}: "
                                           f"{str(e).splitlines()[0][:200] if str(e) else ''}")
    if not summarize(kp.cert).is_ca:
        return None, Problem("CAUnusable", f"{where} holds a certificate that is not a CA (basicConstraints CA:FALSE)")
    return CAInfo(name, kp), None


def ensure_ca(raw: RawClient, policy: str, ca_spec: Mapping[str, Any], now: dt.datetime
              ) -> tuple[CAInfo | None, list[Problem]]:
    """The policy's CA, created in its Secret first if the Secret does not exist yet."""
    name = ca_spec["secretName"]
    ca, problem = load_ca_secret(raw, name)
    if ca is not None or problem is not None:
        return ca, [problem] if problem else []
    kp = create_ca(ca_spec.get("commonName") or f"{policy} CA",
                   validity=parse_duration(ca_spec.get("validity", "87600h")),
                   key_algorithm=ca_spec.get("keyAlgorithm", "ECDSAP256"), organization=["certpolicy"], now=now)
    try:
        write_managed_secret(raw, operator_namespace(), name, policy,
                             {"tls.crt": kp.cert_pem, "tls.key": kp.key_pem, "ca.crt": kp.cert_pem},
                             labels={"certpolicy.io/role": "ca"})
    except NotManaged as e:  # created by someone else a moment ago: adopt it on the next pass
        return None, [Problem("CAUnusable", str(e))]
    # Read back: if another writer won a race, use what is stored, never the copy in memory.
    ca, problem = load_ca_secret(raw, name)
    return ca, [problem] if problem else []


def record_history(history: Sequence[Mapping[str, Any]] | None, ca: CAInfo, now: dt.datetime,
                   state: str = "active") -> list[dict[str, Any]]:
    """Add ``ca`` to the history in ``state``; a different CA that was active becomes previous."""
    out = [dict(h) for h in history or ()]
    fp = ca.fingerprint
    s = summarize(ca.key_pair.cert)
    found = False
    for h in out:
        if h["fingerprint"] == fp:
            found = True
            if h.get("state") != state and h.get("state") != "retired":
                h["state"], h["since"] = state, rfc3339(now)
        elif state == "active" and h.get("state") == "active":
            h["state"], h["since"] = "previous", rfc3339(now)
    if not found:
        out.append({"fingerprint": fp, "subject": s.subject, "notAfter": rfc3339(s.not_after),
                    "secretName": ca.secret_name, "state": state, "since": rfc3339(now),
                    # public certificate, so bundles can keep trusting a CA whose Secret is gone
                    "certificate": ca.key_pair.cert_pem.decode()})
    return out


def trusted_certificates(history: Sequence[Mapping[str, Any]]) -> list[x509.Certificate]:
    """The CA certificates every bundle target must hold, from the recorded history."""
    certs = []
    for h in history:
        if h.get("state") in TRUSTED_STATES and h.get("certificate"):
            certs.extend(load_certificates(h["certificate"].encode()).certificates)
    return certs


def retire(history: Sequence[Mapping[str, Any]], fingerprints: set[str], now: dt.datetime) -> list[dict[str, Any]]:
    """Mark these CAs retired: removed from every bundle, never trusted again by this policy."""
    out = []
    for h in history:
        h = dict(h)
        if h["fingerprint"] in fingerprints and h.get("state") != "retired":
            h["state"], h["since"] = "retired", rfc3339(now)
        out.append(h)
    return out


def retired_fingerprints(history: Sequence[Mapping[str, Any]]) -> set[str]:
    return {h["fingerprint"] for h in history if h.get("state") == "retired"}

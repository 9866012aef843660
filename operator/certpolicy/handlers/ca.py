"""The policy's private CA: created when absent, adopted when handed over, tracked in a history.

The CA key pair lives in a ``kubernetes.io/tls`` Secret in the operator's namespace, and belongs
to exactly one policy: the one it was created for (``certpolicy.io/managed-by`` + UID), or the
one a Secret made elsewhere (OpenSSL, Vault, step-ca) was handed to by labelling it
``certpolicy.io/managed-by=<policy>``. A policy that names another policy's CA Secret, or an
unlabelled one, gets ``Degraded/CANotOwned`` and issues nothing from it. A Secret created for a
deleted policy of the same name (a ``Retain`` delete, then a re-create) is taken over with
``spec.ca.adopt: true`` (:mod:`certpolicy.handlers.adopt`), which the ``CANotOwned`` message names.

A policy that had a CA and finds its Secret gone gets ``Degraded/CAMissing`` and a Warning. A
fresh CA made and swapped in on the spot would re-issue every leaf before any bundle trusts it (an
outage by design), so nothing is generated here: the lost CA stays trusted in the bundles from
its certificate in the history, and the rotation stage replaces it through the five steps, with
their delays and probes (trigger ``CAMissing``).

The CAs a policy has ever put in bundles are tracked explicitly in ``status.ca.history`` (read
through :mod:`certpolicy.policy.cahistory`) — bundles are merged by that record, never by
guessing from subjects.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from certpolicy.environment import operator_namespace
from certpolicy.handlers.adopt import adopt_stage, adopt_wanted
from certpolicy.handlers.context import PassContext
from certpolicy.handlers.problems import Problem
from certpolicy.kube.managed import NotManaged, read, write_managed_secret
from certpolicy.kube.ownership import (
    MANAGED_BY,
    ROLE_CA,
    ROLE_LABEL,
    Owner,
    adopt_hint,
    created_for,
    owner_description,
    predecessor_uid,
)
from certpolicy.kube.policyobjects import live_policies
from certpolicy.kube.rawapi import RawClient
from certpolicy.pki.fingerprint import short
from certpolicy.pki.inspect import summarize
from certpolicy.pki.issue import KeyPair, ca_common_name, create_ca, load_key_pair
from certpolicy.policy.cahistory import active_in_history, retired_fingerprints, trusted_certificates
from certpolicy.policy.durations import parse_duration
from certpolicy.timestamps import rfc3339

#: Problem reason (Degraded) for a CA Secret that is gone while the history records its CA active.
CA_MISSING = "CAMissing"

@dataclass(frozen=True)
class CASecret:
    """A CA key pair as read from its Secret in the operator's namespace."""

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


def load_ca_secret(raw: RawClient, name: str, owner: Owner, namespace: str | None = None
                   ) -> tuple[CASecret | None, Problem | None]:
    """Read ``owner``'s CA key pair from a Secret; (None, None) when the Secret does not exist,
    (None, CANotOwned) when it belongs to another policy or to nobody."""
    namespace = namespace or operator_namespace()
    obj = read(raw, "Secret", namespace, name)
    if obj is None:
        return None, None
    where = f"CA Secret {namespace}/{name}"
    role = ((obj.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL, ROLE_CA)
    if (earlier := predecessor_uid(obj, owner)) is not None and role == ROLE_CA:
        return None, Problem("CANotOwned", f"{where} was created for an earlier CertificatePolicy {owner.name} (uid "
                                           f"{earlier}), not for this one (uid {owner.uid}). If that policy was "
                                           f"deleted, {adopt_hint(owner)}: it takes over this Secret and the "
                                           "bundle targets and leaves that policy left, in one go")
    if not created_for(obj, owner) or role != ROLE_CA:
        return None, Problem("CANotOwned", f"{where} belongs to {owner_description(obj)}, not to CertificatePolicy "
                                           f"{owner.name}; a CA Secret serves one policy. To hand a CA made "
                                           f"elsewhere to this policy, label it {MANAGED_BY}={owner.name}")
    data = obj.get("data") or {}
    cert_pem, key_pem = _decode(data, "tls.crt"), _decode(data, "tls.key")
    if not cert_pem or not key_pem:
        return None, Problem("CAUnusable", f"{where} needs tls.crt and tls.key (PEM)")
    try:
        kp = load_key_pair(cert_pem, key_pem)
    except Exception as e:  # noqa: BLE001 - reported; the message names no key material
        return None, Problem("CAUnusable", f"{where} cannot be used: {type(e).__name__}: "
                                           f"{str(e).splitlines()[0][:200] if str(e) else ''}")
    if not summarize(kp.cert).is_ca:
        return None, Problem("CAUnusable", f"{where} holds a certificate that is not a CA (basicConstraints CA:FALSE)")
    return CASecret(name, kp), None


def generate_ca(ctx: PassContext) -> KeyPair:
    """A new CA key pair for the policy (its first CA, or a rotation's new one), its subject naming
    the generation: ``CN=<commonName or "<policy> CA"> <date> <short id>,O=certpolicy``."""
    ca_spec = ctx.spec["ca"]
    return create_ca(ca_common_name(ca_spec.get("commonName") or f"{ctx.name} CA", ctx.now),
                     validity=parse_duration(ca_spec.get("validity", "87600h")),
                     key_algorithm=ca_spec.get("keyAlgorithm", "ECDSAP256"), organization=["certpolicy"], now=ctx.now)


def ensure_ca(ctx: PassContext) -> CASecret | None:
    """The CA stage: the policy's CA, created in its Secret first if the policy never had one.
    None (with a problem) when the Secret holds no usable CA of this policy's.

    When the history records an active CA whose Secret is gone, nothing is generated:
    ``CAMissing`` and a Warning, and the rotation stage replaces the CA through the five steps
    (see the module docstring for why an instant replacement is an outage).
    """
    ca_spec = ctx.spec["ca"]
    name = ca_spec["secretName"]
    adopt_stage(ctx)
    ca, problem = load_ca_secret(ctx.raw, name, ctx.policy, ctx.namespace)
    if ca is not None or problem is not None:
        if problem is not None and adopt_wanted(ctx):
            problem = _not_adoptable(ctx, name, problem)
        ctx.out.problems += [problem] if problem else []
        return ca
    had = active_in_history((ctx.status.get("ca") or {}).get("history"))
    if had is not None:
        missing = Problem(CA_MISSING, f"CA Secret {ctx.namespace}/{name} does not exist, but this policy's "
                                      f"active CA {short(had['fingerprint'])} is in its bundles and its leaves "
                                      "chain to it. Nothing is issued until a replacement CA has gone through "
                                      "the five rotation steps (see the Rotating condition); leaves re-issued at "
                                      "once from a CA no bundle trusts yet would be an outage. Restoring the "
                                      "Secret from a backup before step 3 keeps the old CA issuing meanwhile")
        ctx.out.problems.append(missing)
        ctx.policy_event("Warning", missing.reason, missing.message, [missing.reason, missing.message])
        return None
    kp = generate_ca(ctx)
    try:
        write_managed_secret(ctx.raw, ctx.namespace, name, ctx.policy,
                             {"tls.crt": kp.cert_pem, "tls.key": kp.key_pem, "ca.crt": kp.cert_pem}, role=ROLE_CA)
    except NotManaged as e:  # created by someone else a moment ago
        ctx.out.problems.append(Problem("CANotOwned", str(e)))
        return None
    # Read back: if another writer won a race, use what is stored, never the copy in memory.
    ca, problem = load_ca_secret(ctx.raw, name, ctx.policy, ctx.namespace)
    ctx.out.problems += [problem] if problem else []
    return ca


def _not_adoptable(ctx: PassContext, name: str, problem: Problem) -> Problem:
    """With spec.ca.adopt set, say why the CA Secret still is not this policy's: its recorded owner
    is a live policy (never taken over), or it is not labelled for this policy at all."""
    if problem.reason != "CANotOwned":
        return problem
    obj = read(ctx.raw, "Secret", ctx.namespace, name)
    uid = predecessor_uid(obj, ctx.policy)
    if uid is None:
        return problem
    owner = (live_policies(ctx.raw) or {}).get(uid)
    if owner is None:
        return problem  # adoption failed this pass: AdoptionFailed says why
    return Problem("CANotOwned", f"CA Secret {ctx.namespace}/{name} is labelled for {ctx.name} but records the UID "
                                 f"of CertificatePolicy {owner} ({uid}), which exists: spec.ca.adopt never takes a "
                                 "live policy's objects. Point spec.ca.secretName at another Secret")


def ca_status_stage(ctx: PassContext, *, ca: CASecret | None, next_ca: CASecret | None,
                    retired: frozenset[str]) -> tuple[list[x509.Certificate], set[str]]:
    """Record the CAs in ``status.ca`` (active, next, retired); returns the certificates every bundle
    must trust and every fingerprint that must leave the bundles."""
    ca_status = dict(ctx.status.get("ca") or {})
    history = list(ca_status.get("history") or [])
    if ca is not None:
        history = record_history(history, ca, ctx.now)
        s = summarize(ca.key_pair.cert)
        ca_status.update({"secretName": ca.secret_name, "fingerprint": ca.fingerprint,
                          "notAfter": rfc3339(s.not_after), "subject": s.subject})
    if next_ca is not None and (ca is None or next_ca.fingerprint != ca.fingerprint):
        history = record_history(history, next_ca, ctx.now, state="next")
    history = retire(history, set(retired), ctx.now)
    ca_status["history"] = history
    ctx.out.status["ca"] = ca_status
    return trusted_certificates(history), set(retired) | retired_fingerprints(history)


def record_history(history: Sequence[Mapping[str, Any]] | None, ca: CASecret, now: dt.datetime,
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


def ca_missing(ctx: PassContext) -> bool:
    """Whether this pass found the CA Secret gone while the history records its CA as active."""
    return any(p.reason == CA_MISSING for p in ctx.out.problems)


#: Retired CAs kept in ``status.ca.history`` (the most recent ones; trusted CAs are always kept),
#: so the status stays small however many rotations a policy goes through.
MAX_RETIRED_HISTORY = 10


def retire(history: Sequence[Mapping[str, Any]], fingerprints: set[str], now: dt.datetime) -> list[dict[str, Any]]:
    """Mark these CAs retired: removed from every bundle, never trusted again by this policy. Only
    the MAX_RETIRED_HISTORY most recently retired entries are kept."""
    out = []
    for h in history:
        h = dict(h)
        if h["fingerprint"] in fingerprints and h.get("state") != "retired":
            h["state"], h["since"] = "retired", rfc3339(now)
        out.append(h)
    retired = sorted((h for h in out if h.get("state") == "retired"), key=lambda h: str(h.get("since")), reverse=True)
    dropped = {id(h) for h in retired[MAX_RETIRED_HISTORY:]}
    return [h for h in out if id(h) not in dropped]

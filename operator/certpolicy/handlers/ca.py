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

Every CA Secret is read and written through the pass's store, ``ctx.cas``
(:mod:`certpolicy.handlers.castore`): read once per pass, written only there.

The CAs a policy has ever put in bundles are tracked explicitly in ``status.ca.history`` (read
through :mod:`certpolicy.policy.cahistory`) — bundles are merged by that record, never by
guessing from subjects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509

from certpolicy.handlers.adopt import adopt_stage, adopt_wanted
from certpolicy.handlers.castore import CASecret
from certpolicy.handlers.context import PassContext
from certpolicy.handlers.problems import Problem
from certpolicy.kube.ownership import predecessor_uid
from certpolicy.kube.policyobjects import live_policies
from certpolicy.pki.fingerprint import short
from certpolicy.pki.inspect import summarize
from certpolicy.pki.issue import KeyPair, ca_common_name, create_ca
from certpolicy.policy.cahistory import active_in_history, retired_fingerprints, trusted_certificates
from certpolicy.policy.durations import parse_duration
from certpolicy.timestamps import rfc3339

__all__ = ["CA_MISSING", "CASecret", "ca_missing", "ca_status_stage", "ensure_ca", "generate_ca", "record_history",
           "retire"]

#: Problem reason (Degraded) for a CA Secret that is gone while the history records its CA active.
CA_MISSING = "CAMissing"


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
    name = ctx.spec["ca"]["secretName"]
    adopt_stage(ctx)
    ca, problem = ctx.cas.load(name)
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
    # Create-only: if another writer won a race, what it stored is read and used (or refused as
    # not this policy's), never the copy in memory.
    ctx.cas.create(name, generate_ca(ctx))
    ca, problem = ctx.cas.load(name)
    ctx.out.problems += [problem] if problem else []
    return ca


def _not_adoptable(ctx: PassContext, name: str, problem: Problem) -> Problem:
    """With spec.ca.adopt set, say why the CA Secret still is not this policy's: its recorded owner
    is a live policy (never taken over), or it is not labelled for this policy at all."""
    if problem.reason != "CANotOwned":
        return problem
    uid = predecessor_uid(ctx.cas.object(name), ctx.policy)
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

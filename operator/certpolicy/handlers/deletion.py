"""What deleting a policy does, and when a CA's private key is deleted.

``spec.deletionPolicy``:

* ``Retain`` (default) — nothing is removed. Workloads keep running: their leaves still chain to
  the policy's CA and every bundle still trusts it. The CA Secrets stay in the operator's
  namespace (a policy re-created under the same name takes them, its bundle targets and leaves
  over with ``spec.ca.adopt: true``, see :mod:`certpolicy.handlers.adopt`). kopf's finalizer (every policy has it while the
  operator runs, because its loop is a kopf daemon) is removed as soon as that loop stops.
* ``Delete`` — the same finalizer (on the CertificatePolicy itself, never on a user object) also
  waits for the clean-up. On deletion every CA the policy ever put in bundles is removed from every target it
  can still write (foreign certificates are kept), then every CA Secret created for the policy
  (active, next, retired) is deleted with its key. Leaves it issued are left in place: they are
  the applications' Secrets now, and stop being trusted with the CA.

Independently of deletion, a CA Secret of the policy whose certificate has expired and that is
neither the active CA nor the one a rotation is moving to is deleted: a retired key has no use
once nothing can chain to it, and keeping it only keeps a key around.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

from kubernetes.client import ApiException

from certpolicy.environment import operator_namespace
from certpolicy.handlers.bundles import distribute
from certpolicy.handlers.ca import load_ca_secret
from certpolicy.handlers.context import PassContext
from certpolicy.handlers.problems import Problem
from certpolicy.inventory.inventory import Inventory
from certpolicy.kube.ownership import MANAGED_BY, ROLE_CA, ROLE_LABEL, Owner, created_for
from certpolicy.kube.rawapi import RawClient
from certpolicy.pki.load import load_certificates

log = logging.getLogger("certpolicy.deletion")

RETAIN, DELETE = "Retain", "Delete"
DELETION_FAILED = "DeletionFailed"  # Degraded reason (and Warning event) of a clean-up that failed
CA_SWEEP_INTERVAL = dt.timedelta(minutes=10)  # how often a policy looks for expired CA keys to delete


def deletion_policy(spec: Mapping[str, Any] | None) -> str:
    return (spec or {}).get("deletionPolicy") or RETAIN


def own_ca_secrets(raw: RawClient, owner: Owner) -> list[dict[str, Any]]:
    """Every CA Secret created for this policy in the operator's namespace (by label, then UID)."""
    ns = operator_namespace()
    listing = raw.get(f"/api/v1/namespaces/{ns}/secrets",
                      {"labelSelector": f"{MANAGED_BY}={owner.name},{ROLE_LABEL}={ROLE_CA}"})
    return [s for s in listing.get("items") or () if created_for(s, owner)]


def _delete_secret(raw: RawClient, obj: Mapping[str, Any]) -> bool:
    meta = obj["metadata"]
    try:
        raw.delete(f"/api/v1/namespaces/{meta['namespace']}/secrets/{meta['name']}")
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise


def sweep_expired_ca_secrets(raw: RawClient, owner: Owner, keep: set[str], now: dt.datetime) -> list[str]:
    """Delete this policy's CA Secrets whose certificate expired and that hold none of ``keep``
    (the active CA and a rotation's new one). Returns the names deleted."""
    deleted = []
    for obj in own_ca_secrets(raw, owner):
        pair, _ = load_ca_secret(raw, obj["metadata"]["name"], owner)
        if pair is None:
            continue
        if pair.fingerprint in keep or pair.key_pair.cert.not_valid_after_utc >= now:
            continue
        if _delete_secret(raw, obj):
            deleted.append(obj["metadata"]["name"])
    return deleted


def delete_everything(raw: RawClient, inventory: Inventory, policy: Mapping[str, Any]) -> list[str]:
    """``deletionPolicy: Delete``: the policy's CAs out of every bundle, then its CA Secrets.
    Returns what could not be done (the finalizer stays and kopf retries until it is empty)."""
    owner = Owner.of(policy)
    spec = policy.get("spec") or {}
    status = policy.get("status") or {}
    secrets = own_ca_secrets(raw, owner)
    fingerprints = {h["fingerprint"] for h in (status.get("ca") or {}).get("history") or () if h.get("fingerprint")}
    for obj in secrets:
        data = obj.get("data") or {}
        if data.get("tls.crt"):
            fingerprints |= set(load_certificates(base64.b64decode(data["tls.crt"])).fingerprints)
    failures = []
    if spec.get("trustBundles") and fingerprints:
        report = distribute(raw, inventory, owner, spec["trustBundles"], trusted=[], retired=fingerprints,
                            primary=None)
        for t in report.targets:
            if t.state not in ("Verified", "NotManaged", "Refused", "NotServed"):
                failures.append(f"{t.kind} {t.namespace}/{t.name}: {t.state} {t.message}".strip())
    if failures:
        return failures  # keep the keys until no bundle holds their CA any more
    for obj in secrets:
        _delete_secret(raw, obj)
    log.info("policy %s deleted with deletionPolicy Delete: its CAs removed from the bundles, %d CA Secrets deleted",
             owner.name, len(secrets))
    return []


def expired_ca_keys_stage(ctx: PassContext, *, keep: set[str]) -> None:
    """Delete the policy's CA Secrets whose CA expired (retired keys), at most every CA_SWEEP_INTERVAL."""
    memory = ctx.memory
    if memory.last_ca_sweep is not None and time.monotonic() - memory.last_ca_sweep < CA_SWEEP_INTERVAL.total_seconds():
        return
    memory.last_ca_sweep = time.monotonic()
    try:
        for secret in sweep_expired_ca_secrets(ctx.raw, ctx.policy, keep, ctx.now):
            ctx.policy_event("Normal", "ExpiredCAKeyDeleted",
                             f"CA Secret {secret} held a CA that has expired; its key was deleted",
                             ["ExpiredCAKeyDeleted", secret])
    except ApiException as e:
        ctx.out.problems.append(Problem("CASweepFailed", f"deleting expired CA Secrets failed: HTTP {e.status}"))

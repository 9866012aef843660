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

Both go through the policy's CA store (:mod:`certpolicy.handlers.castore`), the one writer of CA
Secrets: deletes carry the uid and resourceVersion listed, so a Secret changed since is not deleted.
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
from certpolicy.handlers.castore import ca_store
from certpolicy.handlers.context import PassContext
from certpolicy.handlers.problems import Problem
from certpolicy.inventory.inventory import Inventory
from certpolicy.kube.ownership import Owner
from certpolicy.kube.rawapi import RawClient
from certpolicy.pki.load import load_certificates

log = logging.getLogger("certpolicy.deletion")

RETAIN, DELETE = "Retain", "Delete"
#: kopf's finalizer on every CertificatePolicy (handlers/settings.py): it holds a deletion until the
#: policy's loop has stopped and, under ``deletionPolicy: Delete``, its clean-up is done.
FINALIZER = "certpolicy.io/finalizer"
DELETION_FAILED = "DeletionFailed"  # Degraded reason (and Warning event) of a clean-up that failed
CA_SWEEP_INTERVAL = dt.timedelta(minutes=10)  # how often a policy looks for expired CA keys to delete


def deletion_policy(spec: Mapping[str, Any] | None) -> str:
    return (spec or {}).get("deletionPolicy") or RETAIN


def delete_everything(raw: RawClient, inventory: Inventory, policy: Mapping[str, Any]) -> list[str]:
    """``deletionPolicy: Delete``: the policy's CAs out of every bundle, then its CA Secrets.
    Returns what could not be done (the finalizer stays and kopf retries until it is empty)."""
    owner = Owner.of(policy)
    spec = policy.get("spec") or {}
    status = policy.get("status") or {}
    store = ca_store(raw, owner, operator_namespace())
    owned = store.owned()
    fingerprints = {h["fingerprint"] for h in (status.get("ca") or {}).get("history") or () if h.get("fingerprint")}
    for obj in owned.secrets:
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
    deleted = store.delete_all(owned)
    log.info("policy %s deleted with deletionPolicy Delete: its CAs removed from the bundles, %d CA Secrets deleted",
             owner.name, deleted)
    if owned.capped:  # the finalizer stays: the next try lists (and deletes) the rest
        return [f"more CA Secrets labelled for {owner.name} than one try lists; the rest on the next"]
    return []


def expired_ca_keys_stage(ctx: PassContext, *, keep: set[str]) -> None:
    """Delete the policy's CA Secrets whose CA expired (retired keys), at most every CA_SWEEP_INTERVAL."""
    memory = ctx.memory
    if memory.last_ca_sweep is not None and time.monotonic() - memory.last_ca_sweep < CA_SWEEP_INTERVAL.total_seconds():
        return
    memory.last_ca_sweep = time.monotonic()
    try:
        for secret in ctx.cas.sweep_expired(keep, ctx.now):
            ctx.policy_event("Normal", "ExpiredCAKeyDeleted",
                             f"CA Secret {secret} held a CA that has expired; its key was deleted",
                             ["ExpiredCAKeyDeleted", secret])
    except ApiException as e:
        ctx.out.problems.append(Problem("CASweepFailed", f"deleting expired CA Secrets failed: HTTP {e.status}"))

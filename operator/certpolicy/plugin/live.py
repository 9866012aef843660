"""The operator's own view of a live cluster, for the plugin: its inventory, its selection, its
trust bundles. Read-only: the inventory lists and watches; nothing is written.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from cryptography import x509

from certpolicy.checkcmd import ClusterReader, UsageError, _cluster_bundle

SYNC_TIMEOUT = 60.0


class LiveInventory:
    """``with LiveInventory(api_client) as live: live.select(key, spec)`` — the Secrets a policy
    spec selects, decided by the operator's inventory and selection code."""

    def __init__(self, api_client) -> None:
        from certpolicy.inventory.inventory import Inventory

        self.inventory = Inventory(api_client)

    def __enter__(self) -> LiveInventory:
        self.inventory.start()
        if not self.inventory.wait_synced(SYNC_TIMEOUT):
            self.inventory.stop()
            raise UsageError(f"the cluster's Secrets, Pods and namespaces could not be listed within {SYNC_TIMEOUT:.0f} s")
        return self

    def __exit__(self, *exc: object) -> None:
        self.inventory.stop()

    def select(self, key: str, spec: Mapping[str, Any]):
        from certpolicy.environment import operator_namespace
        from certpolicy.inventory.interest import Reads
        from certpolicy.inventory.selection import select

        deadline = time.monotonic() + SYNC_TIMEOUT
        while not self.inventory.declare(key, Reads.of(spec, operator_namespace())):
            if time.monotonic() > deadline:
                raise UsageError("the Secrets named by the policy could not be read in time")
            time.sleep(0.1)
        return select(self.inventory, spec.get("selector") or {})


def trusted_by_policy(policy: Mapping[str, Any]) -> list[x509.Certificate]:
    """The CAs a live policy trusts (status.ca.history), as the operator uses them."""
    from certpolicy.policy.cahistory import trusted_certificates

    return trusted_certificates(((policy.get("status") or {}).get("ca") or {}).get("history") or [])


def policy_bundle(spec: Mapping[str, Any], live_policy: Mapping[str, Any] | None, kubeconfig: str | None,
                  context: str | None) -> tuple[list[x509.Certificate] | None, str | None]:
    """What chains must lead to, as the operator decides it: ``requirements.trustBundle`` (read
    from the cluster), else the policy's own CAs (from the live policy's status), else nothing.
    Returns (certificates or None, a note when the policy's CAs are not known)."""
    requirements = spec.get("requirements") or {}
    if requirements.get("trustBundle"):
        return _cluster_bundle(ClusterReader(kubeconfig, context), requirements["trustBundle"]), None
    if spec.get("ca"):
        trusted = trusted_by_policy(live_policy or {})
        if not trusted:
            return [], "the policy has no CA in the cluster yet (the operator would create it): chains cannot lead to it"
        return trusted, None
    return None, None

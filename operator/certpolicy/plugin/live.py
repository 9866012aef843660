"""The operator's own view of a live cluster, for the plugin: its selection, its trust bundles.
Read-only: only ``get`` and ``list``; nothing is written, nothing is watched.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cryptography import x509

from certpolicy.checkcmd import ClusterReader, _cluster_bundle


def select_live(raw, spec: Mapping[str, Any], namespace: str | None = None):
    """The Secrets a policy spec selects in the live cluster, decided by the operator's selection
    code on the part of the inventory that spec reads (:func:`certpolicy.plugin.scoped.for_policy`:
    label- and field-selected lists, named Secrets by ``get``; no Secret it cannot select is
    read; with ``namespace``, only there). Returns (selection, the lists cut at the cap)."""
    from certpolicy.inventory.selection import select
    from certpolicy.plugin.scoped import for_policy

    inventory = for_policy(raw, spec, namespace=namespace)
    return select(inventory, spec.get("selector") or {}), inventory.capped


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

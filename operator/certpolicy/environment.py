"""The operator's settings that come from its environment: its own namespace, and whether the
system namespaces may be written.

One home for both, read by the kopf handlers and by what is not the operator: the kubectl plugin
(which must not load kopf) and ``certpolicy run`` before kopf is imported. Standard library only.
"""

from __future__ import annotations

import os

OPERATOR_NAMESPACE_ENV = "CERTPOLICY_NAMESPACE"
DEFAULT_OPERATOR_NAMESPACE = "certpolicy-system"
ALLOW_SYSTEM_NAMESPACES_ENV = "CERTPOLICY_ALLOW_SYSTEM_NAMESPACES"


def operator_namespace() -> str:
    """Where CA Secrets and truststore passwords live (``--namespace``, env CERTPOLICY_NAMESPACE)."""
    return os.environ.get(OPERATOR_NAMESPACE_ENV, DEFAULT_OPERATOR_NAMESPACE)


def allow_system_namespaces() -> bool:
    """``--allow-system-namespaces``: bundles and leaves may go to kube-system, kube-public and
    kube-node-lease (off by default: the API server trusts some of their ConfigMaps)."""
    return os.environ.get(ALLOW_SYSTEM_NAMESPACES_ENV, "").lower() in ("1", "true", "yes")

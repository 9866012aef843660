"""The operator's settings that come from its environment: its own namespace, whether the
system namespaces may be written, and the intervals at which it looks again at what it cannot watch.

One home for all of them, read by the kopf handlers and by what is not the operator: the kubectl
plugin (which must not load kopf) and ``certpolicy run`` before kopf is imported. Standard library only.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

OPERATOR_NAMESPACE_ENV = "CERTPOLICY_NAMESPACE"
DEFAULT_OPERATOR_NAMESPACE = "certpolicy-system"
ALLOW_SYSTEM_NAMESPACES_ENV = "CERTPOLICY_ALLOW_SYSTEM_NAMESPACES"
CERT_MANAGER_NAMESPACE_ENV = "CERTPOLICY_CERT_MANAGER_NAMESPACE"
DEFAULT_CERT_MANAGER_NAMESPACE = "cert-manager"


def operator_namespace() -> str:
    """Where CA Secrets and truststore passwords live (``--namespace``, env CERTPOLICY_NAMESPACE)."""
    return os.environ.get(OPERATOR_NAMESPACE_ENV, DEFAULT_OPERATOR_NAMESPACE)


def allow_system_namespaces() -> bool:
    """``--allow-system-namespaces``: bundles and leaves may go to kube-system, kube-public and
    kube-node-lease (off by default: the API server trusts some of their ConfigMaps)."""
    return os.environ.get(ALLOW_SYSTEM_NAMESPACES_ENV, "").lower() in ("1", "true", "yes")


def cert_manager_namespace() -> str:
    """cert-manager's ``--cluster-resource-namespace``: where a ClusterIssuer's CA Secret lives,
    for ``spec.ca.certManager`` with a ClusterIssuer (env CERTPOLICY_CERT_MANAGER_NAMESPACE)."""
    return os.environ.get(CERT_MANAGER_NAMESPACE_ENV, DEFAULT_CERT_MANAGER_NAMESPACE)


@dataclass(frozen=True)
class Interval:
    """A re-check interval (seconds, from the environment), read where it is used, so that a
    change of the environment applies from the next pass on.

    Production keeps the defaults; the test suite shortens them (``tests/timers.py``) so that a
    test waits seconds, not half-minutes, for what these intervals pace.
    """

    env: str
    default: float
    what: str

    def seconds(self) -> float:
        raw = os.environ.get(self.env)
        if not raw:
            return self.default
        try:
            value = float(raw)
        except ValueError:
            raise ValueError(f"{self.env}={raw!r}: not a number of seconds") from None
        if not 0 < value <= 86400:
            raise ValueError(f"{self.env}={raw!r}: must be more than 0 and at most 86400 seconds")
        return value

    def delta(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.seconds())


#: Refused rotation probes are run again this often (step 2 and step 4 of a rotation).
PROBE_RETRY = Interval("CERTPOLICY_PROBE_RETRY", 30.0, "refused rotation probes are run again")
#: A bundle target that is not the policy's (``NotManaged``) is read again this often, so that its
#: owner opting in is noticed without touching the policy.
NOT_MANAGED_RECHECK = Interval("CERTPOLICY_NOT_MANAGED_RECHECK", 30.0, "a target that is not ours is read again")
#: A pass that raised is retried this often (``Degraded=True/ReconcileFailed`` meanwhile).
ERROR_RETRY = Interval("CERTPOLICY_ERROR_RETRY", 30.0, "a pass that failed is retried")
INTERVALS = (PROBE_RETRY, NOT_MANAGED_RECHECK, ERROR_RETRY)


def check_intervals() -> None:
    """Raise ValueError naming the first interval whose environment variable is not usable:
    ``certpolicy run`` calls it before anything starts, so a typo stops the operator at once."""
    for interval in INTERVALS:
        interval.seconds()

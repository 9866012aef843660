"""The CertificatePolicy CRD as the integration tests address it, and reading its status.

One home for what ~25 test files each spelled out: the group/version/plural triple and the three
status helpers every test that waits on a policy needs.
"""

from __future__ import annotations

from collections.abc import Callable

from kubewait import wait_for

GROUP, VERSION, PLURAL = "certpolicy.io", "v1alpha1", "certificatepolicies"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "CertificatePolicy"


def get_policy(custom_api, name: str) -> dict:
    return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)


def policy_status(custom_api, name: str) -> dict:
    """The policy's status as it is now ({} before the first write)."""
    return get_policy(custom_api, name).get("status") or {}


def condition(status: dict, type_: str) -> dict:
    """The condition of that type in a status, or {} when there is none yet."""
    return next((c for c in status.get("conditions") or () if c["type"] == type_), {})


def wait_status(custom_api, name: str, predicate: Callable[[dict], object], what: str, timeout: float = 30) -> dict:
    """Poll the policy's status until ``predicate`` holds, with a deadline; return that status."""
    def probe():
        st = policy_status(custom_api, name)
        return st if predicate(st) else None

    return wait_for(probe, timeout=timeout, what=what)

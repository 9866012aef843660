"""Namespaces as a bare API server needs them: with the ``default`` ServiceAccount Pods require.

On a real cluster the controller-manager creates that ServiceAccount; on the local control plane
nobody does, and Pod creation is refused without it.
"""

from __future__ import annotations

from collections.abc import Mapping

from kubernetes import client
from kubernetes.client import ApiException


def _create_ignoring_conflict(fn, *args) -> None:
    try:
        fn(*args)
    except ApiException as e:
        if e.status != 409:
            raise


def ensure_namespace(core: client.CoreV1Api, name: str, labels: Mapping[str, str] | None = None) -> None:
    body = client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=dict(labels or {})))
    _create_ignoring_conflict(core.create_namespace, body)
    sa = client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="default"))
    _create_ignoring_conflict(core.create_namespaced_service_account, name, sa)

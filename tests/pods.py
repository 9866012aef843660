"""Pods for integration tests. There is no kubelet on the test control plane: Pods stay Pending,
so a test plays the kubelet's part by writing ``status.startTime`` (the operator judges Pods that
read a leaf or bundle only at start by it).
"""

from __future__ import annotations

import datetime as dt
import uuid


def started(core_v1, ns: str, name: str, at: dt.datetime) -> None:
    """What the kubelet reports once a Pod runs (second precision, as it does)."""
    core_v1.patch_namespaced_pod_status(name, ns, {"status": {
        "startTime": at.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")}})


def start_pod(core_v1, ns: str, name: str, *, env_secret: str | None = None, bundle: str | None = None,
              sub_path: bool = False, trust_at_start: bool = False, replica_set: str | None = None,
              started_at: dt.datetime | None = None) -> None:
    """A Pod taking a leaf Secret through ``env`` and/or a bundle ConfigMap as a volume (through
    ``subPath`` if asked), owned by a ReplicaSet if named, started at ``started_at`` if given."""
    container: dict = {"name": "app", "image": "example.invalid/app:1"}
    volumes = []
    if env_secret:
        container["env"] = [{"name": "TLS_CRT", "valueFrom": {"secretKeyRef": {"name": env_secret, "key": "tls.crt"}}}]
    if bundle:
        volumes.append({"name": "trust", "configMap": {"name": bundle}})
        mount = {"name": "trust", "mountPath": "/trust/ca.crt" if sub_path else "/trust"}
        if sub_path:
            mount["subPath"] = "ca.crt"
        container["volumeMounts"] = [mount]
    meta: dict = {"name": name, "labels": {"app": name.split("-")[0]}}
    if trust_at_start:
        meta["annotations"] = {"certpolicy.io/trust-loaded-at-start": "true"}
    if replica_set:
        meta["labels"]["pod-template-hash"] = replica_set.rsplit("-", 1)[1]
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": replica_set,
                                    "uid": str(uuid.uuid4()), "controller": True}]
    core_v1.create_namespaced_pod(ns, {"metadata": meta, "spec": {"containers": [container], "volumes": volumes}})
    if started_at is not None:
        started(core_v1, ns, name, started_at)

"""Kubernetes Events, posted on state changes only and never twice for the same change.

Each event's name is derived from what it reports (policy, object uid, object resourceVersion
and the set of reasons), so a restarted operator that re-derives the same transition tries to
create the same Event and gets ``409 AlreadyExists`` instead of a duplicate. An in-memory record
of what was last reported per object spares the API server even that attempt on re-checks.
Messages come from findings, which never contain key material.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kubernetes.client import ApiException

from certpolicy.kube.client import instance_identity
from certpolicy.kube.rawapi import RawClient
from certpolicy.timestamps import rfc3339, rfc3339_micro

log = logging.getLogger(__name__)
COMPONENT = "certpolicy-operator"
MAX_MESSAGE = 1024


@dataclass(frozen=True)
class ObjectRef:
    kind: str
    name: str
    namespace: str = ""
    uid: str = ""
    api_version: str = "v1"
    resource_version: str = ""

    def as_involved(self) -> dict[str, Any]:
        ref = {"kind": self.kind, "name": self.name, "apiVersion": self.api_version}
        if self.namespace:
            ref["namespace"] = self.namespace
        if self.uid:
            ref["uid"] = self.uid
        if self.resource_version:
            ref["resourceVersion"] = self.resource_version
        return ref


def event_name(obj: ObjectRef, key_parts: Sequence[str]) -> str:
    digest = hashlib.sha256("\x00".join([obj.kind, obj.namespace, obj.name, obj.uid, *key_parts]).encode())
    return f"{obj.name[:200]}.cp{digest.hexdigest()[:16]}"


class EventRecorder:
    def __init__(self, raw: RawClient, *, default_namespace: str = "default") -> None:
        self.raw = raw
        # Events about cluster-scoped objects (our CertificatePolicies) live in "default",
        # where kubectl describe looks for them.
        self.default_namespace = default_namespace
        self.instance = instance_identity()
        self.posted = 0
        self.duplicates = 0

    def post(self, obj: ObjectRef, type_: str, reason: str, message: str, key_parts: Sequence[str],
             now: dt.datetime | None = None) -> bool:
        """Create the event; False when this exact transition was already reported."""
        now = now or dt.datetime.now(dt.UTC)
        namespace = obj.namespace or self.default_namespace
        ts = rfc3339(now)
        micro = rfc3339_micro(now)
        body = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": event_name(obj, [type_, reason, *key_parts]), "namespace": namespace,
                         "labels": {"app.kubernetes.io/managed-by": COMPONENT}},
            "involvedObject": obj.as_involved(),
            "type": type_,
            "reason": reason,
            "message": message[:MAX_MESSAGE],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self.instance[:128],
            "action": "Validate",
            "firstTimestamp": ts,
            "lastTimestamp": ts,
            "eventTime": micro,
            "count": 1,
        }
        try:
            self.raw.post(f"/api/v1/namespaces/{namespace}/events", body)
        except ApiException as e:
            if e.status == 409:
                self.duplicates += 1
                return False
            log.warning("could not post %s event %s on %s %s/%s: HTTP %s", type_, reason, obj.kind,
                        obj.namespace, obj.name, e.status)
            return False
        self.posted += 1
        return True

"""The AdmissionReview (admission.k8s.io/v1) in and out: parsing a request, shaping a response.

Nothing of the request's objects goes into a response, a log line or an exception: a Secret's
data stays in the request it came with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from certpolicy.policy.admission import Verdict

API_VERSION = "admission.k8s.io/v1"
#: The largest AdmissionReview read: a Secret is at most 1 MiB, old and new base64-encoded in one
#: request are about 2.7 MiB; anything larger is not a Secret write and is answered "allowed".
MAX_REVIEW_BYTES = 4 * 1024 * 1024


class BadReview(ValueError):
    """Not an AdmissionReview this webhook can answer (the message names no object content)."""


@dataclass(frozen=True)
class Request:
    uid: str
    kind: str  # Secret | ConfigMap | ClusterTrustBundle
    namespace: str
    name: str
    operation: str  # CREATE | UPDATE | DELETE | CONNECT
    object: dict[str, Any] | None
    old_object: dict[str, Any] | None
    username: str

    @property
    def where(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"


def parse_review(body: bytes) -> Request:
    try:
        review = json.loads(body)
    except ValueError:
        raise BadReview("the body is not JSON") from None
    if not isinstance(review, dict) or review.get("kind") != "AdmissionReview" or not isinstance(
            review.get("request"), dict):
        raise BadReview("not an AdmissionReview with a request")
    req = review["request"]
    obj = req.get("object") if isinstance(req.get("object"), dict) else None
    old = req.get("oldObject") if isinstance(req.get("oldObject"), dict) else None
    meta = (obj or old or {}).get("metadata") or {}
    return Request(uid=str(req.get("uid") or ""), kind=str((req.get("kind") or {}).get("kind") or ""),
                   namespace=str(req.get("namespace") or meta.get("namespace") or ""),
                   name=str(req.get("name") or meta.get("name") or ""), operation=str(req.get("operation") or ""),
                   object=obj, old_object=old, username=str((req.get("userInfo") or {}).get("username") or ""))


def response(uid: str, verdict: Verdict) -> dict[str, Any]:
    """The AdmissionReview answering request ``uid``. A refusal is 403 Forbidden with the message
    kubectl prints after 'admission webhook ... denied the request:'."""
    answer: dict[str, Any] = {"uid": uid, "allowed": verdict.allowed}
    if not verdict.allowed:
        answer["status"] = {"code": 403, "reason": "Forbidden", "message": verdict.message}
    if verdict.warnings:
        answer["warnings"] = list(verdict.warnings)
    return {"apiVersion": API_VERSION, "kind": "AdmissionReview", "response": answer}

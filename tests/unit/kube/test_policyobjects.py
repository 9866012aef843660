"""Listing what the operator created for a policy: by label, metadata only, paged and capped."""

from __future__ import annotations

from kubernetes.client import ApiException

from certpolicy.kube.policyobjects import list_policy_objects, live_policies
from certpolicy.kube.rawapi import METADATA_ONLY


class FakeRaw:
    """Answers list GETs from pages; records every request's path, query and Accept header."""

    def __init__(self, pages: dict[str, list[list[dict]]]) -> None:
        self.pages, self.calls = pages, []

    def get(self, path, query=None, timeout=60, accept="application/json"):
        self.calls.append((path, dict(query or {}), accept))
        if path not in self.pages:
            raise ApiException(status=404)
        i = int((query or {}).get("continue") or 0)
        more = i + 1 < len(self.pages[path])
        return {"items": self.pages[path][i], "metadata": {"continue": str(i + 1) if more else None}}


def meta(name: str, ns: str = "", **annotations: str) -> dict:
    return {"metadata": {"name": name, "namespace": ns, "labels": {"certpolicy.io/managed-by": "p",
                                                                   "certpolicy.io/role": "ca"},
                         "annotations": {"certpolicy.io/managed-by-uid": "u1", **annotations}}}


def test_lists_by_label_metadata_only_in_pages_and_names_what_it_could_not_list():
    raw = FakeRaw({"/api/v1/secrets": [[meta("a", "ns")], [meta("b", "ns")]], "/api/v1/configmaps": [[]]})
    out = list_policy_objects(raw, "p")
    assert [(o.kind, o.namespace, o.name, o.policy, o.uid, o.role) for o in out.objects] == [
        ("Secret", "ns", "a", "p", "u1", "ca"), ("Secret", "ns", "b", "p", "u1", "ca")]
    assert all(accept == METADATA_ONLY for _, _, accept in raw.calls)  # never a Secret's data
    assert all(q["labelSelector"] == "certpolicy.io/managed-by=p" and q["limit"] for _, q, _ in raw.calls)
    assert out.unavailable == {"ClusterTrustBundle": "not served by this API server"}


def test_a_capped_list_is_reported_and_a_capped_policy_list_proves_nothing():
    raw = FakeRaw({"/api/v1/secrets": [[meta("a")], [meta("b")], [meta("c")]], "/api/v1/configmaps": [[]],
                   "/apis/certpolicy.io/v1alpha1/certificatepolicies": [[{"metadata": {"name": "p", "uid": "u"}}]] * 3})
    out = list_policy_objects(raw, "p", limit=2)
    assert out.capped == ["Secret"] and len(out.objects) == 2
    assert live_policies(raw, limit=2) is None
    assert live_policies(raw, limit=10) == {"u": "p"}

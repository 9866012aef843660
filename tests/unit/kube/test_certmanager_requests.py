"""kube/certmanager.py without an API server: which Certificates name an Issuer, and the re-issue
request (what ``cmctl renew`` sends), including one retry after losing to cert-manager's own write."""

from __future__ import annotations

import datetime as dt

import pytest
from kubernetes.client import ApiException

from certpolicy.kube.certmanager import IssuerRef, is_ready, request_reissue

NOW = dt.datetime(2026, 12, 4, 12, 0, tzinfo=dt.UTC)


def _cert(ns: str = "apps", name: str = "web", *, kind: str | None = "Issuer", issuer: str = "ca",
          group: str | None = "cert-manager.io", conditions: list | None = None, rv: str = "1") -> dict:
    ref = {"name": issuer, **({"kind": kind} if kind else {}), **({"group": group} if group else {})}
    return {"metadata": {"namespace": ns, "name": name, "generation": 1, "resourceVersion": rv},
            "spec": {"issuerRef": ref, "secretName": f"{name}-tls"}, "status": {"conditions": conditions or []}}


@pytest.mark.parametrize(("cert", "names"), [
    (_cert(), True),
    (_cert(kind=None, group=None), True),  # cert-manager's defaults: kind Issuer, group cert-manager.io
    (_cert(ns="other"), False),  # an Issuer is namespaced
    (_cert(kind="ClusterIssuer"), False),
    (_cert(issuer="ca2"), False),
    (_cert(group="awspca.cert-manager.io"), False),
])
def test_which_certificates_name_an_issuer(cert, names):
    assert IssuerRef("Issuer", "ca", "apps").names(cert) is names


def test_a_cluster_issuer_is_named_from_any_namespace():
    ref = IssuerRef.from_spec({"ca": {"certManager": {"issuerRef": {"kind": "ClusterIssuer", "name": "ca"}}}},
                              "cert-manager")
    assert ref == IssuerRef("ClusterIssuer", "ca", "cert-manager")
    assert ref.names(_cert(ns="anywhere", kind="ClusterIssuer")) and not ref.names(_cert(ns="anywhere"))


class _Raw:
    def __init__(self, fail_first: bool) -> None:
        self.fail_first, self.patches, self.gets = fail_first, [], []

    def patch(self, path, body, **_kw):
        self.patches.append((path, body))
        if self.fail_first and len(self.patches) == 1:
            raise ApiException(status=409, reason="Conflict")
        return {}

    def get(self, path, query=None, **_kw):
        self.gets.append(path)
        return _cert(rv="2", conditions=[{"type": "Ready", "status": "True", "observedGeneration": 1}])


def test_the_request_is_cmctl_renews_status_patch_at_the_version_read():
    raw = _Raw(fail_first=False)
    assert request_reissue(raw, _cert(), NOW, "rotation") is True  # type: ignore[arg-type]
    (path, body), = raw.patches
    assert path == "/apis/cert-manager.io/v1/namespaces/apps/certificates/web/status"
    assert body["metadata"] == {"resourceVersion": "1"}
    (issuing,) = body["status"]["conditions"]
    assert (issuing["type"], issuing["status"], issuing["reason"]) == ("Issuing", "True", "ManuallyTriggered")
    assert issuing["lastTransitionTime"] == "2026-12-04T12:00:00Z" and issuing["observedGeneration"] == 1


def test_a_lost_race_with_cert_manager_is_tried_once_more_on_a_fresh_read():
    raw = _Raw(fail_first=True)
    assert request_reissue(raw, _cert(), NOW, "rotation") is True  # type: ignore[arg-type]
    assert len(raw.patches) == 2 and raw.patches[1][1]["metadata"] == {"resourceVersion": "2"}
    assert [c["type"] for c in raw.patches[1][1]["status"]["conditions"]] == ["Ready", "Issuing"]  # others kept


def test_an_issuance_already_running_is_left_to_cert_manager():
    raw = _Raw(fail_first=False)
    running = _cert(conditions=[{"type": "Issuing", "status": "True"}])
    assert request_reissue(raw, running, NOW, "rotation") is False  # type: ignore[arg-type]
    assert raw.patches == [] and not is_ready(running)

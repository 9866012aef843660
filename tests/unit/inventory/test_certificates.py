"""cert-manager Certificates in the inventory (the ``certificates`` entry of inventory/wakes.py):
the trimmed record, its map function, the gating on whether the cluster serves the CRD, and the
stage that judges each selected Secret's Certificate (handlers/certmanager.py)."""

from __future__ import annotations

import dataclasses
import threading
import time
from types import SimpleNamespace
from typing import Any

import pytest
from kubernetes.client import ApiClient, ApiException

import certgen
from certpolicy.handlers.certmanager import certificate_spec_stage
from certpolicy.handlers.context import StageOutput
from certpolicy.inventory import wakes
from certpolicy.inventory.interest import Reads
from certpolicy.inventory.inventory import Inventory
from certpolicy.inventory.records import CertificateRecord, parse_certificate_object, parse_secret_object
from certpolicy.inventory.watch import ListWatcher
from certpolicy.policy.certmanager import judge_certificate_spec
from certpolicy.policy.evaluate import Evaluator
from certpolicy.policy.report import SecretResult
from certpolicy.policy.spec import requirements_from_spec
from unstarted import inventory_with

OPNS = "certpolicy-system"
MTLS = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"]})
CM_PATH = "/apis/cert-manager.io/v1"


def certificate(name: str = "mirth", secret: str = "mirth-tls", ns: str = "apps", **spec: Any) -> dict:
    return {
        "apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"namespace": ns, "name": name, "uid": f"uid-{name}", "resourceVersion": "7",
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "x" * 5000},
                     "managedFields": [{"manager": "kubectl"}]},
        "spec": {"secretName": secret, "usages": ["server auth", "client auth"], "dnsNames": ["mirth.example.com"],
                 "privateKey": {"algorithm": "ECDSA", "size": 256}, "duration": "2160h",
                 "issuerRef": {"name": "ca", "kind": "Issuer", "group": "cert-manager.io"},
                 "secretTemplate": {"labels": {"a": "b"}}, **spec},
        "status": {"renewalTime": "2027-01-10T04:00:00Z", "notAfter": "2027-02-09T04:00:00Z", "revision": 3,
                   "conditions": [{"type": "Ready", "status": "True", "reason": "Ready", "message": "ok"}]},
    }


def tls_secret(name: str = "mirth-tls", ns: str = "apps", annotations: dict | None = None, **labels: str) -> dict:
    leaf = certgen.leaf(certgen.root("cm unit CA"), "mirth.example.com", eku=["serverAuth", "clientAuth"])
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"namespace": ns, "name": name, "uid": f"uid-{name}", "resourceVersion": "1",
                         "labels": labels, "annotations": annotations or {}},
            "data": certgen.tls_secret(leaf)["data"]}


# ---- the trimmed record -----------------------------------------------------------------------

def test_the_record_keeps_only_what_judging_needs():
    rec = parse_certificate_object(certificate())
    assert rec == CertificateRecord(
        namespace="apps", name="mirth", secret_name="mirth-tls", usages=("server auth", "client auth"),
        dns_names=("mirth.example.com",), key_algorithm="ECDSA", key_size=256, duration="2160h",
        issuer_ref=("ca", "Issuer", "cert-manager.io"), renewal_time="2027-01-10T04:00:00Z",
        not_after="2027-02-09T04:00:00Z", ready="True")
    assert {f.name for f in dataclasses.fields(rec)} == {
        "namespace", "name", "secret_name", "usages", "dns_names", "ip_addresses", "uris", "email_addresses",
        "key_algorithm", "key_size", "duration", "issuer_ref", "renewal_time", "not_after", "ready"}


@pytest.mark.parametrize("spec", [
    {"usages": ["server auth"]},  # drops clientAuth
    {"usages": []},  # cert-manager's defaults: no EKU
    {"privateKey": {"algorithm": "RSA", "size": 1024}},
    {"privateKey": {}},  # RSA 2048 by default
    {"privateKey": {"algorithm": "Ed25519"}},
    {"dnsNames": [], "ipAddresses": ["10.0.0.1"]},
    {"duration": "1h"},
    {"duration": None},
])
def test_the_record_is_judged_as_the_whole_object_is(spec):
    obj = certificate(**spec)
    req = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"], "requireSAN": True,
                                  "minimumRSABits": 3072})
    assert judge_certificate_spec(parse_certificate_object(obj).as_object(), req) == judge_certificate_spec(obj, req)


@pytest.mark.parametrize("obj", [
    {}, {"metadata": None, "spec": None, "status": None}, {"spec": "x", "status": []},
    {"metadata": {"namespace": "a", "name": "b"},
     "spec": {"secretName": 5, "usages": "client auth", "dnsNames": [1, None, "ok"],
              "privateKey": {"algorithm": 3, "size": True}, "duration": 60, "issuerRef": "ca"},
     "status": {"renewalTime": 12, "conditions": ["x", {"type": "Ready", "status": 1}]}},
])
def test_a_malformed_certificate_parses_as_absent_fields(obj):
    rec = parse_certificate_object(obj)
    assert rec.key_size is None and rec.renewal_time is None and rec.ready is None
    judge_certificate_spec(rec.as_object(), MTLS)  # never raises


def test_lists_are_bounded():
    rec = parse_certificate_object(certificate(dnsNames=[f"n{i}.example.com" for i in range(5000)]))
    assert len(rec.dns_names) == 100


# ---- the map function -------------------------------------------------------------------------



def test_the_certificate_source_is_in_the_table_and_gates_no_policy():
    entry = wakes.BY_SOURCE[wakes.CERTIFICATES]
    assert isinstance(entry.watch, wakes.Served)
    assert entry.watch.watched.path == f"{CM_PATH}/certificates"
    inv, _ = inventory_with({})
    assert wakes.CERTIFICATES not in [w.name for w in inv.watchers]  # not an Always watch: gates nothing
    assert any(getattr(listener, "func", None) == inv._route for listener in inv.certificates.listeners)  # noqa: SLF001


def test_a_certificate_change_wakes_the_policies_that_select_its_secret():
    by_label = Reads.of({"selector": {"secretSelector": {"matchLabels": {"team": "a"}}}}, OPNS)
    by_name = Reads.of({"selector": {"names": [{"namespace": "apps", "name": "other-tls"}]}}, OPNS)
    other = Reads.of({"selector": {"secretSelector": {"matchLabels": {"team": "b"}}}}, OPNS)
    inv, woken = inventory_with({"label": by_label, "name": by_name, "other": other})
    inv.secrets.upsert(tls_secret(team="a"))
    woken.clear()
    inv.certificates.upsert(certificate())
    assert woken == [["label"]]
    woken.clear()
    # spec.secretName moved to a Secret the second policy names: both the old and new owner wake
    inv.certificates.upsert({**certificate(secret="other-tls"), "metadata": {
        **certificate()["metadata"], "resourceVersion": "8"}})
    assert woken == [["label", "name"]]


def test_a_certificate_of_a_secret_no_policy_selects_wakes_none():
    inv, woken = inventory_with({"a": Reads.of({"selector": {"secretSelector": {"matchLabels": {"t": "a"}}}}, OPNS)})
    inv.certificates.upsert(certificate(secret="nobody-tls"))
    assert woken == []


# ---- gating: whether the cluster serves (and lets us list) Certificates --------------------------

class FakeRaw:
    """Answers the two questions the gate asks: the group's resource list, and a list of one."""

    def __init__(self) -> None:
        self.served = False
        self.list_status: int | None = None
        self.calls: list[str] = []

    def get(self, path: str, query: Any = None, **kw: Any) -> dict:
        self.calls.append(path)
        if path == CM_PATH:
            if not self.served:
                raise ApiException(status=404, reason="Not Found")
            return {"resources": [{"name": "certificates"}, {"name": "certificaterequests"}]}
        if path == f"{CM_PATH}/certificates":
            if not self.served:
                raise ApiException(status=404, reason="Not Found")
            if self.list_status:
                raise ApiException(status=self.list_status, reason="Forbidden")
            return {"items": []}
        raise AssertionError(path)


@pytest.fixture
def gated(monkeypatch: pytest.MonkeyPatch) -> tuple[Inventory, FakeRaw]:
    started: list[ListWatcher] = []
    monkeypatch.setattr(ListWatcher, "start", lambda self: started.append(self) or self)
    inv = Inventory(ApiClient())
    raw = inv.raw = FakeRaw()  # type: ignore[assignment]
    inv._started = True  # noqa: SLF001 - start() would also start the Always watches
    return inv, raw


def test_without_the_crd_nothing_is_watched_and_no_policy_is_held(gated):
    inv, raw = gated
    assert not inv._start_served()  # noqa: SLF001 - what start() does: not every Served watch runs
    sw = inv.served[wakes.CERTIFICATES]
    assert sw.watcher is None and raw.calls == [CM_PATH]
    assert inv.certificates_unreadable() is None  # nothing to judge, nothing to say
    assert not inv.certificates_listing()
    for w in inv.watchers:
        w.synced.set()
    assert inv.synced_for(Reads.of({"selector": {"secretSelector": {}}}, OPNS))
    assert sw.watcher not in inv.all_watchers()


def test_the_watch_starts_when_the_crd_appears_later(gated):
    inv, raw = gated
    assert not inv._start_served()  # noqa: SLF001
    raw.served = True  # the CRD is installed
    assert inv._start_served()  # noqa: SLF001 - what the served-check thread does every `recheck` s
    watcher = inv.served[wakes.CERTIFICATES].watcher
    assert watcher is not None and watcher.path == f"{CM_PATH}/certificates"
    assert watcher in inv.all_watchers()
    assert inv.certificates_unreadable(wait=0) == "the operator has not finished listing certificates.cert-manager.io"
    assert inv.certificates_listing()  # a pass's catch-ups leave cert-manager's Secrets to its walk
    watcher.synced.set()
    assert inv.certificates_unreadable() is None
    assert not inv.certificates_listing()


def test_start_checks_again_until_the_crd_is_served(gated, monkeypatch: pytest.MonkeyPatch):
    inv, raw = gated
    inv._started = False  # noqa: SLF001
    for w in inv.watchers:
        monkeypatch.setattr(w, "start", lambda: None)
    monkeypatch.setattr(inv.served[wakes.CERTIFICATES], "wake", dataclasses.replace(
        inv.served[wakes.CERTIFICATES].wake, recheck=0.01))
    inv.start()
    raw.served = True
    deadline = time.monotonic() + 10  # polled with a deadline for the state expected
    while inv.served[wakes.CERTIFICATES].watcher is None and time.monotonic() < deadline:
        inv._stopping.wait(0.01)  # noqa: SLF001
    inv._stopping.set()  # noqa: SLF001 - stop() would also join the (never started) Always watches
    assert inv.served[wakes.CERTIFICATES].watcher is not None


def test_a_removed_crd_ends_the_watch_and_checks_resume(gated):
    """cert-manager uninstalled while the operator runs: its watch got 404 on every retry, heard
    nothing, and failed /healthz one silence limit later (a Pod restart for an optional CRD)."""
    inv, raw = gated
    raw.served = True
    assert inv._start_served()  # noqa: SLF001
    sw = inv.served[wakes.CERTIFICATES]
    watcher = sw.watcher
    assert watcher is not None
    inv.certificates.upsert(certificate(secret="a-tls"))
    raw.served = False  # the CRD is deleted
    thread = threading.Thread(target=watcher._run, daemon=True)  # noqa: SLF001 - the watch's own loop
    thread.start()
    thread.join(10)
    alive = thread.is_alive()
    watcher._stop.set()  # noqa: SLF001 - ends the loop if it did not end by itself
    inv._stopping.set()  # noqa: SLF001
    assert not alive, "the watch kept retrying a resource that is no longer served"
    assert watcher.stopped and watcher not in inv.all_watchers()  # /healthz reads all_watchers()
    assert sw.watcher is None
    inv._start_served()  # noqa: SLF001 - the next check: still not served, so its records are gone
    assert len(inv.certificates) == 0


def test_a_refused_list_is_a_stated_reason_not_a_looping_watch(gated):
    inv, raw = gated
    raw.served, raw.list_status = True, 403
    inv._start_served()  # noqa: SLF001
    assert inv.served[wakes.CERTIFICATES].watcher is None
    assert "may not list certificates.cert-manager.io (HTTP 403 Forbidden)" in (inv.certificates_unreadable() or "")
    assert not inv.certificates_listing()  # refused is no wait: the catch-ups judge those Secrets too


# ---- the stage: a selected Secret's Certificate joins its findings --------------------------------

def _stage(inv: Inventory, secret: dict) -> tuple[list[SecretResult], StageOutput]:
    rec = parse_secret_object(secret)
    ev = Evaluator().evaluate(MTLS, rec.material, None, certgen.utcnow())
    ctx = SimpleNamespace(inventory=inv, requirements=MTLS, out=StageOutput())
    results = certificate_spec_stage(ctx, [SecretResult(rec.namespace, rec.name, ev)],  # type: ignore[arg-type]
                                     {(rec.namespace, rec.name): rec})
    return results, ctx.out


@pytest.mark.parametrize("annotated", [True, False])
def test_the_certificate_that_writes_a_secret_is_judged_with_it(annotated):
    inv, _ = inventory_with({})
    inv.certificates.upsert(certificate(usages=["server auth"]))
    ann = {"cert-manager.io/certificate-name": "mirth"} if annotated else {}
    (result,), out = _stage(inv, tls_secret(annotations=ann))
    ahead = [f for f in result.evaluation.findings if f.reason == "CertificateSpecViolates"]
    assert [f.message for f in ahead] == [
        "the renewal at 2027-01-10T04:00:00Z will lack clientAuth — Certificate apps/mirth: "
        "add `client auth` to spec.usages"]
    assert not result.evaluation.compliant and "CertificateSpecViolates" in result.signature
    assert out.problems == []


def test_a_compliant_certificate_adds_nothing_and_another_secrets_certificate_is_not_used():
    inv, _ = inventory_with({})
    inv.certificates.upsert(certificate())
    inv.certificates.upsert(certificate(name="other", secret="other-tls", usages=["server auth"]))
    # the annotation names "other", whose secretName is another Secret: not this Secret's writer
    (result,), _ = _stage(inv, tls_secret(annotations={"cert-manager.io/certificate-name": "other"}))
    assert "CertificateSpecViolates" not in result.evaluation.reasons and result.evaluation.compliant


def test_unreadable_certificates_are_a_problem_for_a_cert_manager_secret(gated):
    inv, raw = gated
    raw.served, raw.list_status = True, 403
    inv._start_served()  # noqa: SLF001
    _, out = _stage(inv, tls_secret(annotations={"cert-manager.io/certificate-name": "mirth"}))
    assert [p.reason for p in out.problems] == ["CertificatesUnreadable"]
    assert "apps/mirth-tls" in out.problems[0].message and "HTTP 403" in out.problems[0].message
    _, out = _stage(inv, tls_secret())  # no cert-manager annotation: nothing is missing
    assert out.problems == []

"""``certpolicy run``'s head start, on a real API server: each policy kopf has taken on gets its
first pass before kopf is imported (handlers/headstart.py), and kopf then carries on from it.

The control plane of this module logs every write (metadata only, tests/integration/test_failover.py's
audit policy), so what each process sent is read from the API server, not from the operator's log:

- a restart judges the known policy before kopf loads, and kopf's first pass after it sends
  nothing the head start already sent: no second status write, no second attempt at the Warning;
- a policy kopf has never seen (no finalizer yet) waits for kopf, which gives it its finalizer
  before its first pass, so that deleting it always finds the clean-up in place;
- a replica that does not hold the Lease writes nothing, head start or not.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import uuid

import kubernetes
import pytest
from test_failover import OPERATOR_NS, ha, operator_writes, scrape  # noqa: F401 - ha: the audited control plane

import certgen
from certpolicy.handlers.deletion import FINALIZER
from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.localcluster.cluster import free_port
from crd import GROUP, PLURAL, VERSION
from kubewait import wait_for
from operator_process import OperatorProcess, log_records


def _policy(name: str, label: str, bundle: str) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
            "spec": {"selector": {"namespaceSelector": {"matchLabels": {"head-start": label}}},
                     "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"],
                                      "trustBundle": {"configMap": {"namespace": OPERATOR_NS, "name": bundle}}}}}


def _complete(custom, name: str) -> dict | None:
    st = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name).get("status") or {}
    summary = st.get("summary") or {}
    return st if summary.get("selected") == 2 and summary.get("violating") == 1 else None


@pytest.fixture
def setup(ha):  # noqa: F811 - the fixture imported above
    """Two TLS Secrets in a fresh namespace (one renewed without clientAuth), their CA's bundle."""
    cluster, api = ha
    core, custom = kubernetes.client.CoreV1Api(api), kubernetes.client.CustomObjectsApi(api)
    label, ns, bundle = uuid.uuid4().hex[:8], f"t-{uuid.uuid4().hex[:10]}", f"bundle-{uuid.uuid4().hex[:6]}"
    ensure_namespace(core, ns, labels={"head-start": label})
    ca = certgen.root("Head Start Root CA")
    core.create_namespaced_config_map(OPERATOR_NS, kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name=bundle), data={"ca.crt": certgen.pem(ca).decode()}))
    for secret, eku in (("good-tls", ["serverAuth", "clientAuth"]), ("renewed-tls", ["serverAuth"])):
        body = certgen.tls_secret(certgen.leaf(ca, f"{secret}.head.example.com", eku=eku))
        core.create_namespaced_secret(ns, kubernetes.client.V1Secret(
            metadata=kubernetes.client.V1ObjectMeta(name=secret), type=body["type"], data=body["data"]))
    return cluster, api, core, custom, label, ns, bundle


def test_a_restart_judges_a_known_policy_before_kopf_and_kopf_repeats_none_of_it(setup, tmp_path):
    cluster, api, core, custom, label, ns, bundle = setup
    known, new = f"hs-known-{uuid.uuid4().hex[:6]}", f"hs-new-{uuid.uuid4().hex[:6]}"
    lease, port = f"hs-{uuid.uuid4().hex[:6]}", free_port()
    args = ["--identity", "replica-a", "--lease-name", lease, "--metrics-port", str(port)]
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, _policy(known, label, bundle))

    first = OperatorProcess(cluster, tmp_path / "first.log", args=args)
    first.start()
    try:
        wait_for(lambda: _complete(custom, known), timeout=60, what="the first run's complete status")
        wait_for(lambda: core.list_namespaced_event(ns, field_selector="involvedObject.name=renewed-tls").items,
                 timeout=30, what="the Warning on the renewed Secret")
        meta = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, known)["metadata"]
        assert FINALIZER in meta.get("finalizers", []), meta
        first_log = first.log_path.read_text()
    finally:
        first.stop()
    assert first.proc.returncode == 0
    assert "head start: no policy an operator has taken on yet" in first_log  # kopf had not taken it on

    # While no operator runs: the known policy's status is cleared (so its next write is visible)
    # and a policy kopf has never seen is created.
    custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, known, {"status": None})
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, _policy(new, label, bundle))
    restarted = dt.datetime.now(dt.UTC)
    second = OperatorProcess(cluster, tmp_path / "second.log", args=args)
    second.start()
    try:
        wait_for(lambda: _complete(custom, known) and _complete(custom, new), timeout=60,
                 what="both policies' complete status after the restart")
        passes = f'certpolicy_policy_passes_total{{policy="{known}"}}'
        wait_for(lambda: scrape(port).get(passes, 0) >= 2, timeout=30,
                 what="kopf's first pass of the known policy, after the head start's")
        records = log_records(second.log_path.read_text())
    finally:
        second.stop()
    assert second.proc.returncode == 0

    # The order in the log: the known policy judged, the head start done, and only then kopf.
    def first_line(predicate) -> int:
        return next(i for i, r in enumerate(records) if predicate(r))

    judged = first_line(lambda r: r.message.startswith(f"policy {known}: Ready=True"))
    head = first_line(lambda r: r.message.startswith("head start: first pass of 1 of 1 policies"))
    kopf = first_line(lambda r: r.logger.startswith("kopf"))
    new_judged = first_line(lambda r: r.message.startswith(f"policy {new}: Ready=True"))
    assert judged < head < kopf < new_judged, (judged, head, kopf, new_judged)

    # What the API server received from the restarted process about the known policy: one status
    # write (the head start's; kopf's pass found nothing to change) and one attempt at the
    # renewed Secret's Warning (the head start's, refused as already posted: 409); kopf's pass,
    # which carries the head start's memory, attempted none.
    writes = operator_writes(cluster, restarted)
    status_writes = [w for w in writes if w.resource == f"{PLURAL}/status" and w.name == known]
    assert len(status_writes) == 1, status_writes
    events = core.list_namespaced_event(ns, field_selector="involvedObject.name=renewed-tls").items
    about = {e.metadata.name: e.message.split(":")[0] for e in events}
    assert sorted(about.values()) == sorted(f"CertificatePolicy {p}" for p in (known, new)), about  # one each
    warnings = [w for w in writes if w.resource == "events" and w.namespace == ns
                and about.get(w.name) == f"CertificatePolicy {known}"]
    assert [w.code for w in warnings] == [409], warnings
    # The new policy got its finalizer from kopf, as it would have without a head start.
    assert FINALIZER in custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, new)["metadata"]["finalizers"]
    for name in (known, new):
        custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, {"metadata": {"finalizers": None}})


def test_a_replica_behind_another_s_lease_makes_no_head_start_and_writes_nothing(setup, tmp_path):
    cluster, api, _core, custom, label, _ns, bundle = setup
    name, lease = f"hs-standby-{uuid.uuid4().hex[:6]}", f"hs-{uuid.uuid4().hex[:6]}"
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, _policy(name, label, bundle))
    custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, {"metadata": {"finalizers": [FINALIZER]}})
    now = dt.datetime.now(dt.UTC)
    kubernetes.client.CoordinationV1Api(api).create_namespaced_lease("kube-system", {
        "metadata": {"name": lease},
        "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 3600, "acquireTime": now, "renewTime": now}})
    began = dt.datetime.now(dt.UTC)
    op = OperatorProcess(cluster, tmp_path / "standby.log", args=["--identity", "replica-s", "--lease-name", lease])
    op.start()
    try:
        wait_for(lambda: "head start: not the leader" in op.log_path.read_text(), timeout=60,
                 what="the standby's head start deciding")
    finally:
        op.stop()
    assert op.proc.returncode == 0
    assert [w for w in operator_writes(cluster, began) if w.replica == "replica-s"] == []
    assert not custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name).get("status")
    custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, {"metadata": {"finalizers": None}})
    custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)



def test_a_slow_first_pass_holds_neither_the_other_policies_nor_kopf(ha, monkeypatch):  # noqa: F811
    """The head start runs its passes side by side and hands over to kopf after HEAD_START_WAIT at
    most: a policy whose pass takes long (100,000 Secrets, an API server that answers slowly)
    delays no other policy's first status, and kopf's start by no more than that bound. The real
    head start on the real API server; only the passes themselves are stand-ins (one of them held)."""
    from certpolicy.handlers import headstart
    from certpolicy.inventory.inventory import Inventory

    _cluster, api = ha
    custom = kubernetes.client.CustomObjectsApi(api)
    slow, quick = f"hs-slow-{uuid.uuid4().hex[:6]}", f"hs-quick-{uuid.uuid4().hex[:6]}"
    for name in (slow, quick):
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
            "spec": {"selector": {"names": [{"namespace": "default", "name": "none"}]}, "requirements": {}}})
        custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, {"metadata": {"finalizers": [FINALIZER]}})
    release, passed = threading.Event(), {}

    def stand_in(_runtime, name):
        if name == slow:
            release.wait(60)
        passed[name] = time.monotonic()

    monkeypatch.setattr(headstart, "policy_pass", stand_in)
    monkeypatch.setattr(headstart, "HEAD_START_WAIT", 1.0)
    inventory = Inventory(api).start()
    try:
        began = time.monotonic()
        headstart.head_start(api, inventory, None, threading.Event(), None)
        returned = time.monotonic()
        assert quick in passed and slow not in passed, passed  # the quick one did not wait behind it
        # handed over at the bound (plus the inventory's sync), not when the slow pass ended
        assert returned - began < 15, returned - began
        release.set()
        wait_for(lambda: slow in passed, timeout=10, what="the slow pass going on after the hand-over")
    finally:
        release.set()
        inventory.stop()
        for name in (slow, quick):
            custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, {"metadata": {"finalizers": None}})
            custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)


def test_a_failed_head_start_pass_is_a_condition_and_an_event_not_only_a_log_line(ha):  # noqa: F811
    """A pass that raises in the head start is reported as the policy's loop reports one
    (``report_failure``) before the loop runs it again: Compliant Unknown/ReconcileFailed,
    Degraded True, a Warning event. The real head start on the real API server; the pass itself is
    a stand-in that raises."""
    import pytest

    from certpolicy.handlers import headstart
    from certpolicy.inventory.inventory import Inventory
    from crd import condition

    _cluster, api = ha
    custom, core = kubernetes.client.CustomObjectsApi(api), kubernetes.client.CoreV1Api(api)
    name = f"hs-fail-{uuid.uuid4().hex[:6]}"
    custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
        "spec": {"selector": {"names": [{"namespace": "default", "name": "none"}]}, "requirements": {}}})
    custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, {"metadata": {"finalizers": [FINALIZER]}})

    def raises(_runtime, _name):
        raise RuntimeError("injected failure of the first pass")

    inventory = Inventory(api).start()
    try:
        with pytest.MonkeyPatch.context() as m:
            m.setattr(headstart, "policy_pass", raises)
            headstart.head_start(api, inventory, None, threading.Event(), None)
        status = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name).get("status") or {}
        assert condition(status, "Compliant").get("reason") == "ReconcileFailed", status
        assert condition(status, "Compliant").get("status") == "Unknown"
        assert condition(status, "Degraded").get("status") == "True"
        events = [e for e in core.list_namespaced_event("default").items
                  if e.involved_object.name == name and e.reason == "ReconcileFailed"]
        assert events and events[0].type == "Warning"
    finally:
        inventory.stop()
        custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name, {"metadata": {"finalizers": None}})
        custom.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)

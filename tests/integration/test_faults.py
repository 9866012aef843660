"""Faults on the real control plane: API server restarts, compacted watch history (410 Gone),
write conflicts (409). The harness stops and starts kube-apiserver while etcd keeps its data, and
compacts etcd's history so that resumed watches are answered with 410, as on a long-running cluster.
"""

from __future__ import annotations

import uuid

from kubernetes import client
from rotation_support import Recorder
from test_reconcile import labelled_namespace, make_policy, put_secret, secret_events
from test_rotation import CASecretCounter, assert_each_rotation_sound, disrupt_during_each_step, rotation_setup, settled  # noqa: F401 (rotation_setup is a fixture)

import certgen
import timers
from certpolicy.handlers import bundles
from certpolicy.inventory import bundletargets
from certpolicy.inventory.recordstore import RecordStore
from certpolicy.inventory.watch import ListWatcher
from certpolicy.kube.ownership import INJECT_CA_FROM, MANAGED_BY, Owner
from certpolicy.kube.rawapi import RawClient
from certpolicy.pki.bundle import read_bundle
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.runcmd import EXIT_LEADERSHIP_LOST
from crd import condition, policy_status
from kubewait import wait_for
from operator_process import OperatorProcess


def outage(cluster, *, compact: bool = True) -> None:
    """Stop kube-apiserver, optionally compact etcd's history meanwhile, start it again."""
    cluster.stop_apiserver()
    try:
        if compact:
            cluster.compact_etcd()
    finally:
        cluster.start_apiserver()


# ---- 410 Gone ------------------------------------------------------------------------------------
def test_list_watch_relists_after_410_gone_and_misses_nothing(cluster, api_client, core_v1, namespace):
    def cm(name):
        core_v1.create_namespaced_config_map(namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=name)))

    cm("a")
    cm("b")
    store = RecordStore("ConfigMap", lambda obj: obj["metadata"]["resourceVersion"])
    watcher = ListWatcher(RawClient(api_client), f"/api/v1/namespaces/{namespace}/configmaps", store,
                          name="test-410", watch_timeout=60, backoff_max=0.5).start()
    try:
        assert watcher.synced.wait(10)
        assert set(store.snapshot()) == {(namespace, "a"), (namespace, "b")}
        old_version = watcher.resource_version
        outage(cluster)  # etcd history compacted past old_version while the API server was away
        cm("c")
        core_v1.delete_namespaced_config_map("a", namespace)
        wait_for(lambda: set(store.snapshot()) == {(namespace, "b"), (namespace, "c")}, timeout=30,
                 what="the store to reflect the changes made after the outage")
        assert watcher.relists >= 1, "the resumed watch should have been answered with 410 Gone"
        assert int(watcher.resource_version) > int(old_version)
    finally:
        watcher.stop()


# ---- API server restart during reconciliation ------------------------------------------------------
def test_api_server_restart_during_reconciliation_loses_nothing(
        cluster, operator, policies, core_v1, custom_api, unique_name):
    ca = certgen.root("Outage Test Root CA")
    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    bundle = f"bundle-{label}"
    core_v1.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=bundle), data={"ca.crt": certgen.pem(ca).decode()}))
    good = [f"good-{i}" for i in range(6)]
    bad = [f"bad-{i}" for i in range(4)]
    for name in good:
        put_secret(core_v1, ns, name, certgen.tls_secret(certgen.leaf(ca, f"{name}.outage.test")))
    for name in bad[:2]:
        put_secret(core_v1, ns, name, certgen.tls_secret(certgen.leaf(ca, f"{name}.outage.test", eku=["serverAuth"])))
    make_policy(policies, unique_name, label, {
        "extendedKeyUsages": ["serverAuth", "clientAuth"],
        "trustBundle": {"configMap": {"namespace": ns, "name": bundle}}})
    wait_for(lambda: policy_status(custom_api, unique_name).get("summary", {}).get("selected") == 8, timeout=30,
             what="8 Secrets selected")

    outage(cluster)

    # Changes right after the restart, while the operator's watches are reconnecting or relisting.
    for name in bad[2:]:
        put_secret(core_v1, ns, name, certgen.tls_secret(certgen.leaf(ca, f"{name}.outage.test", eku=["serverAuth"])))
    for name in good[:2]:
        core_v1.delete_namespaced_secret(name, ns)

    st = wait_for(lambda: (lambda s: s if s.get("summary") == {"selected": 8, "compliant": 4, "violating": 4,
                                                                "expiringSoon": 0} else None)(
        policy_status(custom_api, unique_name)), timeout=60, what="status after the outage")
    assert condition(st, "Compliant")["reason"] == "MissingClientAuth"
    assert sorted(v["name"] for v in st["violations"]) == bad
    for name in bad:
        events = wait_for(lambda name=name: secret_events(core_v1, ns, name), timeout=30, what=f"event on {name}")
        # Exactly one Warning per Secret: nothing posted twice across the outage.
        assert [(e.reason, e.count or 1) for e in events] == [("MissingClientAuth", 1)], name


# ---- API server restart during each rotation step ---------------------------------------------------
def test_api_server_restart_during_each_rotation_step_resumes_and_completes(
        cluster, crd, operator_namespace, api_client, custom_api, core_v1, policies, unique_name,
        rotation_setup, tmp_path):
    body, namespaces, leaf_names = rotation_setup
    body["spec"]["rotation"]["propagationDelay"] = "3s"  # keeps step 2 observable
    leaf_names.add("team-tls")  # an unmanaged leaf: holds step 4 (AwaitLeaves) until its owner renews
    raw = RawClient(api_client)
    recorder = Recorder(raw, namespaces, "rot-ca", leaf_names).start()
    counter = CASecretCounter(raw, operator_namespace)
    op = OperatorProcess(cluster, tmp_path / "operator.log")
    try:
        op.start()
        # An outage longer than the renew deadline (10 s) makes the leader stop writing and exit
        # with EXIT_LEADERSHIP_LOST; in a cluster the kubelet restarts it, and so does this.
        exits = op.supervise()
        policies(body)
        wait_for(lambda: settled(custom_api, unique_name), timeout=60, what="CA, bundles and leaves in place")
        outage_at = disrupt_during_each_step(custom_api, core_v1, unique_name, namespaces[0], operator_namespace,
                                             "outage", lambda: outage(cluster))
        assert set(exits) <= {EXIT_LEADERSHIP_LOST}, f"the operator exited with {exits} during the outages"
    finally:
        op.stop()
        recorder.stop()
        counter.stop()
    checked = assert_each_rotation_sound(recorder, counter, "outage")
    assert outage_at[:4] == [1, 2, 3, 4], f"outages landed in steps {outage_at}"
    print(f"API server restarted during steps {outage_at}; invariant checked at {checked} instants; "
          f"operator restarts after losing its Lease: {len(exits)}")


# ---- 409 Conflict on a bundle write ----------------------------------------------------------------
def test_bundle_write_conflict_is_merged_on_fresh_data_not_overwritten(api_client, core_v1, namespace, monkeypatch):
    """Someone edits the target between the operator's read and its write: the API server answers
    409, the operator reads again and merges into their version — their CA survives."""
    raw = RawClient(api_client)
    ours, theirs, earlier = certgen.root("Our CA"), certgen.root("Their CA"), certgen.root("Earlier foreign CA")
    core_v1.create_namespaced_config_map(namespace, client.V1ConfigMap(  # the user's, opted in
        metadata=client.V1ObjectMeta(name="trust", annotations={INJECT_CA_FROM: "race-policy"}),
        data={"ca.crt": certgen.pem(earlier).decode()}))
    calls = []
    real_merge = bundles.merge_into_target

    def racing_merge(raw_, kind, ns, name, policy, update, **kw):
        def update_with_race(current):
            calls.append((current or {}).get("metadata", {}).get("resourceVersion"))
            if len(calls) == 1:  # the competing edit lands after our read, before our write
                cm = core_v1.read_namespaced_config_map(name, ns)
                cm.data["ca.crt"] += certgen.pem(theirs).decode()
                core_v1.replace_namespaced_config_map(name, ns, cm)
            return update(current)
        return real_merge(raw_, kind, ns, name, policy, update_with_race, **kw)

    monkeypatch.setattr(bundles, "merge_into_target", racing_merge)
    inventory = type("NoInventory", (), {"namespaces": None})()
    monkeypatch.setattr(bundletargets, "target_namespaces", lambda inv, entry: [namespace])
    report = bundles.distribute(raw, inventory, Owner("race-policy", ""), [{"configMap": {"name": "trust"}}],
                                trusted=[ours.cert], retired=set(), primary=None)
    assert len(calls) == 2 and calls[0] != calls[1], "the write should have conflicted once and been redone"
    assert [t.state for t in report.targets] == ["Verified"]
    final = read_bundle(core_v1.read_namespaced_config_map("trust", namespace).data["ca.crt"]).fingerprint_set
    assert final == {fingerprint(c.cert) for c in (ours, theirs, earlier)}


# ---- bad policies: an actionable condition, no crash, no retry storm --------------------------------
def test_bad_policies_get_actionable_conditions_and_no_retry_storm(
        operator, policies, api_client, core_v1, custom_api, unique_name, operator_namespace):
    not_a_ca = certgen.leaf(certgen.root("Some Root"), "not-a-ca.example.com")
    core_v1.create_namespaced_secret(operator_namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=f"{unique_name}-leaf-as-ca", labels={MANAGED_BY: f"{unique_name}-ca"}),
        type="kubernetes.io/tls",
        data=certgen.tls_secret(not_a_ca)["data"]))
    label = uuid.uuid4().hex[:8]
    make_policy(policies, f"{unique_name}-ca", label, {"extendedKeyUsages": ["serverAuth"]},
                ca={"secretName": f"{unique_name}-leaf-as-ca"})
    make_policy(policies, f"{unique_name}-none", f"no-such-{label}", {"extendedKeyUsages": ["serverAuth"]})

    st = wait_for(lambda: (lambda s: s if condition(s, "Degraded").get("status") == "True" else None)(
        policy_status(custom_api, f"{unique_name}-ca")), timeout=30, what="Degraded on the policy with a leaf as its CA")
    degraded = condition(st, "Degraded")
    assert degraded["reason"] == "CAUnusable"
    assert f"{unique_name}-leaf-as-ca" in degraded["message"] and "not a CA" in degraded["message"]
    st = wait_for(lambda: (lambda s: s if condition(s, "Compliant").get("reason") == "NothingSelected" else None)(
        policy_status(custom_api, f"{unique_name}-none")), timeout=30, what="NothingSelected")
    assert condition(st, "Ready")["status"] == "True"
    assert condition(st, "Compliant")["status"] == "Unknown"  # judged nothing: not "compliant"
    assert condition(st, "Compliant")["message"].startswith(
        "The selector matches no Secret (namespaceSelector matches 0 namespaces), so compliance is unknown")

    # Settled: for three of the operator's retry periods (CERTPOLICY_ERROR_RETRY and the re-checks,
    # 2 s in the suite) neither policy is written again (no retry loop on the failure).
    raw = RawClient(api_client)
    path = "/apis/certpolicy.io/v1alpha1/certificatepolicies"
    listing = raw.get(path)
    window = int(3 * timers.RECHECK)
    modified = [ev["object"]["metadata"]["name"] for ev in raw.watch(
        path, {"resourceVersion": listing["metadata"]["resourceVersion"], "timeoutSeconds": window}, timeout=(10, 20))
        if ev["type"] == "MODIFIED" and ev["object"]["metadata"]["name"].startswith(unique_name)]
    assert modified == [], f"policies kept being written: {modified}"
    events = core_v1.list_namespaced_event("default", field_selector=f"involvedObject.name={unique_name}-ca").items
    assert [e.reason for e in events].count("CAUnusable") <= 1

"""The rotation's promise where outages happen: in workloads that hold files, not API objects.

Two mTLS workloads run as processes. Each re-reads its leaf Secret and its trust bundle ConfigMap
from the API every few hundred milliseconds and uses what it read only after a lag of its own
(1.2 s and 2.0 s, out of phase): the kubelet's sync plus a program's reload, shortened. Every
100 ms each one handshakes with the other, presenting its leaf and verifying the peer against its
bundle. Three rotations run back to back, the second with the operator SIGKILLed during step 4
(AwaitLeaves). Not one handshake may fail. Delays are shortened to 3 s (longer than any
workload's lag plus period) so that the test fits the CI budget.
"""

from __future__ import annotations

import uuid

from rotation_support import MTLSPair

from certpolicy.kube.namespaces import ensure_namespace
from crd import GROUP, PLURAL, VERSION
from kubewait import wait_for
from operator_process import OperatorProcess


def test_two_mtls_workloads_never_fail_a_handshake_through_three_rotations_and_a_crash(
        cluster, crd, operator_namespace, custom_api, core_v1, policies, unique_name, tmp_path):
    label = uuid.uuid4().hex[:8]
    namespaces = [f"t-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for ns in namespaces:
        ensure_namespace(core_v1, ns, labels={"mtls": label})
    policies({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
        "spec": {
            "selector": {"namespaceSelector": {"matchLabels": {"mtls": label}}},
            "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
            "ca": {"secretName": f"{unique_name}-ca"},
            "trustBundles": [{"configMap": {"name": "mtls-ca"}, "namespaceSelector": {"matchLabels": {"mtls": label}}}],
            "issuance": [{"secretName": f"app-{i}", "namespace": ns, "dnsNames": [f"app-{i}.mtls.test"]}
                         for i, ns in enumerate(namespaces)],
            "rotation": {"propagationDelay": "3s", "leafPropagationDelay": "3s"},
        },
    })
    op = OperatorProcess(cluster, tmp_path / "operator.log")
    op.start()
    pair = None

    def status() -> dict:
        return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name).get("status") or {}

    try:
        wait_for(lambda: (status().get("issued") or {}).get("ready") == 2, timeout=60, what="leaves issued")
        pair = MTLSPair(tmp_path, "mtls-ca", [(namespaces[0], "app-0", 1.2, 0.5, 0.0),
                                              (namespaces[1], "app-1", 2.0, 0.7, 0.35)])
        wait_for(lambda: pair.totals()[0] >= 20, timeout=60, what="the workloads handshake")
        per_rotation = []
        for rid in ("mtls-1", "mtls-2", "mtls-3"):
            before = pair.totals()
            custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                                   {"metadata": {"annotations": {"certpolicy.io/rotate": rid}}})
            if rid == "mtls-2":
                wait_for(lambda rid=rid: (r := status().get("rotation") or {}).get("id") == rid
                         and r.get("step") == 4, timeout=60, interval=0.05, what="rotation 2 in AwaitLeaves")
                op.kill()
                op.start()

            def completed(rid=rid):
                rot = status().get("rotation") or {}
                hist = rot.get("history") or []
                return not rot.get("id") and hist and hist[0]["id"] == rid and hist[0]["outcome"] == "Completed"

            wait_for(completed, timeout=90, what=f"rotation {rid} completed")
            # Both workloads load the new leaf and the bundle without the old CA, and keep talking.
            done = pair.totals()[0]
            wait_for(lambda done=done: pair.totals()[0] >= done + 40, timeout=30, what="handshakes after the rotation")
            after = pair.totals()
            per_rotation.append((rid, after[0] - before[0], after[1] - before[1]))
        counts = pair.counts()  # before stopping: a peer shutting down is not a rotation's doing
    finally:
        if pair is not None:
            pair.stop()
        op.stop()
    for rid, ok, failed in per_rotation:
        print(f"rotation {rid}: {ok} handshakes succeeded, {failed} failed")
    ok, failed = sum(c["ok"] for c in counts), sum(c["fail"] for c in counts)
    print(f"total: {ok} succeeded, {failed} failed; contents loaded per workload: {[c['loads'] for c in counts]}")
    assert failed == 0, [c["errors"] for c in counts]
    assert ok > 0 and all(r[1] > 0 for r in per_rotation)
    assert all(c["loads"] >= 1 + 3 * 2 for c in counts)  # each rotation changed its bundle twice and its leaf once


def test_a_deleted_ca_secret_is_replaced_through_the_five_steps_without_a_failed_handshake(
        operator, operator_namespace, custom_api, core_v1, policies, unique_name, tmp_path):
    """Deleting the CA Secret loses the CA's key. The replacement CA goes through the five steps
    with their delays (never an instant swap, which would re-issue leaves that the lagging peer's
    bundle does not trust yet), while two mTLS workloads keep talking."""
    import datetime as dt

    label = uuid.uuid4().hex[:8]
    namespaces = [f"t-{uuid.uuid4().hex[:10]}" for _ in range(2)]
    for ns in namespaces:
        ensure_namespace(core_v1, ns, labels={"lost": label})
    ca_secret = f"{unique_name}-ca"
    policies({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
        "spec": {
            "selector": {"namespaceSelector": {"matchLabels": {"lost": label}}},
            "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
            "ca": {"secretName": ca_secret},
            "trustBundles": [{"configMap": {"name": "lost-ca"}, "namespaceSelector": {"matchLabels": {"lost": label}}}],
            "issuance": [{"secretName": f"app-{i}", "namespace": ns, "dnsNames": [f"app-{i}.lost.test"]}
                         for i, ns in enumerate(namespaces)],
            "rotation": {"propagationDelay": "3s", "leafPropagationDelay": "3s"},
        },
    })

    def status() -> dict:
        return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name).get("status") or {}

    def degraded() -> dict:
        return next((c for c in status().get("conditions") or () if c["type"] == "Degraded"), {})

    pair = None
    try:
        wait_for(lambda: (status().get("issued") or {}).get("ready") == 2, timeout=60, what="leaves issued")
        old = status()["ca"]["fingerprint"]
        pair = MTLSPair(tmp_path, "lost-ca", [(namespaces[0], "app-0", 1.2, 0.5, 0.0),
                                              (namespaces[1], "app-1", 2.0, 0.7, 0.35)])
        wait_for(lambda: pair.totals()[0] >= 20, timeout=60, what="the workloads handshake")
        deleted_at = dt.datetime.now(dt.UTC)
        core_v1.delete_namespaced_secret(ca_secret, operator_namespace)

        wait_for(lambda: degraded().get("reason") == "CAMissing" and degraded().get("status") == "True",
                 timeout=30, interval=0.05, what="Degraded/CAMissing")
        assert "five rotation steps" in degraded()["message"]
        warnings = [e for e in core_v1.list_namespaced_event("default").items
                    if e.involved_object.name == unique_name and e.reason == "CAMissing"]
        assert warnings and warnings[0].type == "Warning"

        def completed():
            rot = status().get("rotation") or {}
            hist = rot.get("history") or []
            return hist[0] if not rot.get("id") and hist and hist[0]["trigger"] == "CAMissing" \
                and hist[0]["outcome"] == "Completed" else None

        done = wait_for(completed, timeout=90, what="the replacement rotation completed")
        finished = dt.datetime.now(dt.UTC)
        assert done["oldCA"] == old and done["newCA"] != old
        st = status()
        assert st["ca"]["fingerprint"] == done["newCA"]
        assert {h["fingerprint"]: h["state"] for h in st["ca"]["history"]}[old] == "retired"
        wait_for(lambda: degraded().get("reason") != "CAMissing", timeout=30, what="CAMissing cleared")
        before = pair.totals()[0]
        wait_for(lambda: pair.totals()[0] >= before + 40, timeout=30, what="handshakes after the replacement")
        counts = pair.counts()
    finally:
        if pair is not None:
            pair.stop()
    ok, failed = sum(c["ok"] for c in counts), sum(c["fail"] for c in counts)
    took = (finished - deleted_at).total_seconds()
    print(f"CA Secret deleted: replaced through five steps in {took:.1f} s (two 3 s delays); "
          f"{ok} handshakes succeeded, {failed} failed")
    assert failed == 0, [c["errors"] for c in counts]
    # Two 3 s delays (bundles, then leaves) at the least: never an instant swap.
    assert took >= 6, took
    assert all(c["loads"] >= 3 for c in counts)  # the bundle changed twice and the leaf once

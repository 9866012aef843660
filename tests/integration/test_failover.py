"""Two operator processes, one leader: failover during a rotation, on a real API server.

Each replica is a real ``certpolicy run`` process with its own identity (``--identity``), hence its
own user agent. The control plane of this module logs every write request to an audit log
(metadata only), so each write is attributed to the replica that sent it, with the API server's
own timestamps: nothing here trusts the operator's account of what it did.

- SIGKILL: the leader dies in the middle of a rotation; the standby takes over within the Lease's
  duration (default timing, 15/10/2 s: the figure docs/operations.md records) and completes the
  rotation with exactly one new CA.
- SIGSTOP: the leader is frozen (as a network partition or a paused VM would: it can neither renew
  nor write); the standby takes over; when the old leader runs again it must not write at all,
  not even once before noticing, and becomes a standby in the same process.
- SIGTERM: a clean stop releases the Lease; the standby takes over at its next read.

In both: no write of one replica overlaps in time a write of the other, the standby wrote nothing
before it held the Lease, and no Event was posted twice.

Times are recorded (tests/figures.py), not asserted as goals: each bound tells two behaviours apart
(a takeover at the Lease's expiry vs before it or a whole Lease late; a handover on release vs on
expiry), with seconds of slack for a loaded machine.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import signal
import urllib.request
import uuid
from collections import Counter
from dataclasses import dataclass

import kubernetes
import pytest
from test_rotation import CASecretCounter

import figures
import operator_process
from certpolicy.kube.crd import install_crd
from certpolicy.kube.lease import DEFAULT_LEASE_NAMESPACE
from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.kube.rawapi import RawClient
from certpolicy.localcluster import LocalCluster
from certpolicy.localcluster.cluster import free_port
from crd import GROUP, PLURAL, VERSION
from kubewait import wait_for
from operator_process import OperatorProcess

OPERATOR_NS = "certpolicy-system"
#: certpolicy run's defaults (--lease-duration, --retry-period): what the tests without timing flags run with.
LEASE_DURATION, RETRY_PERIOD = 15.0, 2.0
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [create, update, patch, delete, deletecollection]
  - level: None
"""


@dataclass(frozen=True)
class Write:
    replica: str
    verb: str
    resource: str
    namespace: str
    name: str
    code: int
    received: dt.datetime
    completed: dt.datetime

    @property
    def is_lease(self) -> bool:
        return self.resource == "leases"


AGENT = re.compile(r"^certpolicy-operator/\S+ \((?P<replica>[^)]+)\)$")


def operator_writes(cluster: LocalCluster, since: dt.datetime) -> list[Write]:
    """Every write request the operator's replicas sent since ``since`` (this test's; the module's
    tests share the control plane), from the API server's audit log."""
    out = []
    for line in cluster.audit_log.read_text().splitlines():
        ev = json.loads(line)
        m = AGENT.match(ev.get("userAgent") or "")
        if not m:
            continue
        ref = ev.get("objectRef") or {}
        if dt.datetime.fromisoformat(ev["requestReceivedTimestamp"]) < since:
            continue
        out.append(Write(m["replica"], ev["verb"], ref.get("resource", "") + ("/" + ref["subresource"]
                                                                         if ref.get("subresource") else ""),
                         ref.get("namespace", ""), ref.get("name", ""), (ev.get("responseStatus") or {}).get("code", 0),
                         dt.datetime.fromisoformat(ev["requestReceivedTimestamp"]),
                         dt.datetime.fromisoformat(ev["stageTimestamp"])))
    return out


@pytest.fixture(scope="module")
def ha():
    """A control plane of this module's own, with the audit log on."""
    cluster = LocalCluster(audit_policy=AUDIT_POLICY)
    cluster.start()
    try:
        install_crd(cluster.kubeconfig)
        api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        ensure_namespace(kubernetes.client.CoreV1Api(api), OPERATOR_NS)
        yield cluster, api
    finally:
        cluster.stop()


class Replicas:
    def __init__(self, cluster, tmp_path, lease: str, timing: list[str]):
        self.cluster, self.lease = cluster, lease
        self.metrics = {name: free_port() for name in ("replica-a", "replica-b")}
        self.procs = {name: OperatorProcess(cluster, tmp_path / f"{name}.log",
                                            args=["--identity", name, "--lease-name", lease, *timing,
                                                  "--metrics-port", str(self.metrics[name])])
                      for name in ("replica-a", "replica-b")}

    def __getitem__(self, name: str) -> OperatorProcess:
        return self.procs[name]

    def stop(self):
        for p in self.procs.values():
            if p.proc and p.proc.poll() is None:
                p.proc.send_signal(signal.SIGCONT)  # a frozen one must be able to die
            p.stop()


def lease_spec(raw: RawClient, name: str) -> dict:
    return raw.get(f"/apis/coordination.k8s.io/v1/namespaces/{DEFAULT_LEASE_NAMESPACE}/leases/{name}")["spec"]


def scrape(port: int) -> dict[str, float]:
    """The replica's /metrics, as {series: value} (no labels parsed: the series line as is)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:  # noqa: S310 - loopback
        lines = resp.read().decode().splitlines()
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in lines if line and not line.startswith("#")}


def health(op: OperatorProcess) -> dict | None:
    return operator_process.health(op.liveness)


def setup_policy(api, name: str, propagation: str) -> tuple[dict, list[str]]:
    core = kubernetes.client.CoreV1Api(api)
    label = uuid.uuid4().hex[:8]
    namespaces = []
    for _ in range(2):
        ns = f"t-{uuid.uuid4().hex[:10]}"
        ensure_namespace(core, ns, labels={"rot": label})
        namespaces.append(ns)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
        "spec": {
            "selector": {"namespaceSelector": {"matchLabels": {"rot": label}}},
            "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
            "ca": {"secretName": f"{name}-ca"},
            "trustBundles": [{"configMap": {"name": "rot-ca"}, "namespaceSelector": {"matchLabels": {"rot": label}}}],
            "issuance": [{"secretName": f"leaf-{i}", "namespace": ns, "dnsNames": [f"leaf-{i}.rot.test"]}
                         for i, ns in enumerate(namespaces)],
            "rotation": {"propagationDelay": propagation},
        },
    }
    kubernetes.client.CustomObjectsApi(api).create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
    return body, namespaces


def status(api, name: str) -> dict:
    return kubernetes.client.CustomObjectsApi(api).get_cluster_custom_object(GROUP, VERSION, PLURAL, name).get(
        "status") or {}


def settled(api, name: str):
    st = status(api, name)
    return st if (st.get("issued") or {}).get("ready") == 2 and (st.get("bundleTargets") or {}).get("verified") == 2 \
        else None


def rotate(api, name: str, rid: str) -> None:
    kubernetes.client.CustomObjectsApi(api).patch_cluster_custom_object(
        GROUP, VERSION, PLURAL, name, {"metadata": {"annotations": {"certpolicy.io/rotate": rid}}})


def completed(api, name: str, rid: str):
    rot = status(api, name).get("rotation") or {}
    hist = rot.get("history") or []
    return hist[0] if not rot.get("id") and hist and hist[0]["id"] == rid and hist[0]["outcome"] == "Completed" \
        else None


def start_pair(ha_cluster, api, tmp_path, timing: list[str]) -> tuple[Replicas, RawClient]:
    """replica-a first, so that it leads; replica-b a warm standby (Ready, writing nothing)."""
    raw = RawClient(api, gated=False)
    replicas = Replicas(ha_cluster, tmp_path, f"ha-{uuid.uuid4().hex[:6]}", timing)
    try:
        replicas["replica-a"].start()
        wait_for(lambda: lease_spec(raw, replicas.lease)["holderIdentity"] == "replica-a", timeout=60,
                 what="replica-a holds the Lease")
        replicas["replica-b"].start()
        standby = wait_for(lambda: health(replicas["replica-b"]), timeout=60, what="replica-b's standby /healthz")
        assert standby["role"] == "standby" and standby["watches"] == "ok", standby
        leader, warm = scrape(replicas.metrics["replica-a"]), scrape(replicas.metrics["replica-b"])
        assert leader["certpolicy_leader"] == 1 and warm["certpolicy_leader"] == 0
    except BaseException:
        replicas.stop()  # the caller's clean-up never runs: processes left behind outlive the session
        raise
    return replicas, raw


def wait_standby_warm(replicas: Replicas) -> float:
    """The standby's inventory holds the TLS Secrets the leader's does (the policy's CA and leaves
    among them), though it wrote none of them."""
    def same():
        a, b = (scrape(replicas.metrics[r])["certpolicy_inventory_secrets"] for r in ("replica-a", "replica-b"))
        return a == b >= 3 and b
    return wait_for(same, timeout=30, what="the standby's inventory holds what the leader's does")


def assert_one_writer(writes: list[Write], old: str, new: str, new_acquired: dt.datetime) -> tuple[int, int]:
    """No write of ``old`` overlaps a write of ``new``; ``new`` wrote nothing but the Lease before
    it held it. Returns the two replicas' counts of non-Lease writes."""
    old_w = [w for w in writes if w.replica == old and not w.is_lease]
    new_w = [w for w in writes if w.replica == new and not w.is_lease]
    assert old_w and new_w, (len(old_w), len(new_w))
    last_old, first_new = max(w.completed for w in old_w), min(w.received for w in new_w)
    assert last_old < first_new, f"{old}'s last write ended {last_old}, after {new}'s first began {first_new}"
    assert first_new >= new_acquired, f"{new} wrote at {first_new}, before it acquired the Lease at {new_acquired}"
    return len(old_w), len(new_w)


def assert_no_duplicate_events(writes: list[Write], api, policy: str, namespaces: list[str]) -> int:
    """Every Event was created once (a second attempt at the same transition gets 409, not a copy):
    no Event name created twice, and no two Events in the API report the same thing."""
    created = Counter((w.namespace, w.name) for w in writes if w.resource == "events" and w.verb == "create"
                      and w.code == 201)
    assert [k for k, n in created.items() if n > 1] == []
    core = kubernetes.client.CoreV1Api(api)
    events = [e for ns in ["default", *namespaces] for e in core.list_namespaced_event(ns).items
              if e.reporting_component == "certpolicy-operator" and (ns != "default" or e.involved_object.name == policy)]
    same = Counter((e.involved_object.uid, e.reason, e.message) for e in events)
    assert [k for k, n in same.items() if n > 1] == []
    return len(events)


def test_leader_killed_during_rotation_standby_takes_over_within_the_lease(ha, tmp_path):
    """Default timing (15/10/2 s)."""
    cluster, api = ha
    began = dt.datetime.now(dt.UTC)
    name = f"ha-kill-{uuid.uuid4().hex[:6]}"
    counter = CASecretCounter(RawClient(api), OPERATOR_NS)
    replicas, raw = start_pair(cluster, api, tmp_path, [])
    try:
        _, namespaces = setup_policy(api, name, propagation="8s")
        old_ca = wait_for(lambda: settled(api, name), timeout=90, what="CA, bundles and leaves in place")["ca"]["fingerprint"]
        wait_standby_warm(replicas)
        rotate(api, name, "kill")
        wait_for(lambda: (status(api, name).get("rotation") or {}).get("step", 0) >= 2, timeout=60, interval=0.05,
                 what="rotation in step 2")
        step = status(api, name)["rotation"]["step"]
        held = lease_spec(raw, replicas.lease)
        killed = dt.datetime.now(dt.UTC)
        replicas["replica-a"].proc.send_signal(signal.SIGKILL)
        replicas["replica-a"].proc.wait(10)
        spec = wait_for(lambda: (s := lease_spec(raw, replicas.lease))["holderIdentity"] == "replica-b" and s,
                        timeout=40, interval=0.05, what="replica-b takes the Lease over")
        acquired = dt.datetime.fromisoformat(spec["acquireTime"])
        last_renewal = dt.datetime.fromisoformat(held["renewTime"])
        takeover = (acquired - killed).total_seconds()
        figures.record(f"failover after SIGKILL of the leader (lease 15 s, renew deadline 10 s, retry 2 s): "
                       f"new leader {takeover:.1f} s after the kill, "
                       f"{(acquired - last_renewal).total_seconds():.1f} s after the last renewal seen")
        assert spec["leaseTransitions"] == held["leaseTransitions"] + 1
        # Not before the Lease expired: its duration after the last renewal, less the standby's
        # dating error (one retry period, see kube.lease; the last renewal came at or after the one
        # seen here). Load only delays the takeover: a whole second Lease later would be a standby
        # that missed the expiry.
        since_renewal = (acquired - last_renewal).total_seconds()
        assert since_renewal >= LEASE_DURATION - 2 * RETRY_PERIOD, f"taken {since_renewal:.1f} s after a renewal"
        assert takeover < 2 * LEASE_DURATION, f"takeover took {takeover:.1f} s"
        done = wait_for(lambda: completed(api, name, "kill"), timeout=120, what="rotation completed by replica-b")
    finally:
        replicas.stop()
        counter.stop()
    assert done["newCA"] and done["newCA"] != old_ca
    assert len(counter.by_rotation.get("kill", ())) == 1, counter.by_rotation  # exactly one new CA
    writes = operator_writes(cluster, began)
    a, b = assert_one_writer(writes, "replica-a", "replica-b", acquired)
    events = assert_no_duplicate_events(writes, api, name, namespaces)
    figures.record(f"failover after SIGKILL in rotation step {step}: replica-a {a} writes, replica-b {b} writes, "
                   f"none overlapping; {events} Events, none duplicated")


def test_frozen_leader_never_writes_again_and_becomes_a_standby(ha, tmp_path):
    """A partition simulated by SIGSTOP: the frozen leader can neither renew nor write. Shortened
    timing (6/4/1 s) keeps the test short; the default figures come from the test above."""
    cluster, api = ha
    began = dt.datetime.now(dt.UTC)
    name = f"ha-stop-{uuid.uuid4().hex[:6]}"
    counter = CASecretCounter(RawClient(api), OPERATOR_NS)
    timing = ["--lease-duration", "6", "--renew-deadline", "4", "--retry-period", "1"]
    replicas, raw = start_pair(cluster, api, tmp_path, timing)
    a = replicas["replica-a"]
    try:
        _, namespaces = setup_policy(api, name, propagation="4s")
        old_ca = wait_for(lambda: settled(api, name), timeout=90, what="CA, bundles and leaves in place")["ca"]["fingerprint"]
        rotate(api, name, "stop")
        wait_for(lambda: (status(api, name).get("rotation") or {}).get("step", 0) >= 2, timeout=60, interval=0.05,
                 what="rotation in step 2")
        frozen = dt.datetime.now(dt.UTC)
        a.proc.send_signal(signal.SIGSTOP)
        spec = wait_for(lambda: (s := lease_spec(raw, replicas.lease))["holderIdentity"] == "replica-b" and s,
                        timeout=30, interval=0.05, what="replica-b takes the Lease over")
        acquired = dt.datetime.fromisoformat(spec["acquireTime"])
        # Let the new leader write before the old one runs again: a real overlap would show now.
        wait_for(lambda: [w for w in operator_writes(cluster, began) if w.replica == "replica-b" and not w.is_lease],
                 timeout=30, what="replica-b writes as the leader")
        # Give the frozen leader something to write when it runs again: a spec change (a new
        # generation: every replica's next pass would write the policy's status).
        kubernetes.client.CustomObjectsApi(api).patch_cluster_custom_object(
            GROUP, VERSION, PLURAL, name, {"spec": {"requirements": {"minimumRSABits": 3072}}})
        resumed = dt.datetime.now(dt.UTC)
        a.proc.send_signal(signal.SIGCONT)
        # It stops kopf and is a standby again, in the same process, its inventory kept.
        again = wait_for(lambda: (h := health(a)) and h.get("role") == "standby" and h, timeout=40,
                         what="replica-a a standby again")
        assert a.proc.poll() is None and again["watches"] == "ok"
        assert scrape(replicas.metrics["replica-a"])["certpolicy_leader"] == 0
        done = wait_for(lambda: completed(api, name, "stop"), timeout=120, what="rotation completed by replica-b")
        # ... and leads again, in the same process, when the other replica dies.
        releading = dt.datetime.now(dt.UTC)
        replicas["replica-b"].proc.send_signal(signal.SIGKILL)
        replicas["replica-b"].proc.wait(10)
        wait_for(lambda: lease_spec(raw, replicas.lease)["holderIdentity"] == "replica-a", timeout=30,
                 what="replica-a leads again")
        rotate(api, name, "again")
        wait_for(lambda: completed(api, name, "again"), timeout=120, what="rotation completed by replica-a")
    finally:
        replicas.stop()
        counter.stop()
    assert done["newCA"] and done["newCA"] != old_ca
    assert len(counter.by_rotation.get("stop", ())) == 1, counter.by_rotation
    assert len(counter.by_rotation.get("again", ())) == 1, counter.by_rotation
    writes = [w for w in operator_writes(cluster, began) if w.received < releading]
    late = [w for w in writes if w.replica == "replica-a" and w.received > frozen]
    # Nothing but, at most, a Lease renewal it had prepared before the freeze, which the API server
    # refused (409: it carries the resourceVersion read before the takeover).
    assert [w for w in late if not (w.is_lease and w.code == 409)] == [], \
        f"the frozen leader wrote after it was stopped: {late}"
    a_n, b_n = assert_one_writer(writes, "replica-a", "replica-b", acquired)
    events = assert_no_duplicate_events(writes, api, name, namespaces)
    log = a.log_path.read_text()
    assert "lost the leader Lease" in log and "standby again" in log
    refused = log.count("not the leader")  # writes its loop attempted after the resume, refused by the gate
    figures.record(f"frozen leader (SIGSTOP, lease 6 s / renew 4 s / retry 1 s): new leader "
                   f"{(acquired - frozen).total_seconds():.1f} s after the freeze; resumed after "
                   f"{(resumed - frozen).total_seconds():.1f} s, it wrote nothing ({refused} attempts refused by its "
                   f"write gate, {len(late)} stale Lease renewals refused with 409) and was a standby again; "
                   f"replica-a {a_n} writes, replica-b {b_n}, none overlapping; {events} Events, none duplicated")


def test_leader_stopped_cleanly_hands_over_at_the_next_read(ha, tmp_path):
    """A rolling update or a drain: SIGTERM. The leader stops kopf, closes its gate and releases
    the Lease; the standby takes over at its next read, not after the Lease's 15 s."""
    cluster, api = ha
    began = dt.datetime.now(dt.UTC)
    name = f"ha-term-{uuid.uuid4().hex[:6]}"
    counter = CASecretCounter(RawClient(api), OPERATOR_NS)
    replicas, raw = start_pair(cluster, api, tmp_path, [])
    try:
        _, namespaces = setup_policy(api, name, propagation="8s")
        old_ca = wait_for(lambda: settled(api, name), timeout=90, what="CA, bundles and leaves in place")["ca"]["fingerprint"]
        wait_standby_warm(replicas)
        rotate(api, name, "term")
        wait_for(lambda: (status(api, name).get("rotation") or {}).get("step", 0) >= 2, timeout=60, interval=0.05,
                 what="rotation in step 2")
        terminated = dt.datetime.now(dt.UTC)
        replicas["replica-a"].proc.send_signal(signal.SIGTERM)
        assert replicas["replica-a"].proc.wait(30) == 0
        stopped = dt.datetime.now(dt.UTC)
        # Released before it exited: nobody holds the Lease, or the standby already does.
        assert lease_spec(raw, replicas.lease)["holderIdentity"] in ("", "replica-b")
        spec = wait_for(lambda: (s := lease_spec(raw, replicas.lease))["holderIdentity"] == "replica-b" and s,
                        timeout=20, interval=0.05, what="replica-b takes the released Lease")
        acquired = dt.datetime.fromisoformat(spec["acquireTime"])
        done = wait_for(lambda: completed(api, name, "term"), timeout=120, what="rotation completed by replica-b")
    finally:
        replicas.stop()
        counter.stop()
    handover = (acquired - terminated).total_seconds()
    # Released: the standby's next read (a retry period). Had it waited for the expiry, that would
    # be the Lease's duration after the leader's last renewal (at most a retry period before it
    # stopped), less the standby's dating error: no sooner than stop + duration - 2 x retry.
    after_stop = (acquired - stopped).total_seconds()
    assert after_stop < LEASE_DURATION - 2 * RETRY_PERIOD, f"taken {after_stop:.1f} s after the stop: at expiry?"
    assert done["newCA"] and done["newCA"] != old_ca
    assert len(counter.by_rotation.get("term", ())) == 1, counter.by_rotation
    writes = operator_writes(cluster, began)
    a_n, b_n = assert_one_writer(writes, "replica-a", "replica-b", acquired)
    events = assert_no_duplicate_events(writes, api, name, namespaces)
    figures.record(f"clean handover (SIGTERM to the leader, default timing): new leader {handover:.1f} s after the "
                   f"signal ({(stopped - terminated).total_seconds():.1f} s for the old leader to stop); "
                   f"replica-a {a_n} writes, replica-b {b_n}, none overlapping; {events} Events, none duplicated")

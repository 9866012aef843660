"""The Lease elector on a real API server: one holder, takeover after expiry, release, loss.

Short durations (lease 3 s, renew deadline 2 s, retry 0.5 s) keep these fast; the default 15 s
figures are measured with operator processes in test_failover.py. No assertion is a timing goal
(those are for benchmarks on a quiet machine): each bound sits between the two things the test
tells apart (a takeover at expiry vs before it; a handover on release vs on expiry), with the
slack of a whole Lease on the side a loaded machine pushes towards. The figures are recorded.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import os
import subprocess
import sys
import time
import uuid

import kubernetes
import pytest

import figures
from certpolicy.kube.lease import LeaderElector, LeaseConfig
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.writegate import WriteGate
from kubewait import wait_for
from tcpforward import Forwarder

SHORT = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5}


@pytest.fixture
def lease_name():
    return f"lease-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def electors(api_client, operator_namespace, lease_name):
    made: list[LeaderElector] = []

    def make(identity: str, **timing: float) -> LeaderElector:
        config = LeaseConfig(namespace=operator_namespace, identity=identity, name=lease_name, **{**SHORT, **timing})
        elector = LeaderElector(RawClient(api_client, gated=False), config, WriteGate())
        made.append(elector)
        return elector.start()

    yield make
    for e in made:
        e.stop(release=False)


def spec(raw: RawClient, config: LeaseConfig) -> dict:
    return raw.get(config.path)["spec"]


def test_one_holder_then_takeover_after_the_lease_expires(api_client, electors):
    raw = RawClient(api_client, gated=False)
    a = electors("replica-a")
    assert a.wait_leading(10) and a.gate.is_open()
    b = electors("replica-b")
    first = spec(raw, a.config)
    assert first["holderIdentity"] == "replica-a" and first["leaseDurationSeconds"] == 3
    assert first["leaseTransitions"] == 0 and first["acquireTime"] and first["renewTime"]
    wait_for(lambda: spec(raw, a.config)["renewTime"] != first["renewTime"], timeout=5, what="a renewal")
    assert not b.leading.is_set() and not b.gate.is_open()  # a standby's gate stays closed

    crashed = time.monotonic()
    a.stop(release=False)  # a crash: the Lease is not released
    assert not a.gate.is_open()
    assert b.wait_leading(10)
    took = time.monotonic() - crashed
    after = spec(raw, a.config)
    assert after["holderIdentity"] == "replica-b" and after["leaseTransitions"] == 1
    assert after["acquireTime"] != first["acquireTime"]
    figures.record(f"Lease takeover after a crash (lease 3 s, retry 0.5 s): {took:.2f} s")
    # Never before the Lease expired: no sooner than duration - retry period after a's last renewal,
    # which came before the crash (kube.lease's docstring); load only delays it. And not a second
    # Lease later: the standby took it at its expiry.
    lease, retry = SHORT["lease_duration"], SHORT["retry_period"]
    assert lease - 2 * retry - 0.2 <= took < 2 * lease, took


def test_release_hands_over_at_the_next_try(api_client, electors):
    """A 30 s Lease: a handover at b's next try (0.5 s) and one at the Lease's expiry are far apart."""
    raw = RawClient(api_client, gated=False)
    long = {"lease_duration": 30.0, "renew_deadline": 20.0}
    a = electors("replica-a", **long)
    assert a.wait_leading(10)
    b = electors("replica-b", **long)
    wait_for(lambda: b.observed_holder == "replica-a", timeout=5, what="b has read the Lease as a's")
    assert not b.leading.is_set()
    released = time.monotonic()
    a.stop(release=True)
    assert spec(raw, a.config)["holderIdentity"] in ("", "replica-b")
    assert b.wait_leading(15)
    took = time.monotonic() - released
    figures.record(f"Lease handover on release (retry 0.5 s): {took:.2f} s")
    assert took < long["lease_duration"] / 2, took  # b's next tries, not the 30 s Lease's expiry
    assert spec(raw, a.config)["leaseTransitions"] == 1


def test_leader_that_sees_another_holder_closes_its_gate_at_once(api_client, electors):
    raw = RawClient(api_client, gated=False)
    a = electors("replica-a")
    assert a.wait_leading(10)
    lost = []
    a.on_lost = lambda: lost.append(a.gate.is_open())
    lease = raw.get(a.config.path)
    lease["spec"]["holderIdentity"] = "intruder"  # someone else took it (e.g. after a partition)
    raw.put(a.config.path, lease)
    # on_lost runs after ``lost`` is set (kube.lease's _lose): wait for the callback itself, or a
    # loaded machine reads the list between the two (seen: [] once in a full run).
    wait_for(lambda: lost, timeout=5, what="a noticed it lost the Lease (on_lost called)")
    assert a.lost.is_set() and lost == [False] and not a.gate.is_open() and not a.leading.is_set()


def test_a_lost_term_s_successor_leads_again_with_the_same_callbacks(api_client, electors):
    """An elector that lost stays lost; ``certpolicy run`` asks again with ``next_term`` when the
    Lease is lost before kopf runs (e.g. during the head start): the successor takes the Lease
    once the intruder's expires, and reports it through the same callbacks."""
    raw = RawClient(api_client, gated=False)
    a = electors("replica-a")
    acquired, lost = [], []
    a.on_acquired, a.on_lost = (lambda: acquired.append("a")), (lambda: lost.append("a"))
    assert a.wait_leading(10)
    lease = raw.get(a.config.path)
    lease["spec"]["holderIdentity"] = "intruder"  # renewed by nobody: it expires after 3 s
    raw.put(a.config.path, lease)
    wait_for(lambda: lost, timeout=5, what="a noticed it lost the Lease")
    assert not a.wait_leading(SHORT["lease_duration"] + 1)  # lost for good, though the Lease expired
    before = len(acquired)  # a's own acquisition may or may not have come after the callback was set
    successor = a.next_term().start()
    try:
        assert successor.wait_leading(10) and successor.gate.is_open()
        wait_for(lambda: len(acquired) == before + 1, timeout=5, what="the successor's on_acquired (a's callback)")
        assert spec(raw, a.config)["holderIdentity"] == "replica-a"
    finally:
        successor.stop(release=True)


def test_a_standby_retries_once_per_period_when_the_api_server_is_gone_after_the_lease_expired(
        api_client, operator_namespace, lease_name):
    """A standby saw another replica's Lease, then lost the API server (connection refused), and
    the Lease's expiry passed: each failed try used to be followed by the next one at once, for ever
    (100 % of a core and ~1 GB of log lines in ten minutes, seen on a test whose control plane went
    away). It now waits a retry period after each failed try."""
    now = dt.datetime.now(dt.UTC)
    kubernetes.client.CoordinationV1Api(api_client).create_namespaced_lease(operator_namespace, {
        "metadata": {"name": lease_name},
        "spec": {"holderIdentity": "gone-leader", "leaseDurationSeconds": 2, "acquireTime": now, "renewTime": now}})
    upstream = int(api_client.configuration.host.rsplit(":", 1)[1])
    forwarder = Forwarder(upstream)
    config = copy.copy(api_client.configuration)
    config.host = f"https://127.0.0.1:{forwarder.port}"
    failures: list[float] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.getMessage().startswith(f"reading Lease {operator_namespace}/{lease_name} failed"):
                failures.append(time.monotonic())

    handler = Count()
    logging.getLogger("certpolicy.leader").addHandler(handler)
    elector = LeaderElector(RawClient(kubernetes.client.ApiClient(config), gated=False),
                            LeaseConfig(namespace=operator_namespace, identity="standby", name=lease_name, **SHORT),
                            WriteGate())
    try:
        elector.start()
        wait_for(lambda: elector.observed_holder == "gone-leader", timeout=10, interval=0.01,
                 what="the standby read the Lease")
        forwarder.close()
        time.sleep(4.0)  # the window counted: the Lease expires within 2 s; the count is what is asserted
        window = [t for t in failures if t >= failures[0] + 2.5] if failures else []
    finally:
        elector.stop(release=False)
        logging.getLogger("certpolicy.leader").removeHandler(handler)
    assert failures, "the API server was never found unreachable"
    # The last 1.5 s, all after the expiry, at one try per 0.5 s retry period: 3, and 2 more of slack
    # for a loaded machine (each try costs up to three refused connections). Before: thousands.
    assert not elector.leading.is_set() and len(window) <= 5, f"{len(window)} failed reads in 1.5 s"


def test_a_new_process_with_the_same_identity_renews_at_once(api_client, electors):
    """A restarted container keeps its Pod's name: it does not wait out its own (30 s) Lease."""
    long = {"lease_duration": 30.0, "renew_deadline": 20.0}
    a = electors("replica-a", **long)
    assert a.wait_leading(10)
    a.stop(release=False)
    started = time.monotonic()
    again = electors("replica-a", **long)
    assert again.wait_leading(15)
    took = time.monotonic() - started
    figures.record(f"Lease renewed by a new process with the same identity: {took:.2f} s")
    assert took < long["lease_duration"] / 2, took  # at once, not at the Lease's expiry


@pytest.mark.parametrize("timing, complaint", [
    (["--lease-duration", "10", "--renew-deadline", "10"], "lease duration (10s) must be greater than the renew deadline"),
    (["--renew-deadline", "2", "--retry-period", "2"], "renew deadline (2s) must be greater than 1.2 x retry period"),
])
def test_certpolicy_run_refuses_inconsistent_timing_at_once(cluster, timing, complaint):
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), CERTPOLICY_METRICS_PORT="-1")
    proc = subprocess.run([sys.executable, "-m", "certpolicy.cli", "run", *timing], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and complaint in proc.stderr, proc.stderr

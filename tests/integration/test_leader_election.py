"""The Lease elector on a real API server: one holder, takeover after expiry, release, loss.

Short durations (lease 3 s, renew deadline 2 s, retry 0.5 s) keep these fast; the default 15 s
figures are measured with operator processes in test_failover.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

import pytest

from certpolicy.kube.lease import LeaderElector, LeaseConfig
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.writegate import WriteGate
from kubewait import wait_for

SHORT = {"lease_duration": 3.0, "renew_deadline": 2.0, "retry_period": 0.5}


@pytest.fixture
def lease_name():
    return f"lease-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def electors(api_client, operator_namespace, lease_name):
    made: list[LeaderElector] = []

    def make(identity: str) -> LeaderElector:
        config = LeaseConfig(namespace=operator_namespace, identity=identity, name=lease_name, **SHORT)
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
    # At most the Lease's duration after a's last renewal (which came before the crash), and
    # no sooner than duration - retry period after it (kube.lease's docstring).
    assert 3.0 - 2 * 0.5 - 0.2 <= took <= 3.0 + 0.5, took


def test_release_hands_over_at_the_next_try(api_client, electors):
    raw = RawClient(api_client, gated=False)
    a = electors("replica-a")
    assert a.wait_leading(10)
    b = electors("replica-b")
    wait_for(lambda: b.observed_holder == "replica-a", timeout=5, what="b has read the Lease as a's")
    assert not b.leading.is_set()
    released = time.monotonic()
    a.stop(release=True)
    assert spec(raw, a.config)["holderIdentity"] in ("", "replica-b")
    assert b.wait_leading(5)
    assert time.monotonic() - released < 0.5 + 0.5  # one retry period, not the 3 s lease
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
    wait_for(lambda: a.lost.is_set(), timeout=5, what="a noticed it lost the Lease")
    assert lost == [False] and not a.gate.is_open() and not a.leading.is_set()


def test_a_new_process_with_the_same_identity_renews_at_once(api_client, electors):
    """A restarted container keeps its Pod's name: it does not wait out its own Lease."""
    a = electors("replica-a")
    assert a.wait_leading(10)
    a.stop(release=False)
    started = time.monotonic()
    again = electors("replica-a")
    assert again.wait_leading(5)
    assert time.monotonic() - started < 1.5


@pytest.mark.parametrize("timing, complaint", [
    (["--lease-duration", "10", "--renew-deadline", "10"], "lease duration (10s) must be greater than the renew deadline"),
    (["--renew-deadline", "2", "--retry-period", "2"], "renew deadline (2s) must be greater than 1.2 x retry period"),
])
def test_certpolicy_run_refuses_inconsistent_timing_at_once(cluster, timing, complaint):
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), CERTPOLICY_METRICS_PORT="-1")
    proc = subprocess.run([sys.executable, "-m", "certpolicy.cli", "run", *timing], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 2 and complaint in proc.stderr, proc.stderr

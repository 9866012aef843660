"""The Lease record's rules (client-go's leaderelection semantics), without an API server."""

from __future__ import annotations

import datetime as dt

import pytest

from certpolicy.kube.lease import LeaseConfig, LeaseRecord, claimed, held_by_other, micro_time

NOW = dt.datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=dt.UTC)


def test_defaults_are_client_gos_and_validated():
    cfg = LeaseConfig(namespace="ns", identity="pod-a")
    assert (cfg.lease_duration, cfg.renew_deadline, cfg.retry_period) == (15.0, 10.0, 2.0)
    cfg.validate()
    assert cfg.path == "/apis/coordination.k8s.io/v1/namespaces/ns/leases/certpolicy-operator"
    with pytest.raises(ValueError, match="lease duration .* greater than the renew deadline"):
        LeaseConfig(namespace="ns", identity="a", lease_duration=10, renew_deadline=10).validate()
    with pytest.raises(ValueError, match="renew deadline .* greater than 1.2 x retry period"):
        LeaseConfig(namespace="ns", identity="a", renew_deadline=2, retry_period=2).validate()
    with pytest.raises(ValueError, match="identity"):
        LeaseConfig(namespace="ns", identity="").validate()


def test_first_claim_and_renewal_and_takeover():
    first = claimed(None, "pod-a", NOW, 15)
    assert first == LeaseRecord("pod-a", 15, micro_time(NOW), micro_time(NOW), 0)
    assert first.to_spec() == {"holderIdentity": "pod-a", "leaseDurationSeconds": 15, "leaseTransitions": 0,
                               "acquireTime": "2026-11-30T12:00:00.123456Z", "renewTime": "2026-11-30T12:00:00.123456Z"}
    later = NOW + dt.timedelta(seconds=2)
    renewed = claimed(first, "pod-a", later, 15)
    assert (renewed.acquire_time, renewed.renew_time, renewed.transitions) == (first.acquire_time, micro_time(later), 0)
    taken = claimed(renewed, "pod-b", later, 15)
    assert (taken.holder, taken.acquire_time, taken.transitions) == ("pod-b", micro_time(later), 1)
    assert LeaseRecord.from_spec(taken.to_spec()) == taken


def test_held_by_other_counts_on_the_local_clock_since_the_record_changed():
    record = LeaseRecord("pod-a", 15, "t", "t", 3)
    assert held_by_other(record, "pod-b", observed_at=100.0, now=114.9)
    assert not held_by_other(record, "pod-b", observed_at=100.0, now=115.0)  # expired: may take over
    assert not held_by_other(record, "pod-a", observed_at=100.0, now=101.0)  # our own: renew at once
    assert not held_by_other(LeaseRecord("", 1, "t", "t", 3), "pod-b", observed_at=100.0, now=100.1)  # released

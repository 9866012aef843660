"""The write gate: open without election; with it, open only until the elector's deadline."""

from __future__ import annotations

import time

import pytest
from kubernetes.client import ApiClient, Configuration

from certpolicy.kube import rawapi
from certpolicy.kube.writegate import NotLeader, WriteGate


def test_open_without_leader_election():
    gate = WriteGate()
    assert gate.is_open()
    gate.check("PATCH", "/x")  # no exception


def test_closed_until_the_lease_is_held_and_after_the_deadline():
    gate = WriteGate()
    gate.require_lease()
    assert not gate.is_open()
    with pytest.raises(NotLeader, match="refused PATCH /apis/x"):
        gate.check("patch", "/apis/x")
    gate.check("GET", "/apis/x")  # reads are never gated: the standby keeps its inventory warm
    gate.open_until(time.monotonic() + 60)
    assert gate.is_open()
    gate.open_until(time.monotonic() - 1)  # a late renewal never moves the deadline backwards
    assert gate.is_open()
    gate.close()
    assert not gate.is_open()
    gate.open_until(time.monotonic() - 0.001)  # a deadline in the past: closed by the clock alone
    assert not gate.is_open()


@pytest.mark.parametrize("method", ["post", "put", "patch", "delete"])
def test_raw_client_writes_ask_the_gate_before_sending(monkeypatch, method):
    gate = WriteGate()
    gate.require_lease()
    monkeypatch.setattr(rawapi, "WRITE_GATE", gate)
    config = Configuration(host="http://127.0.0.1:9")  # nothing listens: a request that got out would fail differently
    raw = rawapi.RawClient(ApiClient(config))
    call = getattr(raw, method)
    args = ("/api/v1/namespaces/n/secrets/s",) if method == "delete" else ("/api/v1/namespaces/n/secrets/s", {})
    with pytest.raises(NotLeader):
        call(*args)
    ungated = rawapi.RawClient(ApiClient(config), gated=False)
    with pytest.raises(Exception) as excinfo:  # reaches the network (and fails there): not refused by the gate
        getattr(ungated, method)(*args)
    assert not isinstance(excinfo.value, NotLeader)

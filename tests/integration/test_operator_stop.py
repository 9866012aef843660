"""SIGTERM to ``certpolicy run`` at any moment of its life stops it cleanly, with exit 0.

The kubelet sends SIGTERM on every rollout and eviction, often seconds after a Pod started. Before,
a replica that was still starting or a standby died from the signal (status -15: Python's default
disposition) instead of stopping. Each instant below is found by observing the process (its
signal mask, its log, the Lease), never by sleeping: as soon as it catches SIGTERM (the inventory
starting, kopf being imported), as a standby behind another holder of the Lease, and as the
leader (which hands the Lease back), and without leader election (``--no-leader-elect``, where
the process used to linger after kopf stopped until it was killed).
"""

from __future__ import annotations

import datetime as dt
import re
import signal
import uuid
from pathlib import Path

import kubernetes
import pytest

from kubewait import wait_for
from operator_process import OperatorProcess


def catches(pid: int, sig: signal.Signals) -> bool:
    """Whether the process has a handler for ``sig`` (``SigCgt`` in /proc/PID/status)."""
    mask = re.search(r"^SigCgt:\s+([0-9a-f]+)", Path(f"/proc/{pid}/status").read_text(), re.M)
    return bool(mask and int(mask.group(1), 16) & (1 << (sig - 1)))


def log_has(op: OperatorProcess, text: str) -> bool:
    return text in Path(op.log_path).read_text(errors="replace")


@pytest.fixture
def lease_name() -> str:
    return f"stop-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def coordination(api_client):
    return kubernetes.client.CoordinationV1Api(api_client)


def terminate(op: OperatorProcess) -> int:
    op.proc.send_signal(signal.SIGTERM)
    try:
        return op.proc.wait(60)
    finally:
        op.stop()


def started(cluster, tmp_path, namespace: str, lease_name: str, what: str, until, description: str,
            timeout: float = 90, interval: float = 0.1) -> OperatorProcess:
    """An operator process started and observed until ``until(op)``: the instant SIGTERM is sent
    (stopped and re-raised if it never comes). Its Lease is ``namespace/lease_name``, the one the
    test creates and reads (the default namespace is the cluster's, kube-system)."""
    op = OperatorProcess(cluster, tmp_path / f"{what}.log",
                         args=["--lease-namespace", namespace, "--lease-name", lease_name,
                               "--identity", f"stop-{what}"])
    op.start()
    try:
        wait_for(lambda: until(op), timeout=timeout, interval=interval, what=description)
    except BaseException:
        op.stop()
        raise
    return op


def test_sigterm_while_starting_exits_0(cluster, crd, operator_namespace, lease_name, tmp_path):
    """The first instant it can: as soon as it catches SIGTERM (its inventory starting, kopf not
    imported yet)."""
    op = started(cluster, tmp_path, operator_namespace, lease_name, "starting",
                 lambda op: op.proc.poll() is None and catches(op.proc.pid, signal.SIGTERM),
                 "the process to catch SIGTERM", timeout=60, interval=0.01)
    assert terminate(op) == 0, Path(op.log_path).read_text(errors="replace")[-3000:]
    assert not log_has(op, "became the leader")  # it was stopped before it could lead


def test_sigterm_to_a_standby_exits_0(cluster, crd, operator_namespace, coordination, lease_name, tmp_path):
    now = dt.datetime.now(dt.UTC)
    coordination.create_namespaced_lease(operator_namespace, {
        "metadata": {"name": lease_name},
        "spec": {"holderIdentity": "someone-else", "leaseDurationSeconds": 3600, "acquireTime": now, "renewTime": now}})
    # Behind the Lease this test holds for another: the log names that Lease (before, the process
    # looked at kube-system's, led, and the test passed without a standby).
    op = started(cluster, tmp_path, operator_namespace, lease_name, "standby",
                 lambda op: log_has(op, f"standby: inventory warming, waiting for Lease {operator_namespace}/{lease_name}"),
                 "the standby phase")
    assert terminate(op) == 0, Path(op.log_path).read_text(errors="replace")[-3000:]
    lease = coordination.read_namespaced_lease(lease_name, operator_namespace)
    assert lease.spec.holder_identity == "someone-else"  # a standby took nothing and released nothing
    assert not log_has(op, "became the leader")


def test_sigterm_to_the_leader_exits_0_and_hands_the_lease_back(cluster, crd, operator_namespace, coordination,
                                                                  lease_name, tmp_path):
    op = started(cluster, tmp_path, operator_namespace, lease_name, "leader",
                 lambda op: log_has(op, f"became the leader: Lease {operator_namespace}/{lease_name}"), "the leader phase")
    assert terminate(op) == 0, Path(op.log_path).read_text(errors="replace")[-3000:]
    assert not coordination.read_namespaced_lease(lease_name, operator_namespace).spec.holder_identity


def test_sigterm_without_leader_election_exits_0(cluster, crd, operator_namespace, lease_name, tmp_path):
    """kopf's own handler catches SIGTERM there; the stop flag it waits on was never set, so the
    process stayed up after kopf stopped until SIGKILL (15 s in every test that stopped one)."""
    op = OperatorProcess(cluster, tmp_path / "no-leader-elect.log", args=["--no-leader-elect"])
    op.start()
    try:
        wait_for(lambda: log_has(op, "Activity 'start_runtime' succeeded"), timeout=90, what="kopf running")
    except BaseException:
        op.stop()
        raise
    assert terminate(op) == 0, Path(op.log_path).read_text(errors="replace")[-3000:]

"""The liveness endpoint fails when the inventory's watches stop hearing from the API server.

kopf has open reports of operators going silent after watch failures while looking healthy; the
`watches` probe turns that into a failing /healthz so the kubelet restarts the Pod. The operator is
``certpolicy run`` as shipped (a process: its environment is set before it starts).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import figures
import operator_process
from kubewait import wait_for
from operator_process import OperatorProcess


def health(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310
            json.loads(resp.read())
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def leading(op: OperatorProcess) -> bool:
    """kopf's endpoint answers (a standby's has a "role"), the watches healthy."""
    got = operator_process.health(op.liveness)
    return bool(got) and "role" not in got and got.get("watches") == "ok"


def test_healthz_fails_while_watches_are_silent_and_recovers(cluster, crd, operator_namespace, tmp_path):
    # A 2 s watch timeout under a 5 s silence limit: each healthy watch hears from the server at
    # least every 2 s even when nothing changes, as at the defaults (240 s under 330 s). A limit
    # below the watch period made "healthy again" depend on every watch reconnecting within 3 s
    # of the others, which one more watch (cert-manager's Certificates) made fail every time.
    op = OperatorProcess(cluster, tmp_path / "operator.log",
                         env={"CERTPOLICY_WATCH_TIMEOUT": "2", "CERTPOLICY_WATCH_SILENCE_LIMIT": "5"})
    op.start()
    try:
        wait_for(lambda: leading(op), timeout=60, what="a healthy leading operator")
        cluster.stop_apiserver()
        try:
            wait_for(lambda: health(op.liveness) == 500, timeout=60, what="/healthz failing while the API is gone")
        finally:
            cluster.start_apiserver()
        wait_for(lambda: health(op.liveness) == 200, timeout=60, what="/healthz healthy again after reconnecting")
        assert op.proc.poll() is None, "the operator exited"
    finally:
        op.stop()


def test_healthz_stays_healthy_through_a_long_quiet_period(cluster, crd, operator_namespace, tmp_path):
    """On a quiet cluster no event or bookmark may come for a whole watch period: the watch that
    the server ends at ``timeoutSeconds`` and that is opened again is the proof of life. With a
    2 s watch timeout and a 5 s silence limit, 15 s idle are 7.5 watch periods: twice what 15
    idle minutes are at the default 240 s timeout (330 s limit). /healthz must never fail."""
    op = OperatorProcess(cluster, tmp_path / "operator.log",
                         env={"CERTPOLICY_WATCH_TIMEOUT": "2", "CERTPOLICY_WATCH_SILENCE_LIMIT": "5"})
    op.start()
    try:
        wait_for(lambda: leading(op), timeout=60, what="a healthy leading operator")
        checks, failures = 0, []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            code = health(op.liveness)
            checks += 1
            if code != 200:
                failures.append((round(deadline - time.monotonic(), 1), code))
            time.sleep(0.1)  # a probe's period, not a wait for state
        assert op.proc.poll() is None, "the operator exited"
    finally:
        op.stop()
    figures.record(f"liveness on a quiet cluster: {checks} /healthz checks over 15 s at a 2 s watch timeout, "
                   f"{len(failures)} failures")
    assert checks > 50
    assert not failures, f"/healthz failed on a quiet cluster: {failures[:5]}"

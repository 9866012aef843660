"""The liveness endpoint fails when the inventory's watches stop hearing from the API server.

kopf has open reports of operators going silent after watch failures while looking healthy; the
`watches` probe turns that into a failing /healthz so the kubelet restarts the Pod.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from kopf.testing import KopfRunner

import figures
from certpolicy.localcluster.cluster import free_port
from kubewait import wait_for


def health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:  # noqa: S310
            json.loads(resp.read())
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def operator_args(port: int) -> list[str]:
    return ["run", "--all-namespaces", "--standalone", f"--liveness=http://127.0.0.1:{port}/healthz",
            "-m", "certpolicy.handlers"]


def test_healthz_fails_while_watches_are_silent_and_recovers(cluster, crd, operator_namespace, monkeypatch):
    monkeypatch.setenv("CERTPOLICY_WATCH_SILENCE_LIMIT", "3")
    port = free_port()
    with KopfRunner(operator_args(port), timeout=60) as runner:
        wait_for(lambda: health(port) == 200, timeout=30, what="healthy operator")
        cluster.stop_apiserver()
        try:
            wait_for(lambda: health(port) == 500, timeout=60, what="/healthz failing while the API is gone")
        finally:
            cluster.start_apiserver()
        wait_for(lambda: health(port) == 200, timeout=60, what="/healthz healthy again after reconnecting")
    assert runner.exception is None


def test_healthz_stays_healthy_through_a_long_quiet_period(cluster, crd, operator_namespace, monkeypatch):
    """On a quiet cluster no event or bookmark may come for a whole watch period: the watch that
    the server ends at ``timeoutSeconds`` and that is opened again is the proof of life. With a
    2 s watch timeout and a 5 s silence limit, 15 s idle are 7.5 watch periods: twice what 15
    idle minutes are at the default 240 s timeout (330 s limit). /healthz must never fail."""
    monkeypatch.setenv("CERTPOLICY_WATCH_TIMEOUT", "2")
    monkeypatch.setenv("CERTPOLICY_WATCH_SILENCE_LIMIT", "5")
    port = free_port()
    with KopfRunner(operator_args(port), timeout=60) as runner:
        wait_for(lambda: health(port) == 200, timeout=30, what="healthy operator")
        checks, failures = 0, []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            code = health(port)
            checks += 1
            if code != 200:
                failures.append((round(deadline - time.monotonic(), 1), code))
            time.sleep(0.1)  # a probe's period, not a wait for state
    figures.record(f"liveness on a quiet cluster: {checks} /healthz checks over 15 s at a 2 s watch timeout, "
                   f"{len(failures)} failures")
    assert checks > 50
    assert not failures, f"/healthz failed on a quiet cluster: {failures[:5]}"
    assert runner.exception is None

"""The liveness endpoint fails when the inventory's watches stop hearing from the API server.

kopf has open reports of operators going silent after watch failures while looking healthy; the
`watches` probe turns that into a failing /healthz so the kubelet restarts the Pod.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

from kopf.testing import KopfRunner
from kubewait import wait_for

from certpolicy.localcluster.cluster import free_port


def health(port: int) -> int:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:  # noqa: S310
            json.loads(resp.read())
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return 0


def test_healthz_fails_while_watches_are_silent_and_recovers(cluster, crd, operator_namespace, monkeypatch):
    monkeypatch.setenv("CERTPOLICY_WATCH_SILENCE_LIMIT", "3")
    port = free_port()
    args = ["run", "--all-namespaces", "--standalone", f"--liveness=http://127.0.0.1:{port}/healthz",
            "-m", "certpolicy.handlers"]
    with KopfRunner(args, timeout=60) as runner:
        wait_for(lambda: health(port) == 200, timeout=30, what="healthy operator")
        cluster.stop_apiserver()
        try:
            wait_for(lambda: health(port) == 500, timeout=60, what="/healthz failing while the API is gone")
        finally:
            cluster.start_apiserver()
        wait_for(lambda: health(port) == 200, timeout=60, what="/healthz healthy again after reconnecting")
    assert runner.exception is None

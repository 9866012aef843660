"""A port the operator needs is taken: it stops at once with a message that says what to do.

Before, `certpolicy run` with its metrics port in use logged "Address already in use ... will try
again in 60 seconds" and evaluated nothing while /healthz answered 200. There is deliberately no
fallback port: Prometheus scrapes the configured one (see certpolicy.metrics.MetricsUnavailable).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest
from kopf.testing import KopfRunner
from test_liveness import health

from certpolicy import metrics
from certpolicy.localcluster.cluster import free_port
from kubewait import wait_for


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port some other process listens on (all interfaces, like the metrics default)."""
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))  # noqa: S104
        s.listen()
        yield s.getsockname()[1]


def test_certpolicy_run_exits_with_a_clear_message_when_the_metrics_port_is_taken(cluster, crd, taken_port, tmp_path):
    liveness = free_port()
    env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig))
    env.pop(metrics.PORT_ENV, None)
    proc = subprocess.Popen([sys.executable, "-m", "certpolicy.cli", "run", f"--metrics-port={taken_port}",
                             f"--liveness=http://127.0.0.1:{liveness}/healthz"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = proc.communicate(timeout=30)  # never a silent stall: it ends, and quickly
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode == 2, out
    assert f"cannot serve metrics on 0.0.0.0:{taken_port}: Address already in use" in out
    assert "--metrics-port" in out and metrics.PORT_ENV in out
    assert health(f"http://127.0.0.1:{liveness}/healthz") == 0  # it never claimed to be healthy


def test_env_port_taken_stops_kopf_run_instead_of_retrying(cluster, crd, operator_namespace, taken_port,
                                                            monkeypatch, caplog):
    """The same under `kopf run -m certpolicy.handlers.registry` (kopf's CLI, which the `operator_in_process`
    fixture runs): the start-up handler fails permanently, so the operator stops instead of
    retrying every 60 s."""
    monkeypatch.setattr(metrics, "_server", None)  # this process may serve metrics for other tests
    monkeypatch.setenv(metrics.PORT_ENV, str(taken_port))
    liveness = free_port()
    args = ["run", "--all-namespaces", "--standalone", f"--liveness=http://127.0.0.1:{liveness}/healthz",
            "-m", "certpolicy.handlers.registry"]
    with KopfRunner(args, timeout=60, reraise=False) as runner:
        wait_for(lambda: "cannot serve metrics" in caplog.text, timeout=30, what="the start-up failure logged")
    assert runner.exception is not None  # kopf's ActivityError: the operator stopped
    assert f"0.0.0.0:{taken_port}" in caplog.text and "--metrics-port" in caplog.text
    assert "will try again" not in caplog.text

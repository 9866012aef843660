"""The operator as a separate process (``certpolicy run``), for kill -9 and RBAC tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

from certpolicy.localcluster.cluster import free_port


#: Every operator process's log file (DEBUG): read by the session's hygiene audit.
LOG_FILES: list = []


class OperatorProcess:
    """The operator as a real process, so it can be killed with SIGKILL mid-step."""

    def __init__(self, cluster, log_path, kubeconfig=None):
        self.cluster, self.log_path, self.proc = cluster, log_path, None
        self.kubeconfig = kubeconfig or cluster.kubeconfig

    def start(self):
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), CERTPOLICY_METRICS_PORT="-1")
        self.log = open(self.log_path, "ab")  # noqa: SIM115
        if self.log_path not in LOG_FILES:
            LOG_FILES.append(self.log_path)
        self.proc = subprocess.Popen([sys.executable, "-m", "certpolicy.cli", "run", "--verbose",
                                      f"--liveness=http://127.0.0.1:{free_port()}/healthz"], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

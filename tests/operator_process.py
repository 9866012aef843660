"""The operator as a separate process (``certpolicy run``), for kill -9 and RBAC tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from certpolicy.localcluster.cluster import free_port

#: Every operator process's log file (DEBUG): read by the session's hygiene audit.
LOG_FILES: list = []


@dataclass(frozen=True)
class ProcessFigures:
    """What a process holds: threads, established TCP connections, resident memory."""

    threads: int
    connections: int
    rss_mib: float

    def __str__(self) -> str:
        return f"{self.threads} threads, {self.connections} TCP connections, {self.rss_mib:.0f} MiB RSS"


def process_figures(pid: int) -> ProcessFigures:
    status = Path(f"/proc/{pid}/status").read_text()
    threads = int(re.search(r"^Threads:\s+(\d+)", status, re.M).group(1))
    rss = int(re.search(r"^VmRSS:\s+(\d+)", status, re.M).group(1)) / 1024
    sockets = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            sockets.add(target[len("socket:["):-1])
    established = 0
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "01" and fields[9] in sockets:  # 01: ESTABLISHED; 9: inode
                established += 1
    return ProcessFigures(threads, established, rss)


class OperatorProcess:
    """The operator as a real process, so it can be killed with SIGKILL mid-step."""

    def __init__(self, cluster, log_path, kubeconfig=None, args=(), env=None):
        self.cluster, self.log_path, self.proc = cluster, log_path, None
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.args, self.env = list(args), dict(env or {})
        self.liveness = ""  # chosen at each start

    def start(self):
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), CERTPOLICY_METRICS_PORT="-1", **self.env)
        self.liveness = f"http://127.0.0.1:{free_port()}/healthz"
        self.log = open(self.log_path, "ab")  # noqa: SIM115
        if self.log_path not in LOG_FILES:
            LOG_FILES.append(self.log_path)
        self.proc = subprocess.Popen([sys.executable, "-m", "certpolicy.cli", "run", "--verbose",
                                      f"--liveness={self.liveness}", *self.args], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)

    def supervise(self) -> list[int]:
        """Restart the process whenever it exits, as the kubelet does for the operator's Pod
        (restartPolicy Always), until :meth:`stop` or :meth:`kill`. Returns the list that collects
        each exit status, for the test to assert on."""
        self.exits: list[int] = []
        self._supervising = threading.Event()
        self._supervising.set()

        def loop() -> None:
            while self._supervising.is_set():
                proc = self.proc
                if proc is None:
                    return
                try:
                    status = proc.wait(0.2)
                except subprocess.TimeoutExpired:
                    continue
                if not self._supervising.is_set():
                    return
                self.exits.append(status)
                self.log.close()
                self.start()

        threading.Thread(target=loop, name="operator-supervisor", daemon=True).start()
        return self.exits

    def _unsupervise(self) -> None:
        if getattr(self, "_supervising", None) is not None:
            self._supervising.clear()

    def figures(self) -> ProcessFigures:
        return process_figures(self.proc.pid)

    def kill(self):
        self._unsupervise()
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
        self.log.close()

    def stop(self):
        self._unsupervise()
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

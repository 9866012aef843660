"""The operator as a separate process (``certpolicy run``, the shipped entry point).

:class:`OperatorProcess` is one process a test owns (kill -9, RBAC, restarts). :class:`SharedOperator`
is the process behind the ``operator`` fixture: started once and kept for consecutive tests that
ask for ``operator`` (each test has its own namespaces and policies), restarted when a test needs
other settings or when it died, and stopped (SIGTERM, after it leads) before any other test, so a
test that starts its own operator or expects none never meets it. Each test sees the log from its
own start on (:class:`OperatorRun`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from certpolicy.localcluster.cluster import free_port

#: Every operator process's log file (DEBUG): read by the session's hygiene audit.
LOG_FILES: list = []
#: The session's SharedOperator (set by conftest's ``shared_operator`` while the session runs).
SHARED: list[SharedOperator] = []


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

    def __init__(self, cluster, log_path, kubeconfig=None, args=(), env=None, prefix=(), unset=()):
        """``prefix``: a command the operator runs under (e.g. setpriv to change its UID);
        ``unset``: environment variables it must not inherit."""
        self.cluster, self.log_path, self.proc = cluster, log_path, None
        self.kubeconfig = kubeconfig or cluster.kubeconfig
        self.args, self.env = list(args), dict(env or {})
        self.prefix, self.unset = [str(p) for p in prefix], set(unset)
        self.liveness = ""  # chosen at each start

    def start(self):
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), CERTPOLICY_METRICS_PORT="-1", **self.env)
        for name in self.unset:
            env.pop(name, None)
        self.liveness = f"http://127.0.0.1:{free_port()}/healthz"
        self.log = open(self.log_path, "ab")  # noqa: SIM115
        if self.log_path not in LOG_FILES:
            LOG_FILES.append(self.log_path)
        self.proc = subprocess.Popen([*self.prefix, sys.executable, "-m", "certpolicy.cli", "run", "--verbose",
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


#: A line of ``certpolicy run``'s log (kopf's format: ``[time] logger [LEVEL   ] message``); the
#: logger's name is cut at 20 characters. Lines that do not match continue the previous record.
LOG_LINE = re.compile(r"^\[(?P<when>[^\]]+)\] (?P<logger>\S+)\s+\[(?P<level>[A-Z]+)\s*\] (?P<message>.*)$")


@dataclass(frozen=True)
class LogRecord:
    when: float  # seconds since the epoch (the line's local time, milliseconds), like logging's ``created``
    logger: str
    level: str
    message: str


def log_records(text: str) -> list[LogRecord]:
    """The records of a ``certpolicy run`` log (a traceback stays with the record it belongs to)."""
    out: list[LogRecord] = []
    for line in text.splitlines():
        m = LOG_LINE.match(line)
        if m:
            when = datetime.datetime.strptime(m["when"], "%Y-%m-%d %H:%M:%S,%f").timestamp()
            out.append(LogRecord(when, m["logger"], m["level"], m["message"]))
        elif out:
            out[-1] = dataclasses.replace(out[-1], message=f"{out[-1].message}\n{line}")
    return out


def health(url: str) -> dict | None:
    """The replica's /healthz as JSON (a standby's or kopf's), None while nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 - loopback
            return json.loads(resp.read())
    except (OSError, ValueError):
        return None


@dataclass
class OperatorRun:
    """What a test gets as ``operator``: the shared process, seen from the test's start on."""

    process: OperatorProcess
    metrics_port: int
    log_offset: int

    def log_text(self) -> str:
        """The operator's log (DEBUG) since this test began (replaces caplog: the operator is not
        in the test's process)."""
        with open(self.process.log_path, "rb") as f:
            f.seek(self.log_offset)
            return f.read().decode(errors="replace")

    def log_records(self) -> list[LogRecord]:
        return log_records(self.log_text())

    def scrape(self) -> str:
        """The operator's /metrics."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:  # noqa: S310
            return resp.read().decode()


class SharedOperator:
    """One ``certpolicy run`` process for consecutive tests that ask for ``operator`` (see the module
    docstring). Figures: how many times it was started, and the seconds spent starting it."""

    def __init__(self, cluster, workdir: Path, identity: str, base_env: dict[str, str]) -> None:
        self.cluster, self.workdir, self.identity, self.base_env = cluster, workdir, identity, dict(base_env)
        self.proc: OperatorProcess | None = None
        self.env: dict[str, str] = {}
        self.metrics_port = 0
        self.starts, self.start_seconds, self.stop_seconds = 0, 0.0, 0.0

    def running(self) -> bool:
        return self.proc is not None and self.proc.proc is not None and self.proc.proc.poll() is None

    def run(self, env: dict[str, str], *, timeout: float = 90.0) -> OperatorRun:
        """The process with ``env`` on top of the suite's, leading and serving its watches: reused
        when it already runs with that ``env``, (re)started otherwise."""
        if self.running() and env != self.env:
            self.stop()
        if not self.running():
            self._start(env, timeout)
        assert self.proc is not None
        return OperatorRun(self.proc, self.metrics_port, self.proc.log_path.stat().st_size)

    def _start(self, env: dict[str, str], timeout: float) -> None:
        from kubewait import wait_for

        started = time.monotonic()
        self.starts += 1
        self.env, self.metrics_port = dict(env), free_port()
        self.proc = OperatorProcess(self.cluster, self.workdir / f"operator-{self.starts}.log",
                                    args=["--identity", self.identity, "--metrics-port", str(self.metrics_port)],
                                    env={**self.base_env, **env})
        self.proc.start()
        proc = self.proc

        def leading_and_watching() -> dict | None:
            if proc.proc is not None and proc.proc.poll() is not None:
                raise AssertionError(f"the operator exited with {proc.proc.returncode} while starting:\n"
                                     f"{proc.log_path.read_text(errors='replace')[-3000:]}")
            got = health(proc.liveness)
            # kopf's endpoint (not the standby's, which has a "role") with the inventory's probe ok
            return got if got and "role" not in got and got.get("watches") == "ok" else None

        try:
            wait_for(leading_and_watching, timeout=timeout, interval=0.1, what="the shared operator leading")
        except BaseException:
            proc.kill()
            self.proc = None
            raise
        self.start_seconds += time.monotonic() - started

    def stop(self) -> int | None:
        """SIGTERM (it leads: kopf stops, the Lease is released); its exit status, None if none ran."""
        if self.proc is None:
            return None
        began = time.monotonic()
        proc, self.proc = self.proc, None
        if proc.proc is not None and proc.proc.poll() is not None:
            proc.log.close()
            return proc.proc.returncode
        proc.stop()
        self.stop_seconds += time.monotonic() - began
        return proc.proc.returncode if proc.proc is not None else None

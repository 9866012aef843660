"""A real Kubernetes control plane on loopback: etcd + kube-apiserver, like envtest in Go.

Used by the integration tests, ``certpolicy local-cluster`` and ``certpolicy demo``. By default
there is no kubelet, scheduler or controller-manager: Pods stay Pending, namespaces never finish
deleting, and no ``default`` ServiceAccount or ``kube-root-ca.crt`` appears by itself
(``ensure_namespace`` creates the ServiceAccount a Pod needs). RBAC is on, so tests can prove
least privilege. ``LocalCluster(node=True)`` adds one real node (see node.py): Pods run.

The processes are started in their own session with a parent-death signal, so an interrupted or
crashed test run never leaves an orphaned etcd or API server behind.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import yaml
from cryptography.hazmat.primitives import serialization

from certpolicy.localcluster.binaries import Binaries, ensure_binaries
from certpolicy.localcluster.procs import ChildProcess, ClusterError, free_port, log_tail
from certpolicy.pki.issue import KeyPair, create_ca, generate_key, issue_leaf

if TYPE_CHECKING:
    from certpolicy.localcluster.node import Node

SERVICE_CIDR = "10.0.0.0/24"
SERVICE_IP = "10.0.0.1"
@dataclass
class LocalCluster:
    """Start with ``with LocalCluster() as c:``; ``c.kubeconfig`` is a file any client can use."""

    workdir: Path | None = None
    binaries: Binaries | None = None
    log: TextIO = sys.stderr
    api_port: int = 0
    etcd_port: int = 0
    cluster_trust_bundles: bool = True  # serve the beta ClusterTrustBundle API (off on real clusters by default)
    audit_policy: str | None = None  # an audit.k8s.io/v1 Policy (YAML): the API server logs to audit_log
    node: bool = False  # add a node (containerd, kubelet, kube-proxy, controller-manager, scheduler)
    _node: Node | None = None
    _procs: dict[str, ChildProcess] = field(default_factory=dict)
    _own_workdir: bool = False
    _ca: KeyPair | None = None
    _admin: KeyPair | None = None

    # ---- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # What start() sets, for the steps that run after it (a clear error, not an AttributeError on None).
    @property
    def _dir(self) -> Path:
        if self.workdir is None:
            raise ClusterError("the cluster has no working directory: start() it first")
        return self.workdir

    @property
    def _bins(self) -> Binaries:
        if self.binaries is None:
            raise ClusterError("the cluster's binaries are not resolved: start() it first")
        return self.binaries

    @property
    def _ca_pair(self) -> KeyPair:
        if self._ca is None:
            raise ClusterError("the cluster has no CA yet: start() it first")
        return self._ca

    @property
    def _admin_pair(self) -> KeyPair:
        if self._admin is None:
            raise ClusterError("the cluster has no admin certificate yet: start() it first")
        return self._admin

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.api_port}"

    @property
    def kubeconfig(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        """The API server's audit log (JSON lines), when ``audit_policy`` is set."""
        assert self.workdir is not None
        return self.workdir / "audit.log"

    @property
    def ca_file(self) -> Path:
        assert self.workdir is not None
        return self.workdir / "pki" / "ca.crt"

    def start(self, timeout: float = 60.0) -> None:
        if self.node:
            from certpolicy.localcluster.node import Node, check_host

            check_host()  # before building or starting anything
            self._node = Node(self)
        self.binaries = self.binaries or ensure_binaries(log=self.log)
        if self.workdir is None:
            # etcd's data on tmpfs when there is one: fsync-heavy writes become memory writes.
            base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
            self.workdir = Path(tempfile.mkdtemp(prefix="certpolicy-cluster-", dir=base))
            self._own_workdir = True
        self.workdir.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        self._write_pki()
        try:
            self._start_etcd(timeout)
            self.start_apiserver(timeout)
            if self._node:
                self._node.start()
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - started

    @property
    def node_handle(self) -> Node | None:
        """The running node (``certpolicy.localcluster.node.Node``), or None without ``node=True``."""
        return self._node

    def stop(self) -> None:
        if self._node:
            self._node.stop()
        for name in ("kube-apiserver", "etcd"):
            proc = self._procs.get(name)
            if proc:
                proc.stop()
        if self._own_workdir and self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def stop_apiserver(self) -> None:
        """Stop only the API server; etcd keeps the data (for fault-injection tests)."""
        proc = self._procs.get("kube-apiserver")
        if proc:
            proc.stop()

    def compact_etcd(self) -> int:
        """Advance etcd's revision and compact its history up to it; returns that revision.

        Fault injection: every watch resumed from an older resourceVersion is then answered with
        410 Gone, as on a real cluster whose API server compacts every few minutes. Talks to
        etcd's JSON gateway on loopback; writes one key outside the API server's prefix.
        """
        base = f"http://127.0.0.1:{self.etcd_port}/v3/kv"
        key = base64.b64encode(b"/certpolicy-harness/compaction").decode()
        put = _post_json(f"{base}/put", {"key": key, "value": key})
        revision = int(put["header"]["revision"])
        _post_json(f"{base}/compaction", {"revision": str(revision), "physical": True})
        return revision

    # ---- pieces ----------------------------------------------------------------------------
    def _write_pki(self) -> None:
        pki = self._dir / "pki"
        pki.mkdir(exist_ok=True)
        validity = dt.timedelta(days=30)
        self._ca = ca = create_ca("certpolicy-local-cluster-ca", validity=validity)
        serving = issue_leaf(
            ca, common_name="kube-apiserver",
            dns_names=["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
                       "kubernetes.default.svc.cluster.local"],
            ip_addresses=["127.0.0.1", SERVICE_IP, *self._node_ips()], usages=["serverAuth"], validity=validity,
        )
        self._admin = issue_leaf(
            ca, common_name="certpolicy-admin", organization=["system:masters"],
            usages=["clientAuth"], validity=validity,
        )
        kubelet_client = issue_leaf(  # the API server's identity towards the kubelet (logs, exec)
            ca, common_name="kube-apiserver-kubelet-client", organization=["system:masters"],
            usages=["clientAuth"], validity=validity,
        )
        sa_key = generate_key("RSA2048")
        files = {
            "ca.crt": ca.cert_pem,
            "apiserver.crt": serving.cert_pem,
            "apiserver.key": serving.key_pem,
            "kubelet-client.crt": kubelet_client.cert_pem,
            "kubelet-client.key": kubelet_client.key_pem,
            "sa.key": sa_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            "sa.pub": sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        }
        for name, data in files.items():
            path = pki / name
            path.write_bytes(data)
            path.chmod(0o600)

    def _start_etcd(self, timeout: float) -> None:
        self.etcd_port = self.etcd_port or free_port()
        peer = free_port()
        argv = [
            str(self._bins.etcd),
            "--name=default",
            f"--data-dir={self._dir / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{self.etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=default=http://127.0.0.1:{peer}",
            "--log-level=warn",
        ]
        proc = self._procs["etcd"] = ChildProcess("etcd", argv, self._dir / "etcd.log")
        proc.start()
        self._wait_http(proc, f"http://127.0.0.1:{self.etcd_port}/health", timeout, tls=False)

    def _node_ips(self) -> list[str]:
        from certpolicy.localcluster.node import NODE_IP

        return [NODE_IP] if self.node else []

    def start_apiserver(self, timeout: float = 60.0) -> None:
        self.api_port = self.api_port or free_port()
        pki = self._dir / "pki"
        # With a node, Pods reach the API server through the `kubernetes` Service (kube-proxy) at
        # the address advertised here: the host's address on the Pod bridge, so it listens there too.
        advertise = (self._node_ips() or ["127.0.0.1"])[0]
        argv = [
            str(self._bins.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{self.etcd_port}",
            f"--bind-address={'0.0.0.0' if self.node else '127.0.0.1'}",
            f"--advertise-address={advertise}",
            f"--secure-port={self.api_port}",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            *([] if self.node else ["--authorization-mode=RBAC"]),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--profiling=false",
            "--v=1",
        ]
        if self.node:
            argv += ["--authorization-mode=Node,RBAC", "--enable-admission-plugins=NodeRestriction",
                     "--kubelet-preferred-address-types=InternalIP",
                     f"--kubelet-client-certificate={pki / 'kubelet-client.crt'}",
                     f"--kubelet-client-key={pki / 'kubelet-client.key'}"]
        if self.cluster_trust_bundles:
            # ClusterTrustBundle is beta and off by default in 1.36; served here so that trust
            # bundle targets of that kind are tested against the real API.
            argv += ["--feature-gates=ClusterTrustBundle=true",
                     "--runtime-config=certificates.k8s.io/v1beta1/clustertrustbundles=true"]
        if self.audit_policy:
            policy = self._dir / "audit-policy.yaml"
            policy.write_text(self.audit_policy)
            argv += [f"--audit-policy-file={policy}", f"--audit-log-path={self.audit_log}", "--audit-log-format=json",
                     "--audit-log-mode=blocking"]
        proc = self._procs["kube-apiserver"] = ChildProcess("kube-apiserver", argv, self._dir / "kube-apiserver.log")
        proc.start()
        self._write_kubeconfig()
        self._wait_http(proc, f"{self.server}/readyz", timeout, tls=True)

    def _ssl_context(self) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        certfile = self._dir / "pki" / "admin.pem"
        if not certfile.exists():
            admin = self._admin_pair
            certfile.write_bytes(admin.cert_pem + admin.key_pem)
            certfile.chmod(0o600)
        ctx.load_cert_chain(str(certfile))
        return ctx

    def _wait_http(self, proc: ChildProcess, url: str, timeout: float, tls: bool) -> None:
        deadline = time.monotonic() + timeout
        ctx = self._ssl_context() if tls else None
        last = ""
        while time.monotonic() < deadline:
            if not proc.alive():
                raise ClusterError(f"{proc.name} exited during start-up; last log lines:\n{log_tail(proc.log)}")
            try:
                with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:  # noqa: S310 - loopback
                    if resp.status == 200:
                        return
            except (urllib.error.URLError, OSError) as e:
                last = str(e)
            time.sleep(0.1)
        raise ClusterError(f"{proc.name} not ready after {timeout:.0f}s ({last}); last log lines:\n{log_tail(proc.log)}")

    def _write_kubeconfig(self) -> None:
        self.write_kubeconfig(self.kubeconfig, self._admin_pair)

    def write_kubeconfig(self, path: Path, client: KeyPair) -> Path:
        """A kubeconfig for this cluster that authenticates with ``client``'s certificate."""
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "local", "cluster": {
                "server": self.server, "certificate-authority-data": b64(self._ca_pair.cert_pem)}}],
            "users": [{"name": "admin", "user": {
                "client-certificate-data": b64(client.cert_pem),
                "client-key-data": b64(client.key_pem)}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "admin"}}],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def token_kubeconfig(self, token: str, path: Path) -> Path:
        """A kubeconfig that authenticates with a bearer token, e.g. a ServiceAccount's (RBAC tests)."""
        config = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "local", "cluster": {
                "server": self.server,
                "certificate-authority-data": base64.b64encode(self._ca_pair.cert_pem).decode()}}],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [{"name": "local", "context": {"cluster": "local", "user": "token"}}],
            "current-context": "local",
        }
        path.write_text(yaml.safe_dump(config))
        path.chmod(0o600)
        return path

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
        """Run the cluster's kubectl against it and return the completed process (text mode).

        Discovery is cached in the cluster's own directory: kubectl's default cache is keyed by
        host:port, and a loopback port reused by a later cluster (one without our CRD) would
        answer ``kubectl explain`` from a stale cache with "couldn't find resource"."""
        assert self.binaries is not None and self.workdir is not None
        return subprocess.run(
            [str(self.binaries.kubectl), f"--kubeconfig={self.kubeconfig}",
             f"--cache-dir={self.workdir / 'kube-cache'}", *args],
            capture_output=True, text=True, check=check, input=input, timeout=120,
        )


def _post_json(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - etcd on loopback
        return json.loads(resp.read())

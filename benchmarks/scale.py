"""What the cluster-scale benchmarks share: many TLS Secrets, the operator as a process, its RSS."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import kubernetes
from cryptography.hazmat.primitives import serialization

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from certpolicy import GROUP, PLURAL, VERSION  # noqa: E402,F401 - re-exported for the benchmarks
from certpolicy.kube.crd import install_crd  # noqa: E402
from certpolicy.kube.namespaces import ensure_namespace  # noqa: E402
from certpolicy.localcluster import LocalCluster  # noqa: E402
from certpolicy.localcluster.cluster import free_port  # noqa: E402
from certpolicy.pki.issue import KeyPair, create_ca, generate_key, issue_leaf  # noqa: E402


@dataclass
class Bench:
    cluster: LocalCluster
    api: kubernetes.client.ApiClient
    core: kubernetes.client.CoreV1Api
    custom: kubernetes.client.CustomObjectsApi


@contextmanager
def bench_cluster() -> Iterator[Bench]:
    """A fresh local control plane with the CRD installed and the operator's namespace created."""
    with LocalCluster() as cluster:
        install_crd(cluster.kubeconfig)
        api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core = kubernetes.client.CoreV1Api(api)
        ensure_namespace(core, "certpolicy-system")
        yield Bench(cluster, api, core, kubernetes.client.CustomObjectsApi(api))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def rss_mib(pid: int, field: str = "VmHWM") -> float:
    """VmHWM: peak resident set; VmRSS: current."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU the process has used so far (/proc/<pid>/stat), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


class TLSSecrets:
    """Distinct leaves (one shared key, to keep set-up fast) from ``ca`` in ``namespaces``."""

    def __init__(self, core: kubernetes.client.CoreV1Api, ca: KeyPair, namespaces: list[str]) -> None:
        self.core, self.ca, self.namespaces = core, ca, namespaces
        self.key = generate_key()
        self.key_pem = self.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption())

    def namespace_of(self, i: int, per_ns: int) -> str:
        return self.namespaces[i // per_ns % len(self.namespaces)]

    def body(self, i: int, usages: tuple[str, ...] = ("serverAuth", "clientAuth")) -> dict:
        leaf = issue_leaf(self.ca, dns_names=[f"svc-{i}.bench.example.com"], key=self.key, usages=list(usages))
        return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                "metadata": {"name": f"tls-{i}", "labels": {"app": "bench"}},
                "data": {"tls.crt": b64(leaf.cert_pem), "tls.key": b64(self.key_pem), "ca.crt": b64(self.ca.cert_pem)}}

    def create(self, count: int, threads: int = 8) -> int:
        per_ns = count // len(self.namespaces)
        total = per_ns * len(self.namespaces)
        with cf.ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda i: self.core.create_namespaced_secret(self.namespace_of(i, per_ns), self.body(i)),
                          range(total)))
        return total


BENCH_CA_CONFIGMAP = {"namespace": "certpolicy-system", "name": "bench-ca"}


def seed_tls_secrets(core: kubernetes.client.CoreV1Api, count: int, namespace_count: int,
                     namespace_labels: Callable[[int], dict[str, str]] | None = None) -> tuple[TLSSecrets, int]:
    """The benchmarks' shared set-up: a CA published as the ``bench-ca`` ConfigMap (``BENCH_CA_CONFIGMAP``), namespaces
    ``bench-000``.. labelled ``bench=yes`` (plus ``namespace_labels(i)``), and ``count`` TLS Secrets spread over them.
    Returns the Secrets' factory and how many were created."""
    ca = create_ca("bench CA")
    namespaces = [f"bench-{i:03d}" for i in range(namespace_count)]
    for i, ns in enumerate(namespaces):
        ensure_namespace(core, ns, labels={"bench": "yes", **(namespace_labels(i) if namespace_labels else {})})
    core.create_namespaced_config_map(BENCH_CA_CONFIGMAP["namespace"], kubernetes.client.V1ConfigMap(
        metadata=kubernetes.client.V1ObjectMeta(name=BENCH_CA_CONFIGMAP["name"]),
        data={"ca.crt": ca.cert_pem.decode()}))
    t0 = time.monotonic()
    secrets = TLSSecrets(core, ca, namespaces)
    created = secrets.create(count)
    print(f"created {created} TLS Secrets in {len(namespaces)} namespaces in {time.monotonic() - t0:.1f}s", flush=True)
    return secrets, created


def start_operator(kubeconfig: Path, log_path: Path, source: Path | None = None) -> subprocess.Popen:
    """``certpolicy run`` as its own process; ``source``: another tree's ``operator/`` directory
    to run instead of this one (an A/B comparison against a baseline commit)."""
    env = dict(os.environ, KUBECONFIG=str(kubeconfig), CERTPOLICY_METRICS_PORT="-1")
    # Bytecode written and used by every tree, whatever the calling shell says: a tree without it
    # compiles its ~100 modules at every start (~0.1 s), which once made a baseline tree look slower.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if source is not None:
        env["PYTHONPATH"] = str(source)  # ahead of the editable install of this tree
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the process by the caller's exit
    return subprocess.Popen([sys.executable, "-m", "certpolicy.cli", "run",
                             f"--liveness=http://127.0.0.1:{free_port()}/healthz"], env=env, stdout=log, stderr=log)


def wait_for_operator(proc: subprocess.Popen, log_path: Path, complete: Callable[[], bool], start: float,
                      timeout: float, poll: float) -> float:
    """Poll ``complete()`` until it holds and return the seconds since ``start`` (monotonic); the
    operator exiting or the deadline ends the benchmark with where to look. One loop for every
    "start the operator, time its first complete picture" benchmark."""
    while not complete():
        if proc.poll() is not None:
            raise SystemExit(f"operator exited {proc.returncode}; see {log_path}")
        if time.monotonic() - start > timeout:
            raise SystemExit(f"status not complete after {timeout:.0f} s; see {log_path}")
        time.sleep(poll)
    return time.monotonic() - start


def stop_operator(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()

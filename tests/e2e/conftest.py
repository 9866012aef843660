"""End-to-end backends: the operator built as an image, installed with ``kubectl apply -k manifests/``
and run as a Pod, next to workloads that really mount Secrets. The same tests run on either:

- ``CERTPOLICY_TEST_BACKEND=node``: the local control plane plus one real node (containerd,
  kubelet, kube-proxy, controller-manager, scheduler; certpolicy.localcluster.node). Images are
  built here without a registry (certpolicy.localcluster.images) and imported into containerd.
  Needs root; ``make e2e`` installs what it needs.
- ``CERTPOLICY_TEST_BACKEND=kind``: pytest-kind on a machine with Docker.

Without either, every e2e test is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass

import pytest

from paths import REPO

OPERATOR_NAMESPACE = "certpolicy-system"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """e2e tests build images and wait for real rotations: 20 minutes each, not the suite's 5."""
    for item in items:
        if f"{os.sep}e2e{os.sep}" in str(item.path):
            item.add_marker(pytest.mark.timeout(1200))


class KubectlError(AssertionError):
    pass


@dataclass
class Backend:
    name: str
    kubectl_argv: list[str]
    kubeconfig: str
    workload_image: str  # has python3 with ssl; runs the mTLS workloads

    def kubectl(self, *args: str, input: str | None = None, check: bool = True, timeout: float = 180) -> str:
        proc = subprocess.run([*self.kubectl_argv, *args], capture_output=True, text=True, input=input,
                              timeout=timeout)
        if check and proc.returncode != 0:
            raise KubectlError(f"kubectl {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
        return proc.stdout

    def get(self, *args: str) -> dict:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def operator_pods(self) -> list[dict]:
        """The operator's Ready Pods (the Deployment runs a leader and a standby)."""
        return [p for p in self.get("pods", "-n", OPERATOR_NAMESPACE, "-l", "app.kubernetes.io/name=certpolicy-operator")[
            "items"] if not p["metadata"].get("deletionTimestamp") and _ready(p)]

    def leader(self) -> str:
        """The Pod holding the operator's Lease: the one that writes."""
        return self.get("lease", "-n", "kube-system", "certpolicy-operator")["spec"].get("holderIdentity", "")


def _ready(pod: dict) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod.get("status", {}).get("conditions", []))


def _node_backend(tmp_path_factory):
    from certpolicy.localcluster import LocalCluster, images

    started = time.monotonic()
    archives = [images.pause_archive(), images.base_archive(), images.operator_archive(REPO)]
    built = time.monotonic() - started
    cluster = LocalCluster(node=True)
    cluster.start()
    try:
        for archive in archives:
            cluster.node_handle.ctr("images", "import", str(archive))
        print(f"\ne2e node backend: images ready in {built:.0f}s, cluster + node + imports in "
              f"{time.monotonic() - started - built:.0f}s")
        yield Backend("node", [str(cluster.binaries.kubectl), f"--kubeconfig={cluster.kubeconfig}"],
                      str(cluster.kubeconfig), images.BASE_IMAGE)
    finally:
        cluster.stop()


def _kind_backend():
    if not _docker_available():
        pytest.skip("no Docker engine: `docker info` fails, so kind cannot run here")
    from pytest_kind import KindCluster

    from certpolicy.localcluster.images import OPERATOR_IMAGE

    subprocess.run(["docker", "build", "-t", OPERATOR_IMAGE, str(REPO)], check=True)
    cluster = KindCluster("certpolicy-e2e")
    cluster.create()
    try:
        cluster.load_docker_image(OPERATOR_IMAGE)
        yield Backend("kind", [str(cluster.kubectl_path), f"--kubeconfig={cluster.kubeconfig_path}"],
                      str(cluster.kubeconfig_path), "python:3.11-slim-bookworm")
    finally:
        cluster.delete()


def _docker_available() -> bool:
    import shutil

    if not shutil.which("docker"):
        return False
    return subprocess.run(["docker", "info"], capture_output=True, timeout=30).returncode == 0


@pytest.fixture(scope="session")
def e2e(tmp_path_factory):
    """The e2e cluster for the session, with the operator image loaded (not yet installed)."""
    backend = os.environ.get("CERTPOLICY_TEST_BACKEND")
    if backend == "node":
        yield from _node_backend(tmp_path_factory)
    elif backend == "kind":
        yield from _kind_backend()
    else:
        pytest.skip("e2e tests run with CERTPOLICY_TEST_BACKEND=node (local node, root) or =kind (Docker)")


@pytest.fixture(scope="session")
def installed(e2e) -> Backend:
    """``kubectl apply -k manifests/`` exactly as shipped, and the operator Deployment rolled out."""
    e2e.kubectl("apply", "-k", str(REPO / "manifests"))
    try:
        e2e.kubectl("-n", OPERATOR_NAMESPACE, "rollout", "status", "deploy/certpolicy-operator", "--timeout=240s",
                    timeout=260)
    except KubectlError as e:
        pods = e2e.kubectl("-n", OPERATOR_NAMESPACE, "describe", "pods", check=False)
        logs = e2e.kubectl("-n", OPERATOR_NAMESPACE, "logs", "deploy/certpolicy-operator", "--tail=40", check=False)
        raise KubectlError(f"{e}\n{pods[-3000:]}\n{logs}") from None
    return e2e

"""End-to-end on kind: build the image, load it, install with `kubectl apply -k`, run an example.

Runs only where Docker and kind work (CERTPOLICY_TEST_BACKEND=kind); elsewhere it is skipped with
the reason. On this project's CI machine there is no Docker engine, so the same scenarios run
against the local control plane in tests/integration (including RBAC from manifests/).
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from paths import REPO

IMAGE = "certpolicy-operator:e2e"


@pytest.fixture(scope="module")
def kind_backend(docker_available):
    if os.environ.get("CERTPOLICY_TEST_BACKEND") != "kind":
        pytest.skip("e2e tests run with CERTPOLICY_TEST_BACKEND=kind on a machine with Docker and kind")
    if not docker_available:
        pytest.skip("no Docker engine: `docker info` fails, so kind cannot run here")
    from pytest_kind import KindCluster

    subprocess.run(["docker", "build", "-t", IMAGE, str(REPO)], check=True)
    cluster = KindCluster("certpolicy-e2e")
    cluster.create()
    cluster.load_docker_image(IMAGE)
    yield cluster
    cluster.delete()


def test_install_with_kustomize_and_reach_compliance(kind_backend):
    k = kind_backend.kubectl
    k("apply", "-k", str(REPO / "manifests"))
    k("-n", "certpolicy-system", "set", "image", "deploy/certpolicy-operator", f"operator={IMAGE}")
    k("-n", "certpolicy-system", "rollout", "status", "deploy/certpolicy-operator", "--timeout=180s")
    k("create", "namespace", "integration")
    k("label", "namespace", "integration", "env=uat")
    k("apply", "-f", str(REPO / "examples" / "trust-bundle-pkcs12.yaml"))
    k("wait", "--for=condition=Compliant", "certpol/hl7-uat-trust", "--timeout=120s")
    k("annotate", "certpol", "hl7-uat-trust", f"certpolicy.io/rotate={int(time.time())}", "--overwrite")
    k("wait", "--for=jsonpath={.status.rotation.history[0].outcome}=Completed", "certpol/hl7-uat-trust",
      "--timeout=300s")

"""What the e2e rotation tests share: the mTLS workload Pods (tests/e2e/mtls_workload.py) and how
to read what they report and what they hold."""

from __future__ import annotations

import base64
import hashlib
import json
import time

from kubewait import wait_for
from paths import REPO

OPERATOR_NAMESPACE = "certpolicy-system"
WORKLOAD = REPO / "tests" / "e2e" / "mtls_workload.py"


def pem_fp(pem: str) -> str:
    der = base64.b64decode("".join(line for line in pem.strip().splitlines() if "-----" not in line))
    return hashlib.sha256(der).hexdigest()[:16]


def bundle_fps(pem: str) -> list[str]:
    parts = [p + "-----END CERTIFICATE-----" for p in pem.split("-----END CERTIFICATE-----") if "BEGIN" in p]
    return sorted(pem_fp(p) for p in parts)


def workload_spec(name: str, ns: str, image: str, role: str, secret: str, sub_path: bool = False) -> dict:
    """A Pod, or (subPath) a Deployment: what the operator can rollout-restart."""
    if sub_path:
        mounts = [{"name": "tls", "mountPath": "/tls/tls.crt", "subPath": "tls.crt"}]
        command = ["python3", "-c", "import time; time.sleep(10**9)"]
    else:
        mounts = [{"name": "tls", "mountPath": "/tls", "readOnly": True},
                  {"name": "ca", "mountPath": "/ca", "readOnly": True},
                  {"name": "app", "mountPath": "/app", "readOnly": True}]
        command = ["python3", "-u", "/app/mtls_workload.py", role]
    pod = {
        "metadata": {"name": name, "namespace": ns, "labels": {"app": name}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": role, "image": image, "imagePullPolicy": "IfNotPresent", "command": command,
                "volumeMounts": mounts,
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
            }],
            "volumes": [{"name": "tls", "secret": {"secretName": secret}},
                        {"name": "ca", "configMap": {"name": "mtls-ca"}},
                        {"name": "app", "configMap": {"name": "mtls-app"}}],
        },
    }
    if not sub_path:
        return {"apiVersion": "v1", "kind": "Pod", **pod}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name, "namespace": ns},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}}, "spec": pod["spec"]}}}


def last_counts(backend, ns: str, pod: str) -> dict | None:
    lines = backend.kubectl("logs", "-n", ns, pod, "--tail=50").splitlines()
    counts = [json.loads(line) for line in lines if line.startswith("{") and '"counts"' in line]
    return counts[-1] if counts else None




def assert_no_failed_handshake(backend, ns: str, server_leaf: str, client_leaf: str, bundle: list[str],
                               what: str) -> tuple[dict, dict]:
    """Wait until both workloads run on these leaves and this bundle, loaded from their volumes,
    then assert that every handshake on the way succeeded; returns their last counts."""
    def settled():
        server, client = last_counts(backend, ns, "mtls-server"), last_counts(backend, ns, "mtls-client")
        done = (server["leaf"] == server_leaf and client["leaf"] == client_leaf and server["bundle"] == bundle
                and client["bundle"] == bundle and client["workload"]["peer"] == server_leaf
                and server["workload"]["peer"] == client_leaf)
        return done and (server, client)
    wait_for(settled, timeout=120, interval=2, what="both workloads on the new leaves and bundle")
    time.sleep(3)  # a few more handshakes on the final material (counted below, not a wait for state)
    server, client = last_counts(backend, ns, "mtls-server"), last_counts(backend, ns, "mtls-client")
    print(f"mTLS handshakes through {what}: client ok={client['workload']['ok']} "
          f"failed={client['workload']['failed']}; server ok={server['workload']['ok']} "
          f"failed={server['workload']['failed']}; leaf reloads: client {client['reloads']}, server "
          f"{server['reloads']}; client connections before the Service first routed: "
          f"{client['workload']['startupFailures']}")
    assert client["workload"]["failed"] == 0, client["workload"]["lastError"]
    assert server["workload"]["failed"] == 0, server["workload"]["lastError"]
    assert client["workload"]["ok"] > 100
    assert client["reloads"] >= 2 and server["reloads"] >= 2  # new CA in the bundle, new leaf, old CA out
    return server, client

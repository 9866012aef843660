"""A full CA rotation under real workloads: the proof that it causes no outage.

Two Pods (tests/e2e/mtls_workload.py) mount their leaf (a Secret the operator issues) and the
trust bundle (a ConfigMap it distributes) as volumes, reload them when the kubelet updates the
files, and handshake mTLS with each other every 0.2 s through a Service (kube-proxy). A third
Pod mounts its leaf through subPath, which never updates. Mid-rotation the operator's own Pod is
deleted; its Deployment brings it back and the rotation completes. Delays are shortened to fit
CI (kubelet sync 10 s on the local node, propagation delay 30 s).
"""

from __future__ import annotations

import base64
import time
import uuid

import yaml
from e2e_workloads import (
    OPERATOR_NAMESPACE,
    WORKLOAD,
    assert_no_failed_handshake,
    bundle_fps,
    last_counts,
    pem_fp,
    workload_spec,
)

from kubewait import WaitTimeout, wait_for


def _policy(backend, name: str) -> dict:
    return backend.get("certpol", name)


def test_rotation_with_real_workloads_and_an_operator_restart(installed):
    k = installed.kubectl
    ns = f"e2e-mtls-{uuid.uuid4().hex[:6]}"
    policy_name = ns
    k("create", "namespace", ns)
    k("label", "namespace", ns, "certpolicy-e2e=mtls")
    k("-n", ns, "create", "configmap", "mtls-app", f"--from-file={WORKLOAD}")
    k("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "mtls-server", "namespace": ns},
        "spec": {"selector": {"app": "mtls-server"},
                 "ports": [{"name": "workload", "port": 8443}, {"name": "probe", "port": 8444}]}}))
    k("apply", "-f", "-", input=yaml.safe_dump({
        "apiVersion": "certpolicy.io/v1alpha1", "kind": "CertificatePolicy", "metadata": {"name": policy_name},
        "spec": {
            "selector": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}},
            "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"], "allowedDNSNames": ["*.e2e.test"]},
            "ca": {"secretName": f"{ns}-ca", "validity": "87600h"},
            "trustBundles": [{"configMap": {"name": "mtls-ca", "key": "ca.crt"},
                              "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}],
            "issuance": [{"secretName": "server-tls", "namespace": ns, "dnsNames": ["server.e2e.test"]},
                         {"secretName": "client-tls", "namespace": ns, "dnsNames": ["client.e2e.test"]}],
            # No probes: the operator only probes *.svc names, and this node has no cluster DNS.
            # Leaves wait as long again (leafPropagationDelay defaults to it); the Deployment that
            # reads its leaf through subPath is rollout-restarted by the operator.
            "rotation": {"propagationDelay": "30s", "restartWorkloads": True},
        }}))
    for secret in ("server-tls", "client-tls"):
        wait_for(lambda s=secret: installed.kubectl("get", "secret", "-n", ns, s, check=False), timeout=120,
                 interval=1, what=f"issued Secret {secret}")
    wait_for(lambda: installed.kubectl("get", "configmap", "-n", ns, "mtls-ca", check=False), timeout=120,
             interval=1, what="the trust bundle ConfigMap")

    image = installed.workload_image
    docs = [workload_spec("mtls-server", ns, image, "server", "server-tls")]
    k("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    wait_for(lambda: last_counts(installed, ns, "mtls-server"), timeout=120, interval=1, what="the server to serve")
    docs = [workload_spec("mtls-client", ns, image, "client", "client-tls"),
            workload_spec("subpath-leaf", ns, image, "subpath", "server-tls", sub_path=True)]
    k("apply", "-f", "-", input=yaml.safe_dump_all(docs))
    wait_for(lambda: (last_counts(installed, ns, "mtls-client") or {}).get("workload", {}).get("ok", 0) > 5,
             timeout=120, interval=1, what="the client's first handshakes")

    # The subPath mount is reported before anything rotates.
    reported = wait_for(lambda: [m for m in (_policy(installed, policy_name).get("status") or {}).get(
        "subPathMounts", []) if m.get("pod", "").startswith("subpath-leaf-")], timeout=120, interval=1,
        what="the subPath Pod in status.subPathMounts")
    print(f"\nsubPath mount reported: {reported}")
    subpath_pod = reported[0]["pod"]

    old_ca = _policy(installed, policy_name)["status"]["ca"]["fingerprint"]
    started = time.monotonic()
    k("annotate", "certpol", policy_name, f"certpolicy.io/rotate=e2e-{int(time.time())}", "--overwrite")

    # The leading operator Pod is deleted mid-rotation (while bundles carry both CAs): the standby
    # takes the Lease, the Deployment brings a new Pod, and the rotation goes on from the status.
    wait_for(lambda: (_policy(installed, policy_name)["status"].get("rotation") or {}).get("phase") == "VerifyBundles",
             timeout=180, interval=0.5, what="rotation step 2 (VerifyBundles)")
    deleted = installed.leader()
    k("delete", "pod", "-n", OPERATOR_NAMESPACE, deleted, "--wait=false")
    new_leader = wait_for(lambda: (n := installed.leader()) != deleted and n, timeout=120, interval=1,
                          what="another operator Pod to take the Lease")
    wait_for(lambda: len(pods := installed.operator_pods()) == 2 and deleted not in
             {p["metadata"]["name"] for p in pods}, timeout=240, interval=1, what="the Deployment's replacement Pod")
    print(f"leading operator Pod {deleted} deleted at step 2; {new_leader} took over; replacement Ready after "
          f"{time.monotonic() - started:.0f}s")

    def completed():
        history = (_policy(installed, policy_name)["status"].get("rotation") or {}).get("history") or []
        return history and history[0]["outcome"] == "Completed" and history[0]
    try:
        record = wait_for(completed, timeout=600, interval=2, what="the rotation to complete")
    except WaitTimeout as e:
        rotation = _policy(installed, policy_name)["status"].get("rotation") or {}
        raise AssertionError(f"{e}; step {rotation.get('step')} {rotation.get('phase')}: {rotation.get('message')}; "
                             f"workloads: {rotation.get('workloads')}") from None
    status = _policy(installed, policy_name)["status"]
    new_ca = status["ca"]["fingerprint"]
    assert new_ca != old_ca
    print(f"rotation completed in {time.monotonic() - started:.0f}s: {record}")

    # Both workloads end on the new leaves and a bundle without the old CA, loaded from their
    # volumes; every handshake on the way succeeded.
    server_leaf = pem_fp(base64.b64decode(installed.get("secret", "-n", ns, "server-tls")["data"]["tls.crt"]).decode())
    client_leaf = pem_fp(base64.b64decode(installed.get("secret", "-n", ns, "client-tls")["data"]["tls.crt"]).decode())
    bundle = bundle_fps(installed.get("configmap", "-n", ns, "mtls-ca")["data"]["ca.crt"])

    assert_no_failed_handshake(installed, ns, server_leaf, client_leaf, bundle, "the rotation")

    # The subPath Pod could not see the new leaf: the operator restarted its Deployment, and the
    # Pod that runs now has the new leaf at the path it mounts.
    pods = [p["metadata"]["name"] for p in installed.get("pods", "-n", ns, "-l", "app=subpath-leaf")["items"]
            if not p["metadata"].get("deletionTimestamp")]
    assert pods and subpath_pod not in pods, (subpath_pod, pods)
    mounted = k("exec", "-n", ns, "deploy/subpath-leaf", "--", "python3", "-c",
                "import hashlib, ssl; print(hashlib.sha256(ssl.PEM_cert_to_DER_cert(open('/tls/tls.crt').read()))"
                ".hexdigest()[:16])").strip()
    assert mounted == server_leaf

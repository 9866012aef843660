"""What one reconciliation pass reads from the API server, counted on the real one: each password
Secret and each CA Secret once.

The policy's passes run in-process here (``reconcile_policy``, as the operator's loop calls it,
no kopf), on a :class:`~certpolicy.kube.rawapi.RawClient` that counts the requests it sends, so
each pass's reads are known exactly. The operator itself does not run: nothing else acts on the
policy between passes.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import Counter

from cryptography.hazmat.primitives.serialization import pkcs12
from kubernetes import client

from certpolicy.environment import operator_namespace as passes_namespace
from certpolicy.handlers.reconcile import reconcile_policy
from certpolicy.handlers.runtime import Runtime
from certpolicy.inventory.interest import Reads
from certpolicy.inventory.inventory import Inventory
from certpolicy.kube.events import EventRecorder
from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.kube.rawapi import RawClient
from certpolicy.policy.evaluate import Evaluator
from crd import GROUP, PLURAL, VERSION
from kubewait import wait_for


class CountingRawClient(RawClient):
    """A RawClient that counts every request it sends, by (method, path)."""

    def __init__(self, api_client) -> None:
        super().__init__(api_client)
        self.requests: Counter[tuple[str, str]] = Counter()

    def _call(self, method, path, query, *args, **kwargs):
        self.requests[(method, path)] += 1
        return super()._call(method, path, query, *args, **kwargs)


def test_each_password_secret_and_each_ca_secret_is_read_once_per_pass_with_and_without_a_rotation(
        api_client, core_v1, custom_api, policies, operator_namespace, unique_name):
    assert operator_namespace == passes_namespace()  # where the passes look for password Secrets
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns)
    shared, other, bad = (f"{unique_name}-{s}" for s in ("pw-shared", "pw-other", "pw-bad"))
    for name, password in ((shared, b"shared-secret"), (other, b"other-secret"), (bad, b"\xff\xfenot utf-8")):
        core_v1.create_namespaced_secret(operator_namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name), type="Opaque",
            data={"password": base64.b64encode(password).decode()}))

    def ref(secret: str) -> dict:
        return {"name": secret, "key": "password"}

    spec = {
        "selector": {"namespaceSelector": {"matchLabels": {"pass-reads": unique_name}}},
        "ca": {"secretName": f"{unique_name}-ca"},
        "rotation": {"propagationDelay": "0s"},
        "trustBundles": [
            # One password Secret behind three truststores of two targets; a second of its own;
            # a third that is not UTF-8 (a finding, read once all the same).
            {"configMap": {"name": "java-ca"}, "namespaces": [ns], "formats": {
                "pkcs12": {"key": "truststore.p12", "passwordSecretRef": ref(shared)},
                "jks": {"key": "truststore.jks", "passwordSecretRef": ref(shared)}}},
            {"configMap": {"name": "jks-ca"}, "namespaces": [ns], "formats": {
                "jks": {"key": "truststore.jks", "passwordSecretRef": ref(shared)}}},
            {"configMap": {"name": "other-ca"}, "namespaces": [ns], "formats": {
                "pkcs12": {"key": "truststore.p12", "passwordSecretRef": ref(other)}}},
            {"configMap": {"name": "bad-ca"}, "namespaces": [ns], "formats": {
                "pkcs12": {"key": "truststore.p12", "passwordSecretRef": ref(bad)}}},
        ],
    }
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
              "spec": spec})
    secrets = f"/api/v1/namespaces/{operator_namespace}/secrets/"
    password_paths = {f"{secrets}{s}": s for s in (shared, other, bad)}
    ca_path = f"{secrets}{unique_name}-ca"
    targets = f"/api/v1/namespaces/{ns}/configmaps"  # created by POST here, updated at .../NAME

    raw = CountingRawClient(api_client)
    inventory = Inventory(api_client).start()
    loop = asyncio.new_event_loop()  # the pass's wake-up target; never run here
    runtime = Runtime(api_client=api_client, raw=raw, inventory=inventory, recorder=EventRecorder(raw),
                      evaluator=Evaluator(), loop=loop)
    try:
        assert inventory.wait_synced(30)
        wait_for(lambda: inventory.declare(unique_name, Reads.of(spec, operator_namespace)), timeout=30,
                 what="the policy's sources synced")

        def one_pass() -> tuple[dict[str, int], int, dict]:
            """(GETs of each password Secret, writes to the targets, the policy's status) of one pass.
            Every CA Secret (the policy's, a rotation's new one) is read at most once, the policy's
            exactly once: the CA store (handlers/castore.py) reads it for every stage (issue 24)."""
            raw.requests.clear()
            reconcile_policy(runtime, unique_name)
            secret_reads = {path: n for (method, path), n in raw.requests.items()
                            if method == "GET" and path.startswith(secrets) and path not in password_paths}
            assert secret_reads.get(ca_path) == 1, secret_reads
            assert all(n == 1 for n in secret_reads.values()), secret_reads
            reads = {secret: raw.requests[("GET", path)] for path, secret in password_paths.items()}
            writes = sum(n for (method, path), n in raw.requests.items()
                         if method in ("POST", "PUT", "PATCH") and path.startswith(targets))
            status = custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name).get("status") or {}
            return reads, writes, status

        once = {shared: 1, other: 1, bad: 1}
        # Without a rotation: the first pass creates the CA and writes every target, the second
        # finds them in place. Both read each target back in the rotation stage and pass through
        # the bundles stage.
        reads, writes, status = one_pass()
        assert reads == once
        assert writes >= 4, "the first pass writes every target"
        degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
        assert (degraded["status"], degraded["reason"]) == ("True", "TruststorePasswordInvalid"), degraded
        assert bad in degraded["message"] and "UTF-8" in degraded["message"]
        assert (status["bundleTargets"]["total"], status["bundleTargets"]["verified"]) == (4, 4)
        reads, writes, status = one_pass()
        assert (reads, writes) == (once, 0)
        assert not (status.get("rotation") or {}).get("id")

        # With a rotation: its own UpdateBundles action writes the targets (the bundles stage
        # waits meanwhile), after the same pass read them back.
        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name, {
            "metadata": {"annotations": {"certpolicy.io/rotate": "pass-reads"}}})
        rotation_passes = []
        for _ in range(10):
            reads, writes, status = one_pass()
            running = bool((status.get("rotation") or {}).get("id"))
            rotation_passes.append((reads, writes, running))
            if running and writes:
                break
        assert any(running and writes for _, writes, running in rotation_passes), rotation_passes
        assert all(reads == once for reads, _, _ in rotation_passes), rotation_passes
    finally:
        inventory.stop()
        loop.close()

    # Behaviour is unchanged: each truststore opens with its own password and holds both CAs now.
    def aliases(name: str, password: bytes) -> int:
        cm = core_v1.read_namespaced_config_map(name, ns)
        return len(pkcs12.load_pkcs12(base64.b64decode(cm.binary_data["truststore.p12"]), password).additional_certs)

    assert aliases("java-ca", b"shared-secret") == 2
    assert aliases("other-ca", b"other-secret") == 2
    assert "truststore.p12" not in (core_v1.read_namespaced_config_map("bad-ca", ns).binary_data or {})

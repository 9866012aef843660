"""What one reconciliation pass computes, counted on the real API server: a policy without
``requirements.trustedBy`` checks no signature to build its leaves' anchors (issue 28).

Every pass used to build each selected leaf's :class:`~certpolicy.policy.truststores.LeafAnchor`,
one uncached signature check per leaf and CA certificate in its ``ca.crt``, for the trustedBy
stores that most policies do not have: 75% of a steady pass at 2,000 Secrets, and the Secret
change → Warning event latency at 10,000 Secrets went from p95 0.5 s to 3-10 s
(docs/benchmarks-cluster.md). The count does not depend on the machine's load, so it is what is
asserted here; the latency itself is measured by benchmarks/bench_reconcile.py.

The passes run in-process (``reconcile_policy``, as the operator's loop calls it, no kopf), as in
test_pass_reads.py.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from kubernetes import client

import certgen
import certpolicy.policy.truststores as policy_truststores
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

LEAVES = 3


def test_a_pass_checks_no_leaf_anchor_signature_unless_trusted_by_stores_need_them(
        api_client, core_v1, custom_api, policies, operator_namespace, unique_name, monkeypatch):
    assert operator_namespace == passes_namespace()
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels={"pass-work": unique_name})
    pki, other = certgen.pki(), certgen.pki()
    for i in range(LEAVES):
        leaf = certgen.leaf(pki.intermediate, f"svc-{i}.example.com")
        # ca.crt holds the root: building this leaf's anchors checks the root's signature on the top
        # of the served chain (policy/truststores.py, _issues)
        body = certgen.tls_secret(leaf, [pki.intermediate], ca=[pki.root])
        core_v1.create_namespaced_secret(ns, client.V1Secret(
            metadata=client.V1ObjectMeta(name=f"tls-{i}"), type=body["type"], data=body["data"]))
    peers = {"pass-work-peer": unique_name}
    for name, root in (("has-anchor", pki.root), ("lacks-anchor", other.root)):
        core_v1.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels=peers), data={"ca.crt": root.pem.decode()}))

    spec: dict = {"selector": {"namespaceSelector": {"matchLabels": {"pass-work": unique_name}}}, "requirements": {}}
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
              "spec": spec})

    checks = {"n": 0}
    signed_by = policy_truststores.signed_by

    def counted(child, issuer):
        checks["n"] += 1
        return signed_by(child, issuer)

    monkeypatch.setattr(policy_truststores, "signed_by", counted)

    inventory = Inventory(api_client).start()
    loop = asyncio.new_event_loop()  # the pass's wake-up target; never run here
    raw = RawClient(api_client)
    runtime = Runtime(api_client=api_client, raw=raw, inventory=inventory, recorder=EventRecorder(raw),
                      evaluator=Evaluator(), loop=loop)
    try:
        assert inventory.wait_synced(30)

        def one_pass(spec: dict) -> dict:
            """The policy's status after one pass once its sources are synced; counts from zero."""
            wait_for(lambda: inventory.declare(unique_name, Reads.of(spec, operator_namespace)), timeout=30,
                     what="the policy's sources synced")
            checks["n"] = 0
            reconcile_policy(runtime, unique_name)
            return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name).get("status") or {}

        status = one_pass(spec)
        assert (status.get("summary") or {}).get("selected") == LEAVES, status.get("summary")
        assert checks["n"] == 0, f"{checks['n']} signature checks for leaf anchors nothing reads"

        # With trustedBy stores the anchors are built, once per pass, and still judged: the store
        # without the leaves' root is named.
        spec["requirements"]["trustedBy"] = {"selector": {"matchLabels": peers}}
        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name, {"spec": spec})
        status = one_pass(spec)
        assert checks["n"] >= LEAVES, checks
        missing = {(v.get("kind"), v.get("name")) for v in status.get("violations") or []
                   if "TruststoreMissingAnchor" in (v.get("reasons") or ())}
        assert missing == {("ConfigMap", "lacks-anchor")}, status.get("violations")
    finally:
        inventory.stop()
        loop.close()


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])

"""The running operator accepts policies: Ready=True with observedGeneration, updated on spec changes."""

from __future__ import annotations

from crd import GROUP, PLURAL, VERSION
from kubewait import wait_for


def ready_condition(custom_api, name):
    obj = custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
    conds = {c["type"]: c for c in obj.get("status", {}).get("conditions", [])}
    return obj, conds.get("Ready")


def test_operator_sets_ready_with_observed_generation(operator, policies, custom_api, cluster, unique_name):
    body = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy",
        "metadata": {"name": unique_name},
        "spec": {"selector": {"namespaceSelector": {"matchLabels": {"selects": unique_name}}},
                 "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]}},
    }
    policies(body)

    def ready_for(generation):
        obj, ready = ready_condition(custom_api, unique_name)
        return ready if ready and ready["status"] == "True" and ready.get("observedGeneration") == generation else None

    ready = wait_for(lambda: ready_for(1), timeout=30, what="Ready=True at generation 1")
    assert ready["reason"] == "Reconciled"
    assert ready["lastTransitionTime"].endswith("Z")

    custom_api.patch_cluster_custom_object(
        GROUP, VERSION, PLURAL, unique_name, {"spec": {"requirements": {"minimumRSABits": 3072}}}
    )
    ready2 = wait_for(lambda: ready_for(2), timeout=30, what="Ready=True at generation 2")
    # Same status -> the transition time is kept (a metav1.Condition convention).
    assert ready2["lastTransitionTime"] == ready["lastTransitionTime"]

    # kubectl wait works against the condition, as a user would run it.
    cluster.kubectl("wait", "--for=condition=Ready", f"certpol/{unique_name}", "--timeout=30s")

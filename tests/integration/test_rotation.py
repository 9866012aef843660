"""The five-step CA rotation on a real API server, with the invariant checked at every recorded instant."""

from __future__ import annotations

import uuid

import pytest
from kubewait import wait_for
from rotation_support import Recorder, bundle_fingerprints, check_invariant

from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.kube.rawapi import RawClient

GROUP, VERSION, PLURAL = "certpolicy.io", "v1alpha1", "certificatepolicies"


@pytest.fixture
def rotation_setup(core_v1, policies, unique_name):
    label = uuid.uuid4().hex[:8]
    namespaces = []
    for _ in range(2):
        ns = f"t-{uuid.uuid4().hex[:10]}"
        ensure_namespace(core_v1, ns, labels={"rot": label})
        namespaces.append(ns)
    leaves = [{"secretName": f"leaf-{i}", "namespace": ns, "dnsNames": [f"leaf-{i}.rot.test"]}
              for i, ns in enumerate(namespaces)]
    body = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
        "spec": {
            "selector": {"namespaceSelector": {"matchLabels": {"rot": label}}},
            "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
            "ca": {"secretName": f"{unique_name}-ca"},
            "trustBundles": [{"configMap": {"name": "rot-ca"}, "namespaceSelector": {"matchLabels": {"rot": label}}}],
            "issuance": leaves,
            "rotation": {"propagationDelay": "0s"},
        },
    }
    return body, namespaces, {leaf["secretName"] for leaf in leaves}


def get(custom_api, name):
    return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)


def settled(custom_api, name):
    st = get(custom_api, name).get("status") or {}
    return st if (st.get("issued") or {}).get("ready") == 2 and (st.get("bundleTargets") or {}).get("verified") == 2 \
        else None


def test_full_rotation_keeps_every_leaf_trusted_by_every_bundle(
        operator, api_client, custom_api, core_v1, policies, unique_name, rotation_setup):
    body, namespaces, leaf_names = rotation_setup
    recorder = Recorder(RawClient(api_client), namespaces, "rot-ca", leaf_names).start()
    try:
        policies(body)
        st = wait_for(lambda: settled(custom_api, unique_name), timeout=30, what="CA, bundles and leaves in place")
        old_ca = st["ca"]["fingerprint"]

        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                               {"metadata": {"annotations": {"certpolicy.io/rotate": "r1"}}})

        def completed():
            rot = (get(custom_api, unique_name).get("status") or {}).get("rotation") or {}
            hist = rot.get("history") or []
            return rot if not rot.get("id") and hist and hist[0].get("outcome") == "Completed" else None

        rot = wait_for(completed, timeout=90, what="rotation completed")
        new_ca = rot["history"][0]["newCA"]
        assert new_ca and new_ca != old_ca
        status = get(custom_api, unique_name)["status"]
        assert status["ca"]["fingerprint"] == new_ca
        # Every target now holds the new CA only (of ours); every leaf chains to the new CA.
        wait_for(lambda: all(bundle_fingerprints(core_v1.read_namespaced_config_map("rot-ca", ns).to_dict())
                             == {new_ca} for ns in namespaces), timeout=30, what="old CA removed everywhere")
        history = {h["fingerprint"]: h["state"] for h in status["ca"]["history"]}
        assert history[old_ca] == "retired" and history[new_ca] == "active"
        rotating = next(c for c in status["conditions"] if c["type"] == "Rotating")
        assert rotating["status"] == "False" and rotating["reason"] == "Completed"
        reasons = [e.reason for e in core_v1.list_namespaced_event("default").items
                   if e.involved_object.name == unique_name]
        assert len([r for r in reasons if r]) >= 5, reasons
    finally:
        recorder.stop()
    checked, violations = check_invariant(recorder, targets=2)
    assert violations == []
    assert checked >= 6, f"only {checked} instants recorded"

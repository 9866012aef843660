"""The ValidatingAdmissionPolicy holds the operator's ServiceAccount to managed objects, on a real API server.

RBAC lets that ServiceAccount write any Secret and ConfigMap. With its own token, as a
compromised operator would hold it, this test tries everything the operator must never do —
overwrite, claim (relabel), delete or create an unmanaged Secret; write a ConfigMap nobody opted
in; hand an object to another policy — and checks each is refused by the API server with the
policy's message and left untouched, while what the operator does (write and delete managed
objects, write an opted-in bundle target) is allowed. Other users are not affected.
"""

from __future__ import annotations

import base64
import uuid

import kubernetes
import pytest
from kubernetes.client import ApiException

from kubewait import wait_for, wait_until_refused
from paths import REPO

MANAGED_BY, OPT_IN = "certpolicy.io/managed-by", "certpolicy.io/inject-ca-from"
POLICY = "certpolicy-operator-managed-writes-only"


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def operator_core(cluster, core_v1, tmp_path_factory):
    """A CoreV1Api authenticated as the operator's ServiceAccount, with manifests/' RBAC and
    admission policy applied and the policy in force."""
    for f in ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml", "admissionpolicy.yaml"):
        cluster.kubectl("apply", "-f", str(REPO / "manifests" / f))
    token = core_v1.create_namespaced_service_account_token(
        "certpolicy-operator", "certpolicy-system",
        kubernetes.client.AuthenticationV1TokenRequest(spec=kubernetes.client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=3600)),
    ).status.token
    kubeconfig = cluster.token_kubeconfig(token, tmp_path_factory.mktemp("sa") / "sa.kubeconfig")
    api = kubernetes.client.CoreV1Api(kubernetes.config.new_client_from_config(config_file=str(kubeconfig)))
    return api


def denied(call) -> str:
    with pytest.raises(ApiException) as err:
        call()
    assert err.value.status == 403, err.value
    assert POLICY in err.value.body, err.value.body
    return err.value.body


@pytest.fixture
def objects(namespace, core_v1, operator_core):
    """An unmanaged Secret, a managed one, an unmanaged ConfigMap and an opted-in one; waits
    (server-side dry runs, nothing written) until the admission policy is in force."""
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "user-tls"}, "type": "Opaque",
                                                 "data": {"tls.crt": b64("theirs")}})
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "ours", "labels": {MANAGED_BY: "p1"}},
                                                 "type": "Opaque", "data": {"ca.crt": b64("v1")}})
    core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "app-config"}, "data": {"k": "v"}})
    core_v1.create_namespaced_config_map(namespace, {"metadata": {"name": "opted-in", "annotations": {OPT_IN: "p1"}},
                                                     "data": {"k": "v"}})

    wait_until_refused(lambda: operator_core.patch_namespaced_secret(
        "user-tls", namespace, {"data": {"tls.crt": b64("probe")}}, dry_run="All"), POLICY)
    return namespace


def test_unmanaged_secret_cannot_be_overwritten_claimed_or_deleted(objects, core_v1, operator_core):
    ns = objects
    msg = denied(lambda: operator_core.replace_namespaced_secret("user-tls", ns, {
        "metadata": {"name": "user-tls"}, "type": "Opaque", "data": {"tls.crt": b64("attacker")}}))
    assert f"may not write {ns}/user-tls" in msg
    # claiming it by adding the label is refused too: the old object decides
    denied(lambda: operator_core.patch_namespaced_secret("user-tls", ns, {
        "metadata": {"labels": {MANAGED_BY: "p1"}}, "data": {"tls.crt": b64("attacker")}}))
    # Deleting is not even granted outside the operator's namespace (manifests/rbac.yaml: a Role there).
    with pytest.raises(ApiException) as err:
        operator_core.delete_namespaced_secret("user-tls", ns)
    assert err.value.status == 403 and "cannot delete resource" in err.value.body, err.value.body
    denied(lambda: operator_core.create_namespaced_secret(ns, {"metadata": {"name": "new-unlabelled"},
                                                                "data": {"x": b64("y")}}))
    secret = core_v1.read_namespaced_secret("user-tls", ns)
    assert secret.data == {"tls.crt": b64("theirs")} and not secret.metadata.labels


def test_managed_secret_is_writable_but_not_handed_over(objects, core_v1, operator_core):
    ns = objects
    operator_core.patch_namespaced_secret("ours", ns, {"data": {"ca.crt": b64("v2")}})
    assert core_v1.read_namespaced_secret("ours", ns).data["ca.crt"] == b64("v2")
    operator_core.create_namespaced_secret(ns, {"metadata": {"name": "issued", "labels": {MANAGED_BY: "p1"}},
                                                "data": {"x": b64("y")}})
    denied(lambda: operator_core.patch_namespaced_secret("ours", ns, {"metadata": {"labels": {MANAGED_BY: "p2"}}}))
    denied(lambda: operator_core.patch_namespaced_secret("ours", ns, {"metadata": {"labels": {MANAGED_BY: None}}}))
    # Delete: RBAC grants it in the operator's namespace only (CA Secrets); the admission policy
    # then lets through only managed ones.
    with pytest.raises(ApiException) as err:
        operator_core.delete_namespaced_secret("issued", ns)
    assert err.value.status == 403 and "cannot delete resource" in err.value.body, err.value.body
    home = "certpolicy-system"
    spare, theirs = f"spare-{uuid.uuid4().hex[:8]}", f"theirs-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespaced_secret(home, {"metadata": {"name": spare, "labels": {MANAGED_BY: "p1"}},
                                            "data": {"x": b64("y")}})
    core_v1.create_namespaced_secret(home, {"metadata": {"name": theirs}, "data": {"x": b64("y")}})
    denied(lambda: operator_core.delete_namespaced_secret(theirs, home))
    operator_core.delete_namespaced_secret(spare, home)
    wait_for(lambda: spare not in [s.metadata.name for s in core_v1.list_namespaced_secret(home).items],
             timeout=10, what="managed Secret deleted")
    core_v1.delete_namespaced_secret(theirs, home)


def test_configmaps_only_when_managed_or_opted_in(objects, core_v1, operator_core):
    ns = objects
    denied(lambda: operator_core.patch_namespaced_config_map("app-config", ns, {"data": {"ca.crt": "x"}}))
    # a compromised operator cannot opt a ConfigMap in on its owner's behalf
    denied(lambda: operator_core.patch_namespaced_config_map("app-config", ns, {
        "metadata": {"annotations": {OPT_IN: "p1"}}, "data": {"ca.crt": "x"}}))
    operator_core.patch_namespaced_config_map("opted-in", ns, {"data": {"ca.crt": "bundle"}})
    assert core_v1.read_namespaced_config_map("opted-in", ns).data["ca.crt"] == "bundle"
    denied(lambda: operator_core.patch_namespaced_config_map("opted-in", ns, {"metadata": {"annotations": {OPT_IN: "p1,p9"}}}))
    assert core_v1.read_namespaced_config_map("app-config", ns).data == {"k": "v"}


def test_other_users_are_not_affected(objects, core_v1):
    ns = objects
    core_v1.patch_namespaced_secret("user-tls", ns, {"data": {"tls.crt": b64("rotated by its owner")}})
    core_v1.delete_namespaced_config_map("app-config", ns)
    name = f"u-{uuid.uuid4().hex[:6]}"
    core_v1.create_namespaced_secret(ns, {"metadata": {"name": name}, "data": {"x": b64("y")}})

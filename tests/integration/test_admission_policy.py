"""The ValidatingAdmissionPolicy holds the operator's ServiceAccount to managed objects, on a real API server.

RBAC lets that ServiceAccount write any Secret, ConfigMap and ClusterTrustBundle. With its own
token, as a compromised operator would hold it, this test tries everything the operator must never
do — overwrite, claim (relabel), delete or create an unmanaged Secret; write a ConfigMap nobody
opted in; create an unlabelled ClusterTrustBundle or overwrite someone else's; hand an object to
another policy — and checks each is refused by the API server with the policy's message and left
untouched, while what the operator does (write and delete managed objects, write an opted-in
bundle target, its own ClusterTrustBundle writes through its own code) is allowed. Other users
are not affected.
"""

from __future__ import annotations

import base64
import uuid

import kubernetes
import pytest
from kubernetes.client import ApiException

import certgen
from certpolicy.handlers.rotation import RESTARTED_FOR
from certpolicy.handlers.rotation import restart_patch as rotation_restart_patch
from certpolicy.kube.baselines import BaselineShards
from certpolicy.kube.managed import adopt, merge_into_target
from certpolicy.kube.ownership import NotManaged, Owner
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.targets import TARGET_KINDS
from certpolicy.policy.bundleref import CLUSTER_TRUST_BUNDLE, CTB_KEY
from certpolicy.policy.renewal import baseline_of
from kubewait import wait_for, wait_until_refused
from paths import REPO

MANAGED_BY, OPT_IN = "certpolicy.io/managed-by", "certpolicy.io/inject-ca-from"
POLICY = "certpolicy-operator-managed-writes-only"
CTB = TARGET_KINDS[CLUSTER_TRUST_BUNDLE]  # the API version the operator writes


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.fixture(scope="module")
def operator_client(cluster, core_v1, tmp_path_factory):
    """An ApiClient authenticated as the operator's ServiceAccount, with manifests/' RBAC and
    admission policy applied."""
    for f in ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml", "admissionpolicy.yaml"):
        cluster.kubectl("apply", "-f", str(REPO / "manifests" / f))
    token = core_v1.create_namespaced_service_account_token(
        "certpolicy-operator", "certpolicy-system",
        kubernetes.client.AuthenticationV1TokenRequest(spec=kubernetes.client.V1TokenRequestSpec(
            audiences=[], expiration_seconds=3600)),
    ).status.token
    kubeconfig = cluster.token_kubeconfig(token, tmp_path_factory.mktemp("sa") / "sa.kubeconfig")
    return kubernetes.config.new_client_from_config(config_file=str(kubeconfig))


@pytest.fixture(scope="module")
def operator_core(operator_client):
    return kubernetes.client.CoreV1Api(operator_client)


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
    assert f"may not write Secret {ns}/user-tls" in msg
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


def test_in_its_own_namespace_only_renewal_baseline_configmaps(objects, core_v1, operator_client, operator_core):
    """The renewal guard's store (kube/baselines.py), run with the ServiceAccount's token, creates,
    updates and deletes its shards there; any other ConfigMap there is refused, managed or not."""
    home = "certpolicy-system"
    policy = Owner(f"p-{uuid.uuid4().hex[:6]}", str(uuid.uuid4()))
    as_operator = RawClient(operator_client)
    ca = certgen.root("baseline RBAC root")
    store = BaselineShards.load(as_operator, policy, home)
    assert store.put("ns1", "a", baseline_of(certgen.leaf(ca, "a.example.com").cert, None))
    assert store.save(as_operator) == 1  # created
    assert store.put("ns1", "a", baseline_of(certgen.leaf(ca, "a.example.com", eku=["serverAuth"]).cert, None))
    assert store.save(as_operator) == 1  # updated
    again = BaselineShards.load(as_operator, policy, home)
    assert again.get("ns1", "a") == store.get("ns1", "a")
    again.retain([])
    assert again.save(as_operator) == 1  # deleted: empty
    assert core_v1.list_namespaced_config_map(home, label_selector=f"{MANAGED_BY}={policy.name}").items == []

    other = f"other-{uuid.uuid4().hex[:6]}"
    labels = {MANAGED_BY: policy.name, "certpolicy.io/role": "bundle"}
    msg = denied(lambda: operator_core.create_namespaced_config_map(home, {
        "metadata": {"name": other, "labels": labels}, "data": {"ca.crt": "x"}}))
    assert f"writes only the renewal guard's ConfigMaps (certpolicy.io/role=renewal-baseline); ConfigMap {home}/{other}" \
        in msg, msg
    core_v1.create_namespaced_config_map(home, {"metadata": {"name": other, "labels": labels}, "data": {"k": "v"}})
    denied(lambda: operator_core.patch_namespaced_config_map(other, home, {"data": {"k": "overwritten"}}))
    # relabelling it as a baseline does not make it one: the old object decides
    denied(lambda: operator_core.patch_namespaced_config_map(other, home, {
        "metadata": {"labels": {"certpolicy.io/role": "renewal-baseline"}}}))
    denied(lambda: operator_core.delete_namespaced_config_map(other, home))
    assert core_v1.read_namespaced_config_map(other, home).data == {"k": "v"}
    core_v1.delete_namespaced_config_map(other, home)
    # Deleting ConfigMaps is granted in the operator's namespace only (manifests/rbac.yaml).
    with pytest.raises(ApiException) as err:
        operator_core.delete_namespaced_config_map("opted-in", objects)
    assert err.value.status == 403 and "cannot delete resource" in err.value.body, err.value.body


def test_other_users_are_not_affected(objects, core_v1, operator_core):
    """The admission policy binds only the operator's ServiceAccount: an admin's writes to the same
    unmanaged objects the operator is refused go through, and each is read back as written."""
    ns = objects
    core_v1.patch_namespaced_secret("user-tls", ns, {"metadata": {"labels": {"team": "a"}},
                                                     "data": {"tls.crt": b64("rotated by its owner")}})
    core_v1.delete_namespaced_config_map("app-config", ns)
    name = f"u-{uuid.uuid4().hex[:6]}"
    core_v1.create_namespaced_secret(ns, {"metadata": {"name": name}, "data": {"x": b64("y")}})
    # The same writes as the operator are still refused (the policy is in force for it).
    denied(lambda: operator_core.patch_namespaced_secret("user-tls", ns, {"data": {"tls.crt": b64("attacker")}}))
    denied(lambda: operator_core.create_namespaced_secret(ns, {"metadata": {"name": f"{name}-op"}, "data": {"x": b64("y")}}))
    secret = core_v1.read_namespaced_secret("user-tls", ns)
    assert secret.data == {"tls.crt": b64("rotated by its owner")} and secret.metadata.labels == {"team": "a"}
    with pytest.raises(ApiException) as err:
        core_v1.read_namespaced_config_map("app-config", ns)
    assert err.value.status == 404
    assert core_v1.read_namespaced_secret(name, ns).data == {"x": b64("y")}
    assert f"{name}-op" not in [s.metadata.name for s in core_v1.list_namespaced_secret(ns).items]


# ---- ClusterTrustBundles (cluster-scoped, certificates.k8s.io beta: served by the harness) ----

def ctb(name: str, pem: bytes, labels: dict | None = None, annotations: dict | None = None) -> dict:
    return {"apiVersion": CTB.api_version, "kind": CLUSTER_TRUST_BUNDLE,
            "metadata": {"name": name, "labels": labels or {}, "annotations": annotations or {}},
            "spec": {CTB_KEY: pem.decode()}}


@pytest.fixture
def bundles(api_client, operator_client, unique_name):
    """Two ClusterTrustBundles created by an admin: a foreign one and one its owner opted in for
    policy p1. Waits (server-side dry run) until the admission policy refuses an unlabelled create;
    deletes every ClusterTrustBundle of the test afterwards (they outlive namespaces)."""
    admin = RawClient(api_client)
    names = {"foreign": f"{unique_name}-foreign", "opted": f"{unique_name}-opted", "ours": f"{unique_name}-ours",
             "unlabelled": f"{unique_name}-unlabelled"}
    theirs = certgen.pem(certgen.root("CTB owner's Root"))
    admin.post(CTB.path(""), ctb(names["foreign"], theirs))
    admin.post(CTB.path(""), ctb(names["opted"], theirs, annotations={OPT_IN: "p1"}))
    wait_until_refused(lambda: RawClient(operator_client).post(
        CTB.path(""), ctb(f"{unique_name}-probe", theirs), query={"dryRun": "All"}), POLICY)
    yield names, theirs
    for name in names.values():
        try:
            admin.delete(CTB.path("", name))
        except ApiException as e:
            if e.status != 404:
                raise


def test_foreign_cluster_trust_bundles_cannot_be_created_overwritten_or_claimed(bundles, api_client, operator_client):
    names, theirs = bundles
    admin, as_operator = RawClient(api_client), RawClient(operator_client)
    attacker = certgen.pem(certgen.root("attacker Root"))
    new = names["unlabelled"]
    msg = denied(lambda: as_operator.post(CTB.path(""), ctb(new, attacker)))
    assert f"creates only objects labelled {MANAGED_BY}; ClusterTrustBundle {new} is not" in msg, msg
    with pytest.raises(ApiException) as err:
        admin.get(CTB.path("", new))
    assert err.value.status == 404

    foreign = names["foreign"]
    current = admin.get(CTB.path("", foreign))
    overwrite = {**current, "spec": {CTB_KEY: attacker.decode()}}
    msg = denied(lambda: as_operator.put(CTB.path("", foreign), overwrite))
    assert f"may not write ClusterTrustBundle {foreign}: it is neither labelled" in msg, msg
    # claiming it (the label) or opting it in on its owner's behalf: the old object decides
    for meta in ({"labels": {MANAGED_BY: "p1"}}, {"annotations": {OPT_IN: "p1"}}):
        claimed = {**current, "metadata": {**current["metadata"], **meta}}
        denied(lambda body=claimed: as_operator.put(CTB.path("", foreign), body))
    # No patch or delete verb on ClusterTrustBundles at all (manifests/rbac.yaml): refused by RBAC.
    for call in (lambda: as_operator.patch(CTB.path("", foreign), {"spec": {CTB_KEY: attacker.decode()}}),
                 lambda: as_operator.delete(CTB.path("", foreign))):
        with pytest.raises(ApiException) as err:
            call()
        assert err.value.status == 403 and "cannot" in err.value.body and POLICY not in err.value.body, err.value.body
    after = admin.get(CTB.path("", foreign))
    assert after["spec"][CTB_KEY] == theirs.decode() and not after["metadata"].get("labels")
    assert after["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]


def test_the_operators_own_cluster_trust_bundle_writes_pass(bundles, api_client, operator_client):
    """What the operator itself does to ClusterTrustBundles — its own code (merge_into_target), with
    the ServiceAccount's token — passes: create its target, update it, merge into an opted-in one.
    Handing its own to another policy is refused."""
    names, theirs = bundles
    admin, as_operator = RawClient(api_client), RawClient(operator_client)
    owner = Owner("p1", str(uuid.uuid4()))
    ca1, ca2 = (certgen.pem(certgen.root(f"p1 CA {i}")) for i in (1, 2))

    def write(name: str, pem: bytes):
        return merge_into_target(as_operator, CLUSTER_TRUST_BUNDLE, "", name, owner, key=CTB_KEY,
                                 update=lambda current: CTB.render(current, CTB_KEY, pem, {}))

    ours = names["ours"]
    assert write(ours, ca1).written
    assert write(ours, ca1 + ca2).written
    obj = admin.get(CTB.path("", ours))
    assert obj["metadata"]["labels"][MANAGED_BY] == "p1" and obj["spec"][CTB_KEY] == (ca1 + ca2).decode()

    opted = names["opted"]
    assert write(opted, theirs + ca1).written
    assert admin.get(CTB.path("", opted))["spec"][CTB_KEY] == (theirs + ca1).decode()
    # the code refuses a foreign one before the API server would
    with pytest.raises(NotManaged):
        write(names["foreign"], ca1)

    relabelled = {**obj, "metadata": {**obj["metadata"], "labels": {**obj["metadata"]["labels"], MANAGED_BY: "p2"}}}
    msg = denied(lambda: as_operator.put(CTB.path("", ours), relabelled))
    assert f"may not change the {MANAGED_BY} label or the {OPT_IN} annotation of ClusterTrustBundle {ours}" in msg
    assert admin.get(CTB.path("", ours))["metadata"]["labels"][MANAGED_BY] == "p1"


# ---- Deployments, StatefulSets, DaemonSets: a rollout restart and nothing else ----

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"
RESTART_ONLY = ("may only set the pod template annotations kubectl.kubernetes.io/restartedAt and "
                "certpolicy.io/restarted-for")
SYSTEM_REFUSED = "never restarts workloads in the system namespaces"


def workload(kind: str, name: str) -> dict:
    template = {"metadata": {"labels": {"app": name}, "annotations": {"team": "a"}},
                "spec": {"containers": [{"name": "app", "image": "registry.example/app:1"}]}}
    spec: dict = {"selector": {"matchLabels": {"app": name}}, "template": template}
    if kind != "DaemonSet":
        spec["replicas"] = 1
    if kind == "StatefulSet":
        spec["serviceName"] = name
    return {"apiVersion": "apps/v1", "kind": kind, "metadata": {"name": name, "labels": {"app": name}}, "spec": spec}


def restart_patch(stamp: str = "2030-01-01T00:00:00Z") -> dict:
    """The body handlers/rotation.py restart_workload sends (its own builder)."""
    return rotation_restart_patch(stamp, "p/rotation-1:4")


@pytest.fixture
def workloads(namespace, api_client, operator_client):
    """A Deployment, a StatefulSet and a DaemonSet created by an admin in the test's namespace;
    waits (server-side dry run) until the admission policy refuses a replicas change."""
    admin = RawClient(api_client)
    paths = {}
    for kind, plural in (("Deployment", "deployments"), ("StatefulSet", "statefulsets"), ("DaemonSet", "daemonsets")):
        name = f"{plural[:-1]}-app"
        admin.post(f"/apis/apps/v1/namespaces/{namespace}/{plural}", workload(kind, name))
        paths[kind] = f"/apis/apps/v1/namespaces/{namespace}/{plural}/{name}"
    wait_until_refused(lambda: RawClient(operator_client).patch(
        paths["Deployment"], {"spec": {"replicas": 5}}, query={"dryRun": "All"}), RESTART_ONLY)
    return paths


def test_a_rollout_restart_passes_in_an_allowed_namespace(workloads, api_client, operator_client):
    """The operator's own restart (the patch restart_workload sends) of each kind goes through, and
    a second one (a later stamp) too; only the annotation changed."""
    admin, as_operator = RawClient(api_client), RawClient(operator_client)
    for kind, path in workloads.items():
        before = admin.get(path)
        as_operator.patch(path, restart_patch())
        as_operator.patch(path, restart_patch("2030-01-01T00:00:05Z"))
        after = admin.get(path)
        assert after["spec"]["template"]["metadata"]["annotations"] == {
            "team": "a", RESTARTED_AT: "2030-01-01T00:00:05Z", RESTARTED_FOR: "p/rotation-1:4"}, kind
        # `kubectl rollout restart`'s own body (restartedAt alone) passes too
        as_operator.patch(path, {"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2030-01-01T00:00:09Z"}}}}})
        assert after["spec"]["template"]["spec"] == before["spec"]["template"]["spec"], kind
        assert after["metadata"]["labels"] == before["metadata"]["labels"], kind


@pytest.mark.parametrize("change", [
    pytest.param({"spec": {"replicas": 3}}, id="replicas"),
    pytest.param({"spec": {"template": {"spec": {"containers": [{"name": "app", "image": "attacker/app:1"}]}}}},
                 id="image"),
    pytest.param({"spec": {"template": {"metadata": {"annotations": {RESTARTED_AT: "2030-01-01T00:00:00Z",
                                                                     "team": "attacker"}}}}},
                 id="restartedAt-and-another-annotation"),
    pytest.param({"spec": {"template": {"metadata": {"annotations": {"team": None}}}}}, id="annotation-removed"),
    pytest.param({"spec": {"template": {"metadata": {"labels": {"extra": "x"}}}}}, id="template-label"),
    pytest.param({"spec": {"template": {"spec": {"serviceAccountName": "cluster-admin-sa"}},
                           "metadata": {"annotations": {RESTARTED_AT: "2030-01-01T00:00:00Z"}}}},
                 id="service-account"),
    pytest.param({"spec": {"minReadySeconds": 30}}, id="other-spec-field"),
    pytest.param({"metadata": {"labels": {"app": "other"}}}, id="object-label"),
    pytest.param({"metadata": {"annotations": {"note": "x"}}}, id="object-annotation"),
])
def test_any_other_change_is_refused(workloads, api_client, operator_client, change):
    admin, as_operator = RawClient(api_client), RawClient(operator_client)
    path = workloads["Deployment"]
    before = admin.get(path)
    msg = denied(lambda: as_operator.patch(path, change))
    assert RESTART_ONLY in msg and f"Deployment {path.split('/')[5]}/deployment-app; nothing else may change" in msg, msg
    assert admin.get(path)["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]


def test_statefulset_and_daemonset_template_changes_are_refused(workloads, operator_client):
    as_operator = RawClient(operator_client)
    for kind in ("StatefulSet", "DaemonSet"):
        msg = denied(lambda kind=kind: as_operator.patch(workloads[kind], {"spec": {"template": {"spec": {
            "containers": [{"name": "app", "image": "attacker/app:1"}]}}}}))
        assert RESTART_ONLY in msg, msg


def test_no_restart_in_a_system_namespace(workloads, api_client, operator_client, unique_name):
    """kube-system (and the other namespaces the operator refuses): even the restartedAt patch."""
    admin, as_operator = RawClient(api_client), RawClient(operator_client)
    name = f"{unique_name}-sys"
    path = f"/apis/apps/v1/namespaces/kube-system/deployments/{name}"
    admin.post("/apis/apps/v1/namespaces/kube-system/deployments", workload("Deployment", name))
    try:
        msg = denied(lambda: as_operator.patch(path, restart_patch()))
        assert f"{SYSTEM_REFUSED}; Deployment kube-system/{name}" in msg, msg
        assert RESTARTED_AT not in admin.get(path)["spec"]["template"]["metadata"]["annotations"]
    finally:
        admin.delete(path)



# ---- Leases: the cluster's one leader Lease and no other ----

def test_only_the_leader_lease(objects, operator_client):
    """RBAC grants create on any Lease in kube-system (a create cannot be narrowed by name): the
    policy refuses every Lease but kube-system/certpolicy-operator (dry runs: nothing is written)."""
    as_operator = RawClient(operator_client)

    def lease(ns: str, name: str) -> tuple[str, dict]:
        return (f"/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
                {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": {"name": name},
                 "spec": {"holderIdentity": "x", "leaseDurationSeconds": 15}})

    path, body = lease("kube-system", "kube-controller-manager-decoy")
    msg = denied(lambda: as_operator.post(path, body, query={"dryRun": "All"}))
    assert "writes only its leader Lease kube-system/certpolicy-operator; Lease kube-system/kube-controller-manager-decoy" \
        in msg, msg
    path, body = lease("kube-system", "certpolicy-operator")
    try:
        as_operator.post(path, body, query={"dryRun": "All"})
    except ApiException as e:  # the operator of another test may hold it already: not refused, just there
        assert e.status == 409, e.body


def test_adopting_a_deleted_predecessors_objects_passes_and_only_that(objects, core_v1, operator_client):
    """``spec.ca.adopt`` (kube/managed.py ``adopt``), with the ServiceAccount's token: rewriting the
    owner UID annotation of a Secret and a ConfigMap labelled for the policy passes the admission
    policy; the same write to an object not labelled for any policy is refused by the API server,
    and the code itself takes nothing whose recorded UID is a live policy's."""
    ns = objects
    as_operator = RawClient(operator_client)
    owner = Owner("p1", str(uuid.uuid4()))
    dead = str(uuid.uuid4())
    left = {"labels": {MANAGED_BY: "p1", "certpolicy.io/role": "bundle"},
            "annotations": {"certpolicy.io/managed-by-uid": dead}}
    core_v1.create_namespaced_config_map(ns, {"metadata": {"name": "left-bundle", **left}, "data": {"ca.crt": ""}})
    core_v1.create_namespaced_secret(ns, {"metadata": {"name": "left-leaf", **{**left, "labels": {
        MANAGED_BY: "p1", "certpolicy.io/role": "leaf"}}}, "data": {"x": b64("y")}})
    assert adopt(as_operator, "ConfigMap", ns, "left-bundle", owner, frozenset())
    assert adopt(as_operator, "Secret", ns, "left-leaf", owner, frozenset())
    for obj in (core_v1.read_namespaced_config_map("left-bundle", ns), core_v1.read_namespaced_secret("left-leaf", ns)):
        assert obj.metadata.annotations["certpolicy.io/managed-by-uid"] == owner.uid
        assert obj.metadata.labels[MANAGED_BY] == "p1"
    # a live policy's UID: the code takes nothing (and changes nothing)
    live = str(uuid.uuid4())
    core_v1.patch_namespaced_config_map("left-bundle", ns, {"metadata": {"annotations": {
        "certpolicy.io/managed-by-uid": live}}})
    assert not adopt(as_operator, "ConfigMap", ns, "left-bundle", owner, frozenset({live}))
    assert core_v1.read_namespaced_config_map("left-bundle", ns).metadata.annotations[
        "certpolicy.io/managed-by-uid"] == live
    # the same annotation write to an object nobody labelled: refused by the API server
    denied(lambda: as_operator.patch(f"/api/v1/namespaces/{ns}/secrets/user-tls", {"metadata": {
        "annotations": {"certpolicy.io/managed-by-uid": owner.uid}}}))


def test_an_issuer_ca_secret_only_as_a_ca_key_pair_swap(objects, core_v1, operator_client):
    """spec.ca.certManager, step 3: the operator's write into a cert-manager CA Issuer's Secret
    (kube/certmanager.py, the very function the rotation uses) passes; the same Secret relabelled,
    re-annotated, with another data key changed or a ca.crt that is not the new tls.crt, is refused."""
    from certpolicy.kube.certmanager import write_issuer_ca_secret

    ns, raw = objects, RawClient(operator_client)
    old, new = certgen.root("issuer old"), certgen.root("issuer new")
    core_v1.create_namespaced_secret(ns, {"metadata": {"name": "issuer-ca", "annotations": {"team": "pki"}},
                                          "type": "kubernetes.io/tls",
                                          "data": {"tls.crt": b64(old.pem.decode()),
                                                   "tls.key": b64(old.key_pem().decode()), "extra": b64("kept")}})
    current = raw.get(f"/api/v1/namespaces/{ns}/secrets/issuer-ca")
    data = {"tls.crt": new.pem, "tls.key": new.key_pem(), "ca.crt": new.pem}
    stored = write_issuer_ca_secret(raw, current, data)
    assert stored["data"]["tls.crt"] == b64(new.pem.decode()) and stored["data"]["extra"] == b64("kept")
    assert stored["metadata"]["annotations"] == {"team": "pki"} and not stored["metadata"].get("labels")

    def refused(change) -> None:
        body = raw.get(f"/api/v1/namespaces/{ns}/secrets/issuer-ca")
        change(body)
        with pytest.raises(ApiException) as err:
            raw.put(f"/api/v1/namespaces/{ns}/secrets/issuer-ca", body)
        assert err.value.status == 403 and POLICY in str(err.value.body), err.value.body

    refused(lambda b: b["metadata"].setdefault("labels", {}).update({"app": "x"}))
    refused(lambda b: b["metadata"]["annotations"].update({"team": "attacker"}))
    refused(lambda b: b["data"].update({"extra": b64("changed")}))
    refused(lambda b: b["data"].update({"ca.crt": b64(old.pem.decode())}))  # ca.crt is not the new tls.crt
    # An Opaque Secret (not a key pair) is never written this way.
    with pytest.raises(ApiException) as err:
        write_issuer_ca_secret(raw, raw.get(f"/api/v1/namespaces/{ns}/secrets/user-tls"), data)
    assert err.value.status == 403
    assert core_v1.read_namespaced_secret("user-tls", ns).data == {"tls.crt": b64("theirs")}

"""Pods that read a leaf or a trust bundle only when they start, on a real API server.

There is no kubelet here: Pods stay Pending, so the test plays the kubelet's part by writing
``status.startTime`` (the operator judges Pods by it) and the Deployment controller's part by
replacing a Pod once its Deployment's template was stamped. What is checked is what the operator
reads and writes: the subPath report outside rotations, the rotation waiting at step 2 for a Pod
that loads its truststore at start (annotation), the rollout restart of the Deployment owning a
Pod that takes its leaf through ``env`` (``kubectl.kubernetes.io/restartedAt``, once), and the
rotation completing once the replacement Pods started.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid

from kubernetes import client

import certgen
from certpolicy.kube.namespaces import ensure_namespace
from crd import GROUP, PLURAL, VERSION
from kubewait import wait_for
from pods import start_pod

RESTARTED_AT = "kubectl.kubernetes.io/restartedAt"


def _events(core_v1, name: str, reason: str) -> list[str]:
    return [e.message for e in core_v1.list_event_for_all_namespaces(
        field_selector=f"involvedObject.name={name},reason={reason}").items]


def test_pods_reading_at_start_are_reported_waited_for_and_restarted_once(
        operator, custom_api, core_v1, api_client, policies, namespace, unique_name):
    ns = namespace
    apps = client.AppsV1Api(api_client)
    policies({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
        "spec": {
            "selector": {"names": [{"namespace": ns, "name": "web-tls"}]},
            "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
            "ca": {"secretName": f"{unique_name}-ca"},
            "trustBundles": [{"configMap": {"name": "rot-ca"}, "namespaces": [ns]}],
            "issuance": [{"secretName": "web-tls", "namespace": ns, "dnsNames": ["web.pods.test"]}],
            "rotation": {"propagationDelay": "0s", "restartWorkloads": True},
        },
    })

    def status() -> dict:
        return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name).get("status") or {}

    def rotation() -> dict:
        return status().get("rotation") or {}

    wait_for(lambda: (status().get("issued") or {}).get("ready") == 1, timeout=60, what="leaf issued")
    hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)

    # Outside rotations: a bundle target mounted through subPath is reported, with an event on the Pod.
    start_pod(core_v1, ns, "legacy-0", bundle="rot-ca", sub_path=True, started_at=hour_ago)
    st = wait_for(lambda: (s := status()).get("subPathMounts") and s, timeout=30, what="subPath bundle reported")
    assert st["subPathMounts"] == [{"namespace": ns, "pod": "legacy-0", "kind": "ConfigMap", "name": "rot-ca"}]
    assert any("ConfigMap rot-ca is mounted with subPath" in m for m in _events(core_v1, "legacy-0", "SubPathMount"))
    core_v1.delete_namespaced_pod("legacy-0", ns)
    wait_for(lambda: not status().get("subPathMounts"), timeout=30, what="report cleared")

    # A Java-like Pod (no owner) loads the bundle at start; a Deployment's Pod takes its leaf through env.
    apps.create_namespaced_deployment(ns, {
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}}}})
    start_pod(core_v1, ns, "java-0", bundle="rot-ca", trust_at_start=True, started_at=hour_ago)
    start_pod(core_v1, ns, "web-5d4f8-aaaaa", env_secret="web-tls", replica_set="web-5d4f8", started_at=hour_ago)
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                           {"metadata": {"annotations": {"certpolicy.io/rotate": "pods"}}})

    # Step 2 holds: java-0 read the bundle before it held the new CA, and it has no owner to restart.
    rot = wait_for(lambda: (r := rotation()).get("step") == 2 and (r.get("workloads") or {}).get("waiting") and r,
                   timeout=60, what="step 2 waits for the Pod that loads its truststore at start")
    assert rot["workloads"]["waiting"] == [f"{ns}/java-0"] and "java-0" in rot["message"]
    assert any(f"{ns}/java-0" in m for m in _events(core_v1, unique_name, "RotationWaitingForPods"))
    assert RESTARTED_AT not in (apps.read_namespaced_deployment("web", ns).spec.template.metadata.annotations or {})
    # Someone restarts it: the new Pod started after the bundle held the new CA.
    core_v1.delete_namespaced_pod("java-0", ns)
    start_pod(core_v1, ns, "java-1", bundle="rot-ca", trust_at_start=True,
              started_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))

    # Step 4: web's Pod took the old leaf through env; its Deployment is rollout-restarted, once.
    def stamped():
        annotations = apps.read_namespaced_deployment("web", ns).spec.template.metadata.annotations or {}
        return annotations.get(RESTARTED_AT)

    stamp = wait_for(stamped, timeout=60, what="the Deployment's pod template stamped like kubectl rollout restart")
    # The status is written after the pass's actions: wait for the pass that stamped it.
    rot = wait_for(lambda: (r := rotation()).get("step") == 4 and (r.get("workloads") or {}).get("restarted") and r,
                   timeout=30, what="step 4 records the restart")
    assert rot["workloads"]["restarted"] == [f"4:Deployment/{ns}/web"], rot
    assert f"{ns}/web-5d4f8-aaaaa" in rot["workloads"]["waiting"]
    assert any(f"Deployment/{ns}/web" in m for m in _events(core_v1, unique_name, "RotationRestartedWorkload"))
    # The Deployment controller's part: a new Pod replaces the old one.
    core_v1.delete_namespaced_pod("web-5d4f8-aaaaa", ns)
    start_pod(core_v1, ns, "web-7c9b2-bbbbb", env_secret="web-tls", replica_set="web-7c9b2",
              started_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))

    def completed():
        r = rotation()
        hist = r.get("history") or []
        return not r.get("id") and hist and hist[0]["id"] == "pods" and hist[0]["outcome"] == "Completed"

    wait_for(completed, timeout=90, what="rotation completed once the Pods restarted")
    assert stamped() == stamp  # restarted once, never again


def test_restart_scope_is_the_rotating_policys_objects_in_the_namespaces_it_selects(
        operator, custom_api, core_v1, api_client, policies, namespace, unique_name):
    """spec.rotation.restartWorkloads restarts the owner of a Pod that takes a leaf of this policy
    at start, in a namespace the policy selects. In another namespace, a Deployment of the same
    name whose Pods take a Secret of the same name (env) and a ConfigMap named like the bundle
    target (subPath) is never written, never named as waiting, and never holds the rotation."""
    ns, other = namespace, f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, other)
    apps = client.AppsV1Api(api_client)
    policies({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
        "spec": {
            "selector": {"names": [{"namespace": ns, "name": "web-tls"}]},
            "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
            "ca": {"secretName": f"{unique_name}-ca"},
            "trustBundles": [{"configMap": {"name": "rot-ca"}, "namespaces": [ns]}],
            "issuance": [{"secretName": "web-tls", "namespace": ns, "dnsNames": ["web.pods.test"]}],
            "rotation": {"propagationDelay": "0s", "restartWorkloads": True},
        },
    })

    def status() -> dict:
        return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name).get("status") or {}

    def rotation() -> dict:
        return status().get("rotation") or {}

    wait_for(lambda: (status().get("issued") or {}).get("ready") == 1, timeout=60, what="leaf issued")
    hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    # The other namespace's own objects, named like the policy's.
    own = certgen.leaf(certgen.root("someone else's CA"), "web.other.test")
    core_v1.create_namespaced_secret(other, {"metadata": {"name": "web-tls"}, "type": "kubernetes.io/tls", "data": {
        "tls.crt": base64.b64encode(own.pem).decode(), "tls.key": base64.b64encode(own.key_pem()).decode()}})
    core_v1.create_namespaced_config_map(other, {"metadata": {"name": "rot-ca"}, "data": {"ca.crt": own.pem.decode()}})
    template = {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}
    for where in (ns, other):
        for app in ("web", "java"):
            apps.create_namespaced_deployment(where, {
                "metadata": {"name": app},
                "spec": {"selector": {"matchLabels": {"app": app}},
                         "template": {"metadata": {"labels": {"app": app}}, "spec": template}}})
    start_pod(core_v1, ns, "web-5d4f8-aaaaa", env_secret="web-tls", replica_set="web-5d4f8", started_at=hour_ago)
    start_pod(core_v1, other, "web-5d4f8-aaaaa", env_secret="web-tls", replica_set="web-5d4f8", started_at=hour_ago)
    start_pod(core_v1, other, "java-6a7b8-ccccc", bundle="rot-ca", sub_path=True, replica_set="java-6a7b8",
         started_at=hour_ago)
    untouched = {app: apps.read_namespaced_deployment(app, other).metadata.resource_version for app in ("web", "java")}
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                           {"metadata": {"annotations": {"certpolicy.io/rotate": "scope"}}})

    rot = wait_for(lambda: (r := rotation()).get("step") == 4 and (r.get("workloads") or {}).get("restarted") and r,
                   timeout=60, what="step 4 restarts the selected namespace's Deployment")
    assert rot["workloads"]["restarted"] == [f"4:Deployment/{ns}/web"], rot
    assert rot["workloads"]["waiting"] == [f"{ns}/web-5d4f8-aaaaa"], rot
    assert RESTARTED_AT in (apps.read_namespaced_deployment("web", ns).spec.template.metadata.annotations or {})
    core_v1.delete_namespaced_pod("web-5d4f8-aaaaa", ns)
    start_pod(core_v1, ns, "web-7c9b2-bbbbb", env_secret="web-tls", replica_set="web-7c9b2",
         started_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))

    def completed():
        r = rotation()
        hist = r.get("history") or []
        return not r.get("id") and hist and hist[0]["id"] == "scope" and hist[0]["outcome"] == "Completed" and r

    wait_for(completed, timeout=90, what="rotation completed once the selected namespace's Pod restarted")
    # Never written (same resourceVersion: no write of any kind), never named anywhere.
    assert {app: apps.read_namespaced_deployment(app, other).metadata.resource_version
            for app in ("web", "java")} == untouched
    for reason in ("RotationWaitingForPods", "RotationRestartedWorkload"):
        assert not [m for m in _events(core_v1, unique_name, reason) if f"{other}/" in m], reason
    assert core_v1.read_namespaced_secret("web-tls", other).data["tls.crt"] == base64.b64encode(own.pem).decode()


def test_a_restart_retried_after_a_lost_status_write_restarts_nobody_again(api_client, namespace):
    """One restart per owner per rotation step, even when the status that recorded it was lost:
    the retried decision re-derives a *later* not_before (the leaves' move or the bundles'
    verification is observed again, later), so restartedAt alone would restart the owner again.
    The owner's own record (certpolicy.io/restarted-for) stops it: no write at all. Another step
    of the same rotation, or another rotation, does restart it."""
    from types import SimpleNamespace

    from certpolicy.handlers.rotation import RESTARTED_FOR, restart_workload
    from certpolicy.kube.rawapi import RawClient
    from certpolicy.rotation import RestartWorkload

    apps = client.AppsV1Api(api_client)
    apps.create_namespaced_deployment(namespace, {
        "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]}}}})
    owner = f"Deployment/{namespace}/web"

    def run(rotation: str, step: int, not_before: dt.datetime) -> bool:
        now = dt.datetime.now(dt.UTC)
        ctx = SimpleNamespace(raw=RawClient(api_client), now=now, name="pol")
        return restart_workload(ctx, RestartWorkload(owner, rotation, step, not_before))  # type: ignore[arg-type]

    def template() -> tuple[str, dict]:
        d = apps.read_namespaced_deployment("web", namespace)
        return d.metadata.resource_version, dict(d.spec.template.metadata.annotations or {})

    for step in (2, 4):
        assert run("r1", step, dt.datetime.now(dt.UTC))  # after any earlier stamp: a restart is due
        version, annotations = template()
        assert annotations[RESTARTED_FOR] == f"pol/r1:{step}" and RESTARTED_AT in annotations
        # The retry after a lost status write: not_before observed again, after the stamp.
        later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1)
        assert not run("r1", step, later)
        assert template() == (version, annotations), "restarted again for the same rotation step"
    assert run("r2", 2, dt.datetime.now(dt.UTC))
    assert template()[1][RESTARTED_FOR] == "pol/r2:2"

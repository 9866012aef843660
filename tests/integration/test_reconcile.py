"""Reconciling policies against real Secrets and Pods on the local control plane.

Each test creates its own namespace(s) labelled uniquely and a policy selecting only them, then
waits for the state it expects (status, events, metrics) through the API with a deadline.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from kubernetes import client

import certgen
from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.timestamps import rfc3339
from crd import GROUP, PLURAL, VERSION, condition, wait_status
from kubewait import events_since, wait_for


# ---- helpers -------------------------------------------------------------------------------------
def make_policy(create, name: str, label: str, requirements: dict, **spec) -> dict:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
        "spec": {"selector": {"namespaceSelector": {"matchLabels": {"certpolicy-test-run": label}},
                              **spec.pop("selector", {})},
                 "requirements": requirements, **spec},
    }
    return create(body)


def labelled_namespace(core_v1, label: str, **labels) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, name, labels={"certpolicy-test-run": label, **labels})
    return name


def put_secret(core_v1, namespace: str, name: str, secret: dict, labels: dict | None = None) -> client.V1Secret:
    body = client.V1Secret(metadata=client.V1ObjectMeta(name=name, labels=labels or {}),
                           type=secret["type"], data=secret["data"])
    try:
        return core_v1.create_namespaced_secret(namespace, body)
    except client.ApiException as e:
        if e.status != 409:
            raise
        return core_v1.replace_namespaced_secret(name, namespace, body)


def secret_events(core_v1, namespace: str, secret: str) -> list:
    evs = core_v1.list_namespaced_event(namespace, field_selector=f"involvedObject.name={secret}").items
    return [e for e in evs if e.source and e.source.component == "certpolicy-operator"]


@pytest.fixture
def ca():
    return certgen.root("Test Private Root CA")


@pytest.fixture
def bundle_cm(core_v1, operator_namespace, ca):
    name = f"bundle-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespaced_config_map(operator_namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name), data={"ca.crt": certgen.pem(ca).decode()}))
    return {"configMap": {"namespace": operator_namespace, "name": name, "key": "ca.crt"}}


# ---- tests ---------------------------------------------------------------------------------------
def test_missing_client_auth_is_reported_and_fixing_it_turns_compliant(
        policies, operator, core_v1, custom_api, unique_name, ca, bundle_cm):
    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    good = certgen.leaf(ca, "mirth.uat.example.com")
    renewed = certgen.leaf(ca, "labfeed.uat.example.com", eku=["serverAuth"])  # the 2026 renewal
    put_secret(core_v1, ns, "mirth-tls", certgen.tls_secret(good))
    put_secret(core_v1, ns, "labfeed-tls", certgen.tls_secret(renewed))
    make_policy(policies, unique_name, label, {
        "extendedKeyUsages": ["serverAuth", "clientAuth"], "allowedDNSNames": ["*.uat.example.com"],
        "trustBundle": bundle_cm})

    st = wait_status(custom_api, unique_name, lambda s: condition(s, "Compliant").get("status") == "False",
                     "Compliant=False")
    assert condition(st, "Compliant")["reason"] == "MissingClientAuth"
    assert condition(st, "Ready")["status"] == "True"
    assert condition(st, "Degraded")["status"] == "False"
    assert st["summary"] == {"selected": 2, "compliant": 1, "violating": 1, "expiringSoon": 0}
    assert [(v["name"], v["reasons"]) for v in st["violations"]] == [("labfeed-tls", ["MissingClientAuth"])]

    events = wait_for(lambda: secret_events(core_v1, ns, "labfeed-tls"), what="Warning event on the Secret")
    assert events[0].type == "Warning" and events[0].reason == "MissingClientAuth"
    assert unique_name in events[0].message and "clientAuth" in events[0].message
    assert secret_events(core_v1, ns, "mirth-tls") == []

    text = wait_for(lambda: next((t for t in [operator.scrape()] if f'policy="{unique_name}"' in t), None),
                    what="metrics")
    assert (f'certpolicy_findings{{policy="{unique_name}",reason="MissingClientAuth",secret_namespace="{ns}",'
            f'severity="Critical"}} 1.0') in text
    assert f'certpolicy_policy_compliant{{policy="{unique_name}"}} 0.0' in text
    assert f'certpolicy_certificate_not_after_timestamp_seconds{{policy="{unique_name}",role="leaf",' \
           f'secret_name="mirth-tls",secret_namespace="{ns}",subject_cn="mirth.uat.example.com"}}' in text

    # The team re-issues with clientAuth: the policy turns compliant and says so once.
    fixed = certgen.leaf(ca, "labfeed.uat.example.com", eku=["serverAuth", "clientAuth"])
    put_secret(core_v1, ns, "labfeed-tls", certgen.tls_secret(fixed))
    st = wait_status(custom_api, unique_name, lambda s: condition(s, "Compliant").get("status") == "True",
                     "Compliant=True after the fix")
    assert condition(st, "Compliant")["reason"] == "AllCompliant"
    assert st["violations"] == []
    normal = wait_for(lambda: [e for e in secret_events(core_v1, ns, "labfeed-tls") if e.type == "Normal"],
                      what="Normal Compliant event")
    assert normal[0].reason == "Compliant"


@pytest.mark.parametrize(
    ("make_secret", "requirements", "reason"),
    [
        (lambda ca: certgen.tls_secret(certgen.leaf(ca, "api.example.com")),
         {"allowedDNSNames": ["*.uat.example.com"]}, "DNSNameNotAllowed"),
        (lambda ca: (lambda other: certgen.tls_secret(certgen.leaf(other, "a.uat.example.com"), [other]))(
            certgen.root("Someone else's CA")), {}, "UnknownRoot"),
        (lambda ca: certgen.tls_secret(certgen.leaf(certgen.intermediate(ca), "a.uat.example.com")),
         {}, "IncompleteChain"),
        (lambda ca: certgen.tls_secret(certgen.leaf(ca, "a.uat.example.com",
                                                    now=certgen.utcnow() - dt.timedelta(days=100))),
         {}, "Expired"),
        (lambda ca: certgen.tls_secret(certgen.leaf(ca, "a.uat.example.com", valid_for=dt.timedelta(days=3))),
         {}, "ExpiringSoon"),
        (lambda ca: certgen.tls_secret(certgen.leaf(ca, "a.uat.example.com", key_kind="rsa1024")),
         {}, "WeakRSAKey"),
        (lambda ca: certgen.tls_secret(certgen.leaf(ca, "a.uat.example.com"), key=certgen.new_key()),
         {}, "KeyMismatch"),
        (lambda ca: {"type": "kubernetes.io/tls", "data": {"tls.crt": certgen.b64(b"not a certificate"),
                                                           "tls.key": ""}},
         {}, "NoCertificate"),
    ],
    ids=["san", "untrusted-chain", "incomplete-chain", "expired", "expiring", "weak-key", "key-mismatch", "malformed"],
)
def test_each_class_of_violation_gives_condition_and_event(
        policies, operator, core_v1, custom_api, unique_name, ca, bundle_cm, make_secret, requirements, reason):
    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    put_secret(core_v1, ns, "bad-tls", make_secret(ca))
    make_policy(policies, unique_name, label, {"extendedKeyUsages": ["serverAuth"], "trustBundle": bundle_cm,
                                                 **requirements})
    st = wait_status(custom_api, unique_name, lambda s: s.get("summary", {}).get("violating") == 1, "one violation")
    assert reason in st["violations"][0]["reasons"], st["violations"]
    events = wait_for(lambda: secret_events(core_v1, ns, "bad-tls"), what="event on bad-tls")
    assert any(reason in e.message or e.reason == reason for e in events)


def test_subpath_mount_is_reported_and_deleting_a_secret_updates_counts(
        policies, operator, core_v1, custom_api, unique_name, ca, bundle_cm):
    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    for n in ("one-tls", "two-tls"):
        put_secret(core_v1, ns, n, certgen.tls_secret(certgen.leaf(ca, f"{n}.uat.example.com")))
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="mirth"),
        spec=client.V1PodSpec(
            containers=[client.V1Container(name="app", image="busybox", volume_mounts=[
                client.V1VolumeMount(name="tls", mount_path="/etc/tls/tls.crt", sub_path="tls.crt")])],
            volumes=[client.V1Volume(name="tls", secret=client.V1SecretVolumeSource(secret_name="one-tls"))]))
    core_v1.create_namespaced_pod(ns, pod)
    make_policy(policies, unique_name, label, {"trustBundle": bundle_cm}, selector={"mountedOnly": True})

    st = wait_status(custom_api, unique_name, lambda s: s.get("subPathMounts"), "subPath mount reported")
    assert st["subPathMounts"] == [{"namespace": ns, "pod": "mirth", "kind": "Secret", "name": "one-tls"}]
    assert st["summary"]["selected"] == 1  # mountedOnly: two-tls is mounted by nobody
    pod_events = wait_for(lambda: [e for e in core_v1.list_namespaced_event(
        ns, field_selector="involvedObject.kind=Pod").items if e.reason == "SubPathMount"], what="SubPathMount event")
    assert "subPath" in pod_events[0].message

    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                           {"spec": {"selector": {"mountedOnly": False}}})
    wait_status(custom_api, unique_name, lambda s: s.get("summary", {}).get("selected") == 2, "two selected")
    core_v1.delete_namespaced_secret("two-tls", ns)
    wait_status(custom_api, unique_name, lambda s: s.get("summary", {}).get("selected") == 1,
                "count updated after delete")


def test_missing_trust_bundle_is_degraded_until_it_appears(
        policies, operator, core_v1, custom_api, unique_name, ca, operator_namespace):
    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    put_secret(core_v1, ns, "svc-tls", certgen.tls_secret(certgen.leaf(ca, "svc.uat.example.com")))
    cm = f"late-bundle-{uuid.uuid4().hex[:6]}"
    make_policy(policies, unique_name, label, {
        "trustBundle": {"configMap": {"namespace": operator_namespace, "name": cm}}})
    st = wait_status(custom_api, unique_name, lambda s: condition(s, "Degraded").get("status") == "True", "Degraded")
    assert condition(st, "Degraded")["reason"] == "TrustBundleMissing"
    assert cm in condition(st, "Degraded")["message"]
    core_v1.create_namespaced_config_map(operator_namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=cm), data={"ca.crt": certgen.pem(ca).decode()}))
    st = wait_status(custom_api, unique_name, lambda s: condition(s, "Degraded").get("status") == "False",
                     "Degraded=False once the bundle exists")
    assert condition(st, "Compliant")["status"] == "True"


def test_restart_creates_no_duplicate_events_and_user_objects_are_untouched(
        policies, cluster, crd, operator_namespace, core_v1, custom_api, unique_name, ca, bundle_cm, tmp_path):
    """The operator as shipped (certpolicy run), stopped with SIGTERM and started again."""
    from operator_process import OperatorProcess

    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    for i in range(3):
        put_secret(core_v1, ns, f"bad-{i}", certgen.tls_secret(certgen.leaf(ca, f"b{i}.uat.example.com",
                                                                             eku=["serverAuth"])))
    core_v1.create_namespaced_pod(ns, client.V1Pod(
        metadata=client.V1ObjectMeta(name="user-pod"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")],
                              volumes=[client.V1Volume(name="t", secret=client.V1SecretVolumeSource(
                                  secret_name="bad-0"))])))
    before = {s.metadata.name: s.metadata.resource_version for s in core_v1.list_namespaced_secret(ns).items}
    pod_rv = core_v1.read_namespaced_pod("user-pod", ns).metadata.resource_version

    def count_events():
        return len([e for e in core_v1.list_namespaced_event(ns).items
                    if e.source and e.source.component == "certpolicy-operator"])

    op = OperatorProcess(cluster, tmp_path / "operator.log")
    op.start()
    try:
        make_policy(policies, unique_name, label, {"extendedKeyUsages": ["serverAuth", "clientAuth"],
                                                     "trustBundle": bundle_cm})
        wait_for(lambda: count_events() == 3, what="three Warning events")
        first_status = wait_status(custom_api, unique_name, lambda s: s.get("summary", {}).get("violating") == 3,
                                   "three violations")
    finally:
        op.stop()
    assert op.proc.returncode == 0
    # Status timestamps have one-second resolution: let the clock pass the first evaluation's second.
    wait_for(lambda: rfc3339(dt.datetime.now(dt.UTC)) > first_status["lastEvaluationTime"],
             timeout=5, what="the next second")

    events_rv = core_v1.list_namespaced_event(ns).metadata.resource_version
    op.start()
    try:
        # The restarted operator re-evaluates everything (status shows a fresh evaluation) ...
        wait_status(custom_api, unique_name,
                    lambda s: s.get("lastEvaluationTime", "") > first_status["lastEvaluationTime"],
                    "re-evaluation after restart")
        # ... and posts nothing new: every transition it re-derives was already reported. Watched
        # from before the restart until 3 s after the re-evaluation, so a late post is seen too
        # (a repeated Event would be a new object or a MODIFIED one with a higher count).
        posted = [(t, o["reason"], o["message"]) for t, o in events_since(
            core_v1.list_namespaced_event, ns, resource_version=events_rv, seconds=3)
            if (o.get("source") or {}).get("component") == "certpolicy-operator"]
        assert posted == [], posted
        assert count_events() == 3, [(e.metadata.name, e.involved_object.name, e.reason, e.message)
                                     for e in core_v1.list_namespaced_event(ns).items]
    finally:
        op.stop()
    assert op.proc.returncode == 0

    after = {s.metadata.name: s.metadata.resource_version for s in core_v1.list_namespaced_secret(ns).items}
    assert after == before
    assert core_v1.read_namespaced_pod("user-pod", ns).metadata.resource_version == pod_rv

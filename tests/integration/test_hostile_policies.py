"""A careless or hostile policy author (issue 18): bounds, lifecycle and no silent failure, on the
real API server. Ownership cases are in test_ownership.py. Figures are printed (``-s``) and
recorded in docs/reliability.md under "Hostile policy author".
"""

from __future__ import annotations

import base64
import time
import uuid

import pytest
from kubernetes import client

from certpolicy.kube.namespaces import ensure_namespace
from crd import GROUP, PLURAL, VERSION, condition, policy_status
from figures import record as figure
from kubewait import wait_for


def body(name: str, **spec) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
            "spec": {"selector": {"namespaceSelector": {"matchLabels": {"hostile-policy": name}}}, **spec}}


def new_namespace(core_v1, **labels) -> str:
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels=labels)
    return ns


# ---- no silent failure ------------------------------------------------------------------------------
def test_non_utf8_truststore_password_is_a_finding_not_a_dead_pass(operator, policies, custom_api, core_v1,
                                                                   unique_name, operator_namespace):
    ns = new_namespace(core_v1)
    core_v1.create_namespaced_secret(operator_namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=f"{unique_name}-pw"), type="Opaque",
        data={"password": base64.b64encode(b"\xff\xfe\x00latin-1 \xe9t\xe9").decode()}))
    policies(body(unique_name, ca={"secretName": f"{unique_name}-ca"}, trustBundles=[
        {"configMap": {"name": "java-ca"}, "namespaces": [ns], "formats": {"pkcs12": {
            "key": "truststore.p12", "passwordSecretRef": {"name": f"{unique_name}-pw", "key": "password"}}}}]))
    st = wait_for(lambda: (lambda s: s if condition(s, "Degraded").get("status") == "True" else None)(
        policy_status(custom_api, unique_name)), timeout=30, what="Degraded on the policy")
    degraded = condition(st, "Degraded")
    assert degraded["reason"] == "TruststorePasswordInvalid", degraded
    assert f"{unique_name}-pw" in degraded["message"] and "UTF-8" in degraded["message"]
    assert condition(st, "Ready")["status"] == "True"
    # The PEM bundle is still distributed; only the truststore waits for a usable password.
    cm = wait_for(lambda: core_v1.read_namespaced_config_map("java-ca", ns), timeout=30, what="the PEM bundle")
    assert "ca.crt" in cm.data and "truststore.p12" not in (cm.binary_data or {})


def test_a_pass_that_raises_leaves_degraded_with_reason_on_the_policy(operator_in_process, policies, custom_api,
                                                                      core_v1, unique_name, monkeypatch, caplog):
    """In-process: the fault is a stage patched to raise."""
    import os

    import certgen
    from certpolicy.handlers import reconcile

    # The error's first line echoes what Secret data looks like (a long base64 run, a PEM block),
    # its second line a private key certgen made (so the session's hygiene audit looks for it too):
    # the condition, the event and the operator's log (``error_trace``, not the exception as it is)
    # carry the first line redacted and never the second.
    echoed = base64.b64encode(os.urandom(60)).decode()
    block = "-----BEGIN CERTIFICATE----- " + base64.b64encode(os.urandom(45)).decode() + " -----END CERTIFICATE-----"
    key = certgen.key_pem(certgen.new_key()).decode().replace("\n", " ")

    def broken(*_a, **_kw):
        raise RuntimeError(f"simulated bug in one stage reading {echoed} and {block}\nthe key: {key}")

    monkeypatch.setattr(reconcile, "trust_bundle_stage", broken)
    policies(body(unique_name))
    st = wait_for(lambda: (lambda s: s if condition(s, "Degraded").get("reason") == "ReconcileFailed" else None)(
        policy_status(custom_api, unique_name)), timeout=30, what="ReconcileFailed on a policy whose pass raises")
    message = condition(st, "Degraded")["message"]
    assert "RuntimeError: simulated bug in one stage reading <redacted> and <redacted>)" in message, message
    assert "retried" in message
    events = wait_for(lambda: [e.message for e in core_v1.list_namespaced_event(
        "default", field_selector=f"involvedObject.name={unique_name}").items if e.reason == "ReconcileFailed"],
        timeout=30, what="the ReconcileFailed event")
    for text in (message, *events):
        assert echoed[:48] not in text and "BEGIN CERTIFICATE" not in text and "<redacted>" in text, text
    logged = [r.getMessage() for r in caplog.records if r.getMessage().startswith(f"evaluating policy {unique_name} failed")]
    assert logged and "simulated bug in one stage reading <redacted>" in logged[0], logged
    for text in logged:
        assert echoed[:48] not in text and "BEGIN" not in text and key.split()[3][:40] not in text, text
    assert "PRIVATE KEY" not in caplog.text and key.split()[3][:40] not in caplog.text  # no traceback text either
    monkeypatch.undo()
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name, {"spec": {"requirements": {
        "requireSAN": True}}})
    wait_for(lambda: condition(policy_status(custom_api, unique_name), "Degraded").get("status") == "False", timeout=45,
             what="recovered once the stage works again")


def test_a_pass_refused_by_the_api_is_reconcile_failed_and_retried(operator, policies, custom_api, core_v1,
                                                                   api_client, unique_name, operator_namespace):
    """A real cause, no code patched: a ValidatingAdmissionPolicy refuses the create of the policy's
    CA Secret, so the CA stage raises. The policy reads ``Degraded=True/ReconcileFailed`` (condition
    and one Warning event); while the cause lasts the pass fails again (once at once: the failure's
    status write wakes the loop; then no sooner than ERROR_RETRY: 30 s, CERTPOLICY_ERROR_RETRY, 2 s
    in the suite), with no second event; once
    the binding is gone the next retry -- nothing changed that wakes the policy -- creates the CA and
    clears Degraded."""
    import time

    from kubernetes.client import AdmissionregistrationV1Api, ApiException

    from certpolicy.environment import ERROR_RETRY
    from kubewait import wait_until_refused

    admission = AdmissionregistrationV1Api(api_client)
    secret_name, vap = f"{unique_name}-ca", f"{unique_name}-refuse-ca"
    admission.create_validating_admission_policy({
        "metadata": {"name": vap},
        "spec": {"failurePolicy": "Fail",
                 "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                         "operations": ["CREATE"], "resources": ["secrets"]}]},
                 "validations": [{"expression": f"object.metadata.name != '{secret_name}'", "reason": "Forbidden",
                                  "message": f"{vap}: this CA Secret may not be created"}]}})
    admission.create_validating_admission_policy_binding({
        "metadata": {"name": vap},
        "spec": {"policyName": vap, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {
                     "kubernetes.io/metadata.name": operator_namespace}}}}})

    def reconcile_failed_events() -> list:
        return [e for e in core_v1.list_namespaced_event("default", field_selector=f"involvedObject.name={unique_name}").items
                if e.reason == "ReconcileFailed"]

    try:
        wait_until_refused(lambda: core_v1.create_namespaced_secret(
            operator_namespace, client.V1Secret(metadata=client.V1ObjectMeta(name=secret_name)), dry_run="All"), vap)
        policies(body(unique_name, ca={"secretName": secret_name}))
        failed = f"evaluating policy {unique_name} failed"

        def attempts() -> list[float]:
            return [r.when for r in operator.log_records() if r.message.startswith(failed)]

        st = wait_for(lambda: (lambda s: s if condition(s, "Degraded").get("reason") == "ReconcileFailed" else None)(
            policy_status(custom_api, unique_name)), timeout=30, what="ReconcileFailed on a policy whose CA create is refused")
        degraded = condition(st, "Degraded")
        assert degraded["status"] == "True" and "403" in degraded["message"], degraded
        # Which request the API refused, as a person needs it to act: the verb, the path, the CA Secret.
        assert f"POST /api/v1/namespaces/{operator_namespace}/secrets (name {secret_name})" in degraded["message"]
        assert f"retried at once, then every {ERROR_RETRY.seconds():g} s while it fails" in degraded["message"]
        wait_for(reconcile_failed_events, timeout=30, what="the ReconcileFailed event")
        # Still refused: the pass is retried and fails again. The failure's own status write is a
        # change of the policy, which wakes its loop at once (a second attempt right away); from
        # then on nothing changes, and the next attempt waits ERROR_RETRY.
        times = wait_for(lambda: (lambda t: t if len(t) >= 3 else None)(attempts()),
                         timeout=ERROR_RETRY.seconds() + 40, what="a third attempt while the cause lasts")
        first_retry, interval = times[1] - times[0], times[2] - times[1]
        # The log's clock has milliseconds; the retry sleeps ERROR_RETRY after the failure's report.
        assert interval >= ERROR_RETRY.seconds() - 0.01, f"retried after {interval:.1f}s"
        assert first_retry < ERROR_RETRY.seconds(), f"first retry after {first_retry:.1f}s"  # "at once", as it says
        assert len(reconcile_failed_events()) == 1  # the same failure again: no second event
    finally:
        for delete in (admission.delete_validating_admission_policy_binding, admission.delete_validating_admission_policy):
            try:
                delete(vap)
            except ApiException as e:
                if e.status != 404:
                    raise
    removed = time.time()
    wait_for(lambda: condition(policy_status(custom_api, unique_name), "Degraded").get("status") == "False",
             timeout=ERROR_RETRY.seconds() + 30, what="recovered by the retry once the refusal is gone")
    assert core_v1.read_namespaced_secret(secret_name, operator_namespace).metadata.labels
    figure(f"ReconcileFailed retry: 2nd attempt {first_retry:.1f} s after the 1st (woken by its own status write), "
           f"3rd {interval:.1f} s after the 2nd; recovered {time.time() - removed:.1f} s after the refusal was "
           "removed, with no other change")


# ---- probes: off the evaluation workers ----------------------------------------------------------
@pytest.mark.operator_env(CERTPOLICY_PROBE_ALLOW="127.0.0.1/32")  # --probe-allow: the default is *.svc only
def test_probes_to_a_port_that_never_answers_delay_no_other_policy(operator, policies, custom_api, core_v1,
                                                                    unique_name):
    """Reported: 6 policies probing a port that accepts TCP and never answers (timeout 240 s) filled
    every worker; an unrelated policy's update took 234 s instead of 0.2 s."""
    import socket
    import time

    silent = socket.create_server(("127.0.0.1", 0), backlog=64)  # accepts TCP (backlog), never answers
    port = silent.getsockname()[1]
    ns = new_namespace(core_v1)
    try:
        names = [f"{unique_name}-{i}" for i in range(6)]
        for name in names:
            obj = body(name, ca={"secretName": f"{name}-ca"},
                       trustBundles=[{"configMap": {"name": f"{name}-bundle"}, "namespaces": [ns]}],
                       rotation={"propagationDelay": "0s",
                                 "probes": [{"host": "127.0.0.1", "port": port, "timeout": "30s"}]})
            obj["metadata"]["annotations"] = {"certpolicy.io/rotate": "silent"}
            policies(obj)

        def probing(name):
            rot = policy_status(custom_api, name).get("rotation") or {}
            return "waiting for probes" in (rot.get("message") or "")

        wait_for(lambda: all(probing(n) for n in names), timeout=60, what="6 rotations waiting on silent probes")
        other = f"{unique_name}-other"
        policies(body(other))
        wait_for(lambda: policy_status(custom_api, other).get("observedGeneration") == 1, timeout=30, what="other evaluated")
        started = time.monotonic()
        gen = custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, other, {"spec": {"requirements": {
            "extendedKeyUsages": ["serverAuth", "clientAuth"]}}})["metadata"]["generation"]
        wait_for(lambda: policy_status(custom_api, other).get("observedGeneration") == gen, timeout=60,
                 what="the unrelated policy's update reconciled")
        took = time.monotonic() - started
        figure(f"6 policies probing a silent port (timeout 30 s): an unrelated policy's update reconciled in "
              f"{took:.2f} s")
        assert took < 10, took
        assert all(probing(n) for n in names)  # still gated: a silent peer is never an acceptance
    finally:
        silent.close()


# ---- bundles: never a certificate dropped ----------------------------------------------------------
def test_1700_foreign_cas_are_all_kept_and_a_leaf_of_ca_1500_verifies(operator, policies, custom_api, core_v1,
                                                                      unique_name):
    """Reported: a merge into a ConfigMap of 1,700 foreign CAs deleted 700 of them (the loader read
    1,000), and a leaf signed by CA #1500 of a 1,700-CA source bundle was IncompleteChain."""
    from cryptography.hazmat.primitives import serialization

    import certgen
    from certpolicy.kube.ownership import INJECT_CA_FROM
    from certpolicy.pki.bundle import read_bundle
    from certpolicy.pki.fingerprint import fingerprint

    key, cas = certgen.many_cas(1700)
    foreign = {fingerprint(c) for c in cas}
    ns = new_namespace(core_v1, **{"hostile-policy": unique_name})
    core_v1.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="big-bundle", annotations={INJECT_CA_FROM: unique_name}),
        data={"ca.crt": certgen.pem(*cas).decode()}))
    leaf, leaf_key = certgen.leaf_signed_by(cas[1499], key, "app.big.example.com")
    core_v1.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name="app-tls"),
                                                         type="kubernetes.io/tls", data={
        "tls.crt": base64.b64encode(leaf.public_bytes(serialization.Encoding.PEM)).decode(),
        "tls.key": base64.b64encode(certgen.key_pem(leaf_key)).decode()}))
    policies(body(unique_name, ca={"secretName": f"{unique_name}-ca"},
                  requirements={"trustBundle": {"configMap": {"namespace": ns, "name": "big-bundle"}}},
                  trustBundles=[{"configMap": {"name": "big-bundle"}, "namespaces": [ns]}]))
    st = wait_for(lambda: (lambda s: s if (s.get("bundleTargets") or {}).get("verified") == 1
                           and (s.get("summary") or {}).get("selected") == 1 else None)(
        policy_status(custom_api, unique_name)), timeout=60, what="the big target verified and the leaf evaluated")
    ours = st["ca"]["fingerprint"]
    after = read_bundle(core_v1.read_namespaced_config_map("big-bundle", ns).data["ca.crt"])
    assert not after.truncated and after.fingerprint_set == foreign | {ours}
    assert st["summary"]["compliant"] == 1, st.get("violations")
    figure(f"1,700 foreign CAs in a target: {len(foreign - after.fingerprint_set)} deleted, own CA added; "
           f"a leaf of CA #1500 of a 1,700-CA source bundle: compliant")


def test_a_target_above_the_loaders_cap_is_too_large_and_never_written(operator_in_process, policies, custom_api,
                                                                       core_v1, unique_name, monkeypatch):
    """The real cap (10,000 certificates / 4 MiB) cannot be reached through the API: an object holds
    at most 1 MiB, ~2,300 of certgen.many_cas' small CAs. So the cap is lowered to 50 for this
    in-process operator, and a target holding 60 foreign CAs exercises the same path: the merge
    would drop the 10 it did not read, so the target is ``TooLarge`` (Degraded/BundleTooLarge) and
    no version of it is written from its creation until 3 s after that was reported."""
    import certgen
    from certpolicy.handlers import bundles
    from certpolicy.kube.ownership import INJECT_CA_FROM
    from certpolicy.pki import load
    from kubewait import events_since

    monkeypatch.setattr(load, "MAX_CERTIFICATES", 50)
    monkeypatch.setattr(bundles, "MAX_CERTIFICATES", 50)
    _, cas = certgen.many_cas(60, prefix=unique_name)
    ns = new_namespace(core_v1)
    original = certgen.pem(*cas).decode()
    cm = core_v1.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="big-bundle", annotations={INJECT_CA_FROM: unique_name}),
        data={"ca.crt": original}))
    policies(body(unique_name, ca={"secretName": f"{unique_name}-ca"},
                  trustBundles=[{"configMap": {"name": "big-bundle"}, "namespaces": [ns]}]))
    st = wait_for(lambda: (lambda s: s if condition(s, "Degraded").get("reason") == "BundleTooLarge" else None)(
        policy_status(custom_api, unique_name)), timeout=60, what="the target reported TooLarge")
    (target,) = st["bundleTargets"]["targets"]
    assert target["state"] == "TooLarge" and target["name"] == "big-bundle" and target["namespace"] == ns
    assert "50 certificates" in target["message"] and "it is not written" in target["message"], target
    assert st["bundleTargets"]["verified"] == 0
    writes = events_since(core_v1.list_namespaced_config_map, ns, resource_version=cm.metadata.resource_version,
                          seconds=3, field_selector="metadata.name=big-bundle")
    assert writes == [], [t for t, _ in writes]
    assert core_v1.read_namespaced_config_map("big-bundle", ns).data == {"ca.crt": original}


# ---- deleting a policy ---------------------------------------------------------------------------------
def _policy_gone(custom_api, name: str) -> bool:
    from kubernetes.client import ApiException

    try:
        custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        return False
    except ApiException as e:
        return e.status == 404


def _bundle(core_v1, ns: str, name: str) -> set[str]:
    from certpolicy.pki.bundle import read_bundle

    return set(read_bundle(core_v1.read_namespaced_config_map(name, ns).data["ca.crt"]).fingerprints)


def _lifecycle_policy(name: str, ns: str, **spec) -> dict:
    return body(name, ca={"secretName": f"{name}-ca"},
                trustBundles=[{"configMap": {"name": "app-ca"}, "namespaces": [ns]}],
                issuance=[{"secretName": "app-tls", "namespace": ns, "dnsNames": ["app.lifecycle.test"]}],
                rotation={"propagationDelay": "0s"}, **spec)


def test_deleting_a_policy_by_default_breaks_no_workload(operator, policies, custom_api, core_v1, unique_name,
                                                        operator_namespace):
    from certpolicy.pki.fingerprint import fingerprint
    from certpolicy.pki.load import load_certificates

    ns = new_namespace(core_v1)
    policies(_lifecycle_policy(unique_name, ns))
    st = wait_for(lambda: (lambda s: s if (s.get("issued") or {}).get("ready") == 1
                           and (s.get("bundleTargets") or {}).get("verified") == 1 else None)(
        policy_status(custom_api, unique_name)), timeout=30, what="CA, bundle and leaf")
    ours = st["ca"]["fingerprint"]
    # kopf's finalizer is on every policy while the operator runs (its loop is a kopf daemon, stopped
    # before the object goes); with Retain, deletion waits only for that loop to stop.
    meta = custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name)["metadata"]
    assert meta.get("finalizers") == ["certpolicy.io/finalizer"], meta.get("finalizers")
    started = time.monotonic()
    custom_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name)
    wait_for(lambda: _policy_gone(custom_api, unique_name), timeout=10, what="deleted once its loop stopped")
    print(f"Retain policy deleted in {time.monotonic() - started:.2f} s (its loop stopped, finalizer removed)")
    # The leaf still chains to a CA the bundle holds; the CA Secret (and key) is kept.
    leaf = load_certificates(base64.b64decode(core_v1.read_namespaced_secret("app-tls", ns).data["tls.crt"]))
    ca = core_v1.read_namespaced_secret(f"{unique_name}-ca", operator_namespace)
    ca_cert = load_certificates(base64.b64decode(ca.data["tls.crt"])).certificates[0]
    leaf.certificates[0].verify_directly_issued_by(ca_cert)
    assert fingerprint(ca_cert) == ours and ours in _bundle(core_v1, ns, "app-ca")


def test_a_policy_deleted_while_the_operator_is_down_waits_for_it_as_kubectl_wait_sees(
        cluster, crd, operator_namespace, custom_api, core_v1, policies, unique_name, tmp_path):
    """The finalizer promise where a user meets it: `kubectl wait --for=delete` on a Retain policy
    deleted while the operator is stopped does not succeed (Terminating); once the operator runs
    again the same wait succeeds."""
    from operator_process import OperatorProcess

    ns = new_namespace(core_v1)
    op = OperatorProcess(cluster, tmp_path / "operator.log")
    op.start()
    try:
        policies(_lifecycle_policy(unique_name, ns))
        wait_for(lambda: (custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name)["metadata"]
                          .get("finalizers") == ["certpolicy.io/finalizer"]), timeout=60, what="kopf's finalizer")
        op.stop()
        custom_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name)
        down = cluster.kubectl("wait", "--for=delete", f"certpol/{unique_name}", "--timeout=5s", check=False)
        assert down.returncode != 0, down.stdout + down.stderr
        meta = custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name)["metadata"]
        assert meta.get("deletionTimestamp") and meta.get("finalizers") == ["certpolicy.io/finalizer"]
        op.start()
        started = time.monotonic()
        up = cluster.kubectl("wait", "--for=delete", f"certpol/{unique_name}", "--timeout=90s", check=False)
        assert up.returncode == 0, up.stdout + up.stderr
        print(f"policy deleted while the operator was down: Terminating until it ran again, then gone "
              f"{time.monotonic() - started:.1f} s after its start")
    finally:
        op.stop()


def test_deletion_policy_delete_removes_the_ca_from_bundles_and_every_ca_key(
        operator, policies, custom_api, core_v1, unique_name, operator_namespace):
    import certgen
    from certpolicy.kube.ownership import MANAGED_BY, ROLE_LABEL

    ns = new_namespace(core_v1)
    partner = certgen.root("Partner CA kept after deletion")
    policies(_lifecycle_policy(unique_name, ns, deletionPolicy="Delete"))
    wait_for(lambda: (policy_status(custom_api, unique_name).get("bundleTargets") or {}).get("verified") == 1, timeout=30,
             what="the bundle written")
    core_v1.patch_namespaced_config_map("app-ca", ns, {"data": {"ca.crt": core_v1.read_namespaced_config_map(
        "app-ca", ns).data["ca.crt"] + certgen.pem(partner).decode()}})
    # One rotation, so there is a retired CA key too.
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                           {"metadata": {"annotations": {"certpolicy.io/rotate": "before-delete"}}})
    st = wait_for(lambda: (lambda s: s if ((s.get("rotation") or {}).get("history") or [{}])[0].get("outcome")
                           == "Completed" else None)(policy_status(custom_api, unique_name)), timeout=60,
                  what="a completed rotation")
    ours = {h["fingerprint"] for h in st["ca"]["history"]}
    selector = f"{MANAGED_BY}={unique_name},{ROLE_LABEL}=ca"
    keys = [s.metadata.name for s in core_v1.list_namespaced_secret(operator_namespace, label_selector=selector).items]
    assert len(keys) >= 2, keys  # the active CA and the retired one
    custom_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name)
    wait_for(lambda: _policy_gone(custom_api, unique_name), timeout=60, what="the finalizer done")
    assert not core_v1.list_namespaced_secret(operator_namespace, label_selector=selector).items
    from certpolicy.pki.fingerprint import fingerprint

    assert _bundle(core_v1, ns, "app-ca") == {fingerprint(partner.cert)}
    assert not ours & _bundle(core_v1, ns, "app-ca")


def test_an_expired_retired_ca_key_is_deleted(operator_in_process, policies, custom_api, core_v1, unique_name,
                                              operator_namespace, monkeypatch):
    """In-process: the sweep's interval (10 minutes) is patched to zero."""
    import datetime as dt

    import certgen
    from certpolicy.kube.ownership import MANAGED_BY, OWNER_UID, ROLE_LABEL

    obj = policies(body(unique_name, ca={"secretName": f"{unique_name}-ca"}))
    wait_for(lambda: (policy_status(custom_api, unique_name).get("ca") or {}).get("fingerprint"), timeout=30, what="CA")
    owner = {"labels": {MANAGED_BY: unique_name, ROLE_LABEL: "ca"},
             "annotations": {OWNER_UID: obj["metadata"]["uid"]}}
    expired = certgen.root("long retired CA", not_before=certgen.utcnow() - dt.timedelta(days=30),
                           valid_for=dt.timedelta(days=29))
    valid = certgen.root("recently retired CA")
    for name, ca in ((f"{unique_name}-ca-retired-old", expired), (f"{unique_name}-ca-retired-new", valid)):
        core_v1.create_namespaced_secret(operator_namespace, client.V1Secret(
            metadata=client.V1ObjectMeta(name=name, **owner), type="kubernetes.io/tls",
            data=certgen.tls_secret(ca)["data"]))
    # The sweep runs at most every 10 minutes per policy (its first pass swept before these Secrets
    # existed): make every pass sweep, and touch the policy so that one runs.
    from certpolicy.handlers import deletion

    monkeypatch.setattr(deletion, "CA_SWEEP_INTERVAL", dt.timedelta(0))
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name, {"spec": {"requirements": {
        "requireSAN": True}}})

    def names():
        return {s.metadata.name for s in core_v1.list_namespaced_secret(
            operator_namespace, label_selector=f"{MANAGED_BY}={unique_name}").items}

    wait_for(lambda: f"{unique_name}-ca-retired-old" not in names(), timeout=30, what="the expired key deleted")
    assert {f"{unique_name}-ca", f"{unique_name}-ca-retired-new"} <= names()

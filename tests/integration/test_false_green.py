"""Never a false green (issue 22, items 1-3), on the real API server.

- ``Compliant=True`` only when every requirement was checked on every selected Secret: a missing
  trust bundle (or a key it lacks) and a named Secret that does not exist give ``Compliant=Unknown``
  with that reason, a compliance metric of 0 and a Warning event, never a Normal
  ``PolicyCompliant``. A real ``kubectl wait --for=condition=Compliant`` runs through it all, and
  every version of the policy the API server stored is checked: none would have let it pass
  before the fix-up; after it, the wait succeeds.
- Every failure is visible: a fault injected into each stage of a pass, a stage problem with a real
  cause, and a failed clean-up on deletion are each a ``Degraded`` condition with the reason and a
  Warning event on the policy.
- ``deletionPolicy: Delete`` with a PKCS#12 truststore target finishes: the empty truststore is
  removed, the CA keys are deleted.
"""

from __future__ import annotations

import subprocess
import time

from kubernetes import client
from test_reconcile import labelled_namespace, make_policy, put_secret
from test_selection_truth import PolicyVersions, kubectl_wait_passes

import certgen
from crd import GROUP, PLURAL, VERSION, condition, policy_status
from figures import record as figure
from kubewait import wait_for


def policy_events(core_v1, name: str) -> list:
    return [e for e in core_v1.list_namespaced_event("default", field_selector=f"involvedObject.name={name}").items
            if e.source and e.source.component == "certpolicy-operator"]


def compliant_metric(scrape, name: str) -> str | None:
    """The policy's certpolicy_policy_compliant sample in a /metrics scrape (``scrape()``)."""
    prefix = f'certpolicy_policy_compliant{{policy="{name}"}} '
    return next((line.removeprefix(prefix) for line in scrape().splitlines() if line.startswith(prefix)), None)


def in_process_scrape() -> str:
    """/metrics of the in-process operator (``operator_in_process``)."""
    import urllib.request

    from certpolicy import metrics

    port = wait_for(lambda: metrics._server and metrics._server[1], timeout=30, what="metrics server")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:  # noqa: S310 - loopback
        return resp.read().decode()


class KubectlWait:
    """A real ``kubectl wait --for=condition=Compliant`` on one policy, running in the background."""

    def __init__(self, cluster, name: str) -> None:
        self.proc = subprocess.Popen(
            [str(cluster.binaries.kubectl), f"--kubeconfig={cluster.kubeconfig}", "wait", "--for=condition=Compliant",
             f"certpol/{name}", "--timeout=300s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def still_waiting(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def _never_green_until_fixed(cluster, operator, api_client, custom_api, core_v1, policies, name: str, body: dict,
                             reason: str, fix) -> None:
    """Create the policy, wait for Compliant=Unknown/<reason>; assert that no stored version, the
    metric, the events and a running kubectl wait said green; then ``fix()`` and see it turn True."""
    versions = PolicyVersions(api_client, {name})
    wait = None
    try:
        policies(body)
        wait = KubectlWait(cluster, name)
        st = wait_for(lambda: (lambda s: s if condition(s, "Compliant").get("reason") == reason else None)(
            policy_status(custom_api, name)), timeout=30, what=f"Compliant=Unknown/{reason}")
        compliant = condition(st, "Compliant")
        assert compliant["status"] == "Unknown", compliant
        assert st["summary"]["selected"] >= 1 and st["summary"]["violating"] == 0  # judged, not all checked
        assert condition(st, "Degraded")["reason"] == reason
        assert wait_for(lambda: compliant_metric(operator.scrape, name), timeout=30, what="the compliance metric") == "0.0"
        events = wait_for(lambda: [e for e in policy_events(core_v1, name) if e.reason == reason], timeout=30,
                          what=f"a Warning {reason} event on the policy")
        assert events[0].type == "Warning"
        # Sampled after the Unknown verdict was written: the wait has not passed, nor would it have
        # on any version the API server stored so far.
        assert wait.still_waiting(), wait.proc.communicate()
        before = versions.of(name)
        assert before and not [s for s in before if kubectl_wait_passes(s)]
        assert not [e for e in policy_events(core_v1, name) if e.reason == "PolicyCompliant"]

        started = time.monotonic()
        fix()
        assert wait.proc.wait(60) == 0, wait.proc.communicate()
        figure(f"{reason}: {len(before)} stored versions before the fix-up, none Compliant=True, kubectl wait "
               f"still waiting; it passed {time.monotonic() - started:.2f} s after the fix-up")
        st = policy_status(custom_api, name)
        assert condition(st, "Compliant")["reason"] == "AllCompliant" and condition(st, "Degraded")["status"] == "False"
        assert wait_for(lambda: compliant_metric(operator.scrape, name) == "1.0", timeout=30, what="the metric at 1")
    finally:
        versions.stop()
        if wait is not None:
            wait.stop()


def test_a_missing_trust_bundle_is_never_compliant_until_it_exists(
        cluster, operator, api_client, core_v1, custom_api, policies, unique_name):
    ca = certgen.root("false-green CA")
    label = unique_name
    ns = labelled_namespace(core_v1, label)
    put_secret(core_v1, ns, "app-tls", certgen.tls_secret(certgen.leaf(ca, "app.green.test")))
    bundle = {"configMap": {"namespace": ns, "name": "trust", "key": "ca.pem"}}
    body = make_policy(lambda b: b, unique_name, label, {"trustBundle": bundle})
    # First the ConfigMap exists without the key the policy names: the message lists the keys it has.
    core_v1.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="trust"), data={"ca.crt": certgen.pem(ca).decode(), "other": "x"}))

    def fix():
        st = policy_status(custom_api, unique_name)
        assert "has no key 'ca.pem' (its PEM keys: 'ca.crt', 'other')" in condition(st, "Compliant")["message"]
        core_v1.patch_namespaced_config_map("trust", ns, {"data": {"ca.pem": certgen.pem(ca).decode()}})

    _never_green_until_fixed(cluster, operator, api_client, custom_api, core_v1, policies, unique_name, body,
                             "TrustBundleMissing", fix)


def test_a_missing_configmap_trust_bundle_is_never_compliant_until_it_exists(
        cluster, operator, api_client, core_v1, custom_api, policies, unique_name):
    ca = certgen.root("false-green CA 2")
    ns = labelled_namespace(core_v1, unique_name)
    put_secret(core_v1, ns, "app-tls", certgen.tls_secret(certgen.leaf(ca, "app.green.test")))
    body = make_policy(lambda b: b, unique_name, unique_name,
                       {"trustBundle": {"configMap": {"namespace": ns, "name": "absent"}}})

    def fix():
        core_v1.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="absent"), data={"ca.crt": certgen.pem(ca).decode()}))

    _never_green_until_fixed(cluster, operator, api_client, custom_api, core_v1, policies, unique_name, body,
                             "TrustBundleMissing", fix)


def test_a_named_secret_that_does_not_exist_is_never_compliant_until_it_does(
        cluster, operator, api_client, core_v1, custom_api, policies, unique_name, namespace):
    ca = certgen.root("false-green CA 3")
    put_secret(core_v1, namespace, "present-tls", certgen.tls_secret(certgen.leaf(ca, "present.green.test")))
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
            "spec": {"selector": {"names": [{"namespace": namespace, "name": "present-tls"},
                                            {"namespace": namespace, "name": "later-tls"}]},
                     "requirements": {"requireSAN": True}}}

    def fix():
        put_secret(core_v1, namespace, "later-tls", certgen.tls_secret(certgen.leaf(ca, "later.green.test")))

    _never_green_until_fixed(cluster, operator, api_client, custom_api, core_v1, policies, unique_name, body,
                             "SecretNotFound", fix)


def test_a_violation_wins_over_a_part_not_checked(operator, core_v1, custom_api, policies, unique_name, namespace):
    ca = certgen.root("false-green CA 4")
    put_secret(core_v1, namespace, "bad-tls", certgen.tls_secret(certgen.leaf(ca, "bad.green.test",
                                                                              eku=["serverAuth"])))
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
              "spec": {"selector": {"names": [{"namespace": namespace, "name": "bad-tls"},
                                              {"namespace": namespace, "name": "gone-tls"}]},
                       "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]}}})
    st = wait_for(lambda: (lambda s: s if condition(s, "Compliant").get("status") == "False" else None)(
        policy_status(custom_api, unique_name)), timeout=30, what="Compliant=False")
    compliant = condition(st, "Compliant")
    assert compliant["reason"] == "MissingClientAuth" and "Not checked:" in compliant["message"]
    assert f"{namespace}/gone-tls" in compliant["message"]
    assert condition(st, "Degraded")["reason"] == "SecretNotFound"


def test_trust_stores_beyond_the_per_pass_cap_are_not_checked_so_not_compliant(
        operator_in_process, core_v1, custom_api, policies, unique_name, namespace, monkeypatch):
    """The cap on stores judged per pass (500) used to drop the rest silently; now they are counted
    in a problem and Compliant is Unknown. The cap is lowered to 1 in-process for the test."""
    from certpolicy.handlers import truststores

    monkeypatch.setattr(truststores, "MAX_TRUSTSTORES", 1)
    ca = certgen.root("false-green store CA")
    for name in ("store-a", "store-b"):
        core_v1.create_namespaced_config_map(namespace, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels={"fg-store": unique_name}),
            data={"ca.crt": certgen.pem(ca).decode()}))
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
              "spec": {"selector": {"namespaceSelector": {"matchLabels": {"no-secrets": unique_name}}}, "trustStores": {"selector": {"matchLabels": {"fg-store": unique_name}}},
                       "requirements": {}}})
    st = wait_for(lambda: (lambda s: s if condition(s, "Compliant").get("reason") == "TrustStoresNotJudged" else None)(
        policy_status(custom_api, unique_name)), timeout=30, what="Compliant=Unknown/TrustStoresNotJudged")
    assert condition(st, "Compliant")["status"] == "Unknown" and st["summary"]["selected"] == 1
    assert "1 selected trust stores or caBundle holders were not judged" in condition(st, "Degraded")["message"]
    core_v1.patch_namespaced_config_map("store-b", namespace, {"metadata": {"labels": {"fg-store": None}}})
    wait_for(lambda: condition(policy_status(custom_api, unique_name), "Compliant").get("reason") == "AllCompliant",
             timeout=30, what="AllCompliant once every selected store is judged")


def test_nothing_selected_says_which_part_matched_nothing(operator, custom_api, policies, unique_name):
    make_policy(policies, unique_name, f"{unique_name}-nowhere", {})
    st = wait_for(lambda: (lambda s: s if condition(s, "Compliant").get("reason") == "NothingSelected" else None)(
        policy_status(custom_api, unique_name)), timeout=30, what="NothingSelected")
    assert "(namespaceSelector matches 0 namespaces)" in condition(st, "Compliant")["message"]


# ---- every failure is a condition and an event ---------------------------------------------------------------
class InjectedFault(RuntimeError):
    """A fault injected by this test into one stage of the operator (in-process, via monkeypatch)."""


def injected_fault(stage: str):
    def fault(*_args, **_kwargs):
        raise InjectedFault(f"injected fault in {stage}")

    return fault


#: Every stage reconcile_policy runs, by the name it calls it under (handlers/reconcile.py).
STAGES = ("trust_bundle_stage", "ensure_ca", "rotation_stage", "ca_status_stage", "expired_ca_keys_stage",
          "bundles_stage", "issuance_stage", "select", "keystores_with_password", "trust_stores_stage")


def _full_policy(name: str, ns: str, **spec) -> dict:
    """A policy that runs every stage: its CA, a trust bundle target, an issued leaf, a trust store."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
            "spec": {"selector": {"names": [{"namespace": ns, "name": "app-tls"}]},
                     "ca": {"secretName": f"{name}-ca"},
                     "trustBundles": [{"configMap": {"name": "app-ca"}, "namespaces": [ns]}],
                     "issuance": [{"secretName": "app-tls", "namespace": ns, "dnsNames": ["app.fault.test"]}],
                     "trustStores": {"selector": {"matchLabels": {"fault-test": name}}},
                     "rotation": {"propagationDelay": "0s"}, **spec}}


def test_a_fault_in_any_stage_is_degraded_with_its_reason_and_a_warning_event(
        operator_in_process, core_v1, custom_api, policies, unique_name, monkeypatch):
    from certpolicy.handlers import reconcile

    for stage in STAGES:
        assert callable(getattr(reconcile, stage)), stage  # the name the pass calls it under

    def visible(name: str, stage: str) -> None:
        st = wait_for(lambda: (lambda s: s if condition(s, "Degraded").get("reason") == "ReconcileFailed" else None)(
            policy_status(custom_api, name)), timeout=30, what=f"Degraded/ReconcileFailed from {stage}")
        assert f"InjectedFault: injected fault in {stage}" in condition(st, "Degraded")["message"], stage
        assert condition(st, "Compliant")["status"] == "Unknown", condition(st, "Compliant")
        events = wait_for(lambda: [e for e in policy_events(core_v1, name) if e.reason == "ReconcileFailed"],
                          timeout=30, what=f"the Warning event for {stage}")
        assert events[0].type == "Warning" and f"injected fault in {stage}" in events[0].message

    for i, stage in enumerate(STAGES):
        name = f"{unique_name}-{i}"
        ns = labelled_namespace(core_v1, name, **{"fault-test": name})
        with monkeypatch.context() as m:
            m.setattr(reconcile, stage, injected_fault(stage))
            policies(_full_policy(name, ns))
            visible(name, stage)
        custom_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name)


def test_a_pass_that_raises_does_not_repeat_the_last_green_verdict(
        operator_in_process, core_v1, custom_api, policies, unique_name, namespace, monkeypatch):
    from certpolicy.handlers import reconcile

    ca = certgen.root("false-green CA 5")
    put_secret(core_v1, namespace, "app-tls", certgen.tls_secret(certgen.leaf(ca, "app.green.test")))
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
              "spec": {"selector": {"names": [{"namespace": namespace, "name": "app-tls"}]},
                       "requirements": {"requireSAN": True}}})
    wait_for(lambda: condition(policy_status(custom_api, unique_name), "Compliant").get("status") == "True", timeout=30,
             what="Compliant=True")
    assert wait_for(lambda: compliant_metric(in_process_scrape, unique_name), timeout=30, what="the metric") == "1.0"

    def touch(value: bool) -> None:
        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name, {"spec": {"requirements": {
            "requireSAN": value}}})

    with monkeypatch.context() as m:
        m.setattr(reconcile, "select", injected_fault("select"))
        touch(False)
        st = wait_for(lambda: (lambda s: s if condition(s, "Compliant").get("reason") == "ReconcileFailed" else None)(
            policy_status(custom_api, unique_name)), timeout=30, what="Compliant=Unknown/ReconcileFailed")
        assert condition(st, "Compliant")["status"] == "Unknown" and condition(st, "Degraded")["status"] == "True"
        assert compliant_metric(in_process_scrape, unique_name) == "0.0"
    touch(True)
    wait_for(lambda: condition(policy_status(custom_api, unique_name), "Compliant").get("status") == "True", timeout=45,
             what="Compliant=True again once a pass checks everything")
    assert wait_for(lambda: compliant_metric(in_process_scrape, unique_name) == "1.0", timeout=30, what="the metric back at 1")


def test_no_status_write_finds_the_metric_greener_than_itself(
        operator_in_process, core_v1, custom_api, policies, unique_name, namespace, monkeypatch):
    """At the instant each status is written, the policy's compliant metric already says what it
    says: an alert that reads the metric never lags a status that went red (a violating Secret, a
    pass that raised). Before, the metric was set after the write, and a reader who saw the
    ReconcileFailed status and then scraped found the previous 1 (a full local run failed on it)."""
    from certpolicy.handlers import reconcile

    ca = certgen.root("false-green CA 6")
    put_secret(core_v1, namespace, "app-tls", certgen.tls_secret(certgen.leaf(ca, "app.green.test")))
    seen: list[tuple[str, str | None]] = []
    real = reconcile.patch_status

    def observed(raw, name, status):
        if name == unique_name and any(c["type"] == "Compliant" for c in status.get("conditions") or ()):
            seen.append((condition(status, "Compliant")["status"], compliant_metric(in_process_scrape, name)))
        return real(raw, name, status)

    monkeypatch.setattr(reconcile, "patch_status", observed)
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
              "spec": {"selector": {"names": [{"namespace": namespace, "name": "app-tls"}]},
                       "requirements": {"requireSAN": True}}})
    wait_for(lambda: seen and seen[-1][0] == "True", timeout=30, what="the compliant status written")

    def touch(value: bool) -> None:
        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                               {"spec": {"requirements": {"requireSAN": value}}})

    with monkeypatch.context() as m:  # a pass that raises, after a green one
        m.setattr(reconcile, "select", injected_fault("select"))
        touch(False)
        wait_for(lambda: seen[-1][0] == "Unknown", timeout=30, what="the ReconcileFailed status written")
    touch(True)
    wait_for(lambda: seen[-1][0] == "True", timeout=45, what="compliant again")
    # a Secret renewed without a SAN, after a green pass
    put_secret(core_v1, namespace, "app-tls", certgen.tls_secret(certgen.leaf(ca, "app.green.test", dns_names=())))
    wait_for(lambda: seen[-1][0] == "False", timeout=30, what="the violating status written")
    greener = [(status, metric) for status, metric in seen if status != "True" and metric == "1.0"]
    assert not greener, seen


def test_a_stage_problem_with_a_real_cause_is_degraded_and_a_warning_event(
        operator, core_v1, custom_api, policies, unique_name):
    """The bundles stage meets a ConfigMap of that name it did not create: Degraded/BundleTargetNotOwned
    (it was only a condition before issue 22) and now a Warning event of that reason too."""
    ns = labelled_namespace(core_v1, unique_name)
    core_v1.create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="app-ca"),
                                                                data={"ca.crt": ""}))
    policies(_full_policy(unique_name, ns))
    st = wait_for(lambda: (lambda s: s if condition(s, "Degraded").get("status") == "True" else None)(
        policy_status(custom_api, unique_name)), timeout=30, what="Degraded")
    assert condition(st, "Degraded")["reason"] == "BundleTargetNotOwned", condition(st, "Degraded")
    events = wait_for(lambda: [e for e in policy_events(core_v1, unique_name) if e.reason == "BundleTargetNotOwned"],
                      timeout=30, what="a Warning BundleTargetNotOwned event")
    assert events[0].type == "Warning" and f"{ns}/app-ca" in events[0].message


# ---- deletion -------------------------------------------------------------------------------------------------
def _gone(custom_api, name: str) -> bool:
    try:
        custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)
        return False
    except client.ApiException as e:
        return e.status == 404


def _ca_secrets(core_v1, operator_namespace: str, name: str) -> list[str]:
    from certpolicy.kube.ownership import MANAGED_BY, ROLE_LABEL

    return [s.metadata.name for s in core_v1.list_namespaced_secret(
        operator_namespace, label_selector=f"{MANAGED_BY}={name},{ROLE_LABEL}=ca").items]


def _pkcs12_policy(name: str, ns: str) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
            "spec": {"selector": {"namespaceSelector": {"matchLabels": {"nothing": name}}},
                     "ca": {"secretName": f"{name}-ca"}, "deletionPolicy": "Delete",
                     "trustBundles": [{"configMap": {"name": "java-ca", "key": "ca.crt"}, "namespaces": [ns],
                                       "formats": {"pkcs12": {"key": "truststore.p12", "alias": "java-ca"},
                                                   "jks": {"key": "truststore.jks"}}}]}}


def test_delete_with_a_pkcs12_truststore_finishes_and_removes_the_empty_truststore(
        operator, core_v1, custom_api, policies, unique_name, namespace, operator_namespace):
    """Issue 22 item 1: removing the last CA left an empty truststore, which PKCS#12 cannot encode
    (cryptography raised 'You must supply at least one cert'); the deletion hung for ever."""
    policies(_pkcs12_policy(unique_name, namespace))
    wait_for(lambda: (policy_status(custom_api, unique_name).get("bundleTargets") or {}).get("verified") == 1,
             timeout=30, what="the truststores written")
    cm = core_v1.read_namespaced_config_map("java-ca", namespace)
    assert {"truststore.p12", "truststore.jks"} <= set(cm.binary_data or {})
    assert _ca_secrets(core_v1, operator_namespace, unique_name)
    started = time.monotonic()
    custom_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name)
    wait_for(lambda: _gone(custom_api, unique_name), timeout=60, what="the policy deleted")
    figure(f"deletionPolicy Delete with PKCS#12 + JKS truststores: gone {time.monotonic() - started:.2f} s after "
           "the delete (hung for ever before)")
    cm = core_v1.read_namespaced_config_map("java-ca", namespace)
    # No CA left to trust, in any encoding. Should it fail again (CI saw a JKS left once, see
    # tests/unit/handlers/test_clean_up_waits.py), the message says who wrote what last.
    assert not cm.binary_data and cm.data == {"ca.crt": ""}, (
        f"data keys {sorted(cm.data or {})}, ca.crt {len((cm.data or {}).get('ca.crt') or '')} chars, binaryData keys "
        f"{sorted(cm.binary_data or {})}; writers {[(m.manager, m.operation, str(m.time)) for m in cm.metadata.managed_fields or []]}; "
        "operator log:\n" + "\n".join(line for line in operator.log_text().splitlines()[-400:]
                                       if unique_name in line or "java-ca" in line)[-4000:])
    assert not _ca_secrets(core_v1, operator_namespace, unique_name)  # the keys Delete promised to remove


def test_a_clean_up_that_cannot_finish_is_degraded_and_a_warning_event_until_it_can(
        operator_in_process, core_v1, custom_api, policies, unique_name, namespace, operator_namespace, monkeypatch):
    """A real cause: the bundle target was made immutable, so the CA cannot be taken out of it."""
    from certpolicy.handlers import policy

    monkeypatch.setattr(policy, "DELETION_RETRY", 1)  # kopf's TemporaryError delay, read per attempt
    policies(_pkcs12_policy(unique_name, namespace))
    wait_for(lambda: (policy_status(custom_api, unique_name).get("bundleTargets") or {}).get("verified") == 1,
             timeout=30, what="the bundle written")
    core_v1.patch_namespaced_config_map("java-ca", namespace, {"immutable": True})
    custom_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name)
    st = wait_for(lambda: (lambda s: s if condition(s, "Degraded").get("reason") == "DeletionFailed" else None)(
        policy_status(custom_api, unique_name)), timeout=30, what="Degraded/DeletionFailed")
    message = condition(st, "Degraded")["message"]
    assert f"ConfigMap {namespace}/java-ca: Error HTTP 422" in message and "CA keys are kept" in message, message
    events = wait_for(lambda: [e for e in policy_events(core_v1, unique_name) if e.reason == "DeletionFailed"],
                      timeout=30, what="a Warning DeletionFailed event")
    assert events[0].type == "Warning" and len(events) == 1  # retried every second, reported once
    assert _ca_secrets(core_v1, operator_namespace, unique_name)  # kept while a bundle holds the CA
    degraded = f'certpolicy_policy_degraded{{policy="{unique_name}",reason="DeletionFailed"}} 1.0'
    assert degraded in in_process_scrape()  # what CertpolicyPolicyDegraded reads
    core_v1.delete_namespaced_config_map("java-ca", namespace)
    wait_for(lambda: _gone(custom_api, unique_name), timeout=60, what="deleted once the target is gone")
    assert not _ca_secrets(core_v1, operator_namespace, unique_name)
    # and the series goes with the policy: no Degraded alert for a policy that no longer exists
    assert wait_for(lambda: f'certpolicy_policy_degraded{{policy="{unique_name}"' not in in_process_scrape(), timeout=30,
                    what="the degraded series gone")


def test_a_fault_in_the_deletion_handler_is_degraded_and_a_warning_event(
        operator_in_process, core_v1, custom_api, policies, unique_name, namespace, monkeypatch):
    from certpolicy.handlers import policy

    monkeypatch.setattr(policy, "DELETION_RETRY", 1)
    policies(_pkcs12_policy(unique_name, namespace))
    wait_for(lambda: (policy_status(custom_api, unique_name).get("bundleTargets") or {}).get("verified") == 1,
             timeout=30, what="the bundle written")
    with monkeypatch.context() as m:
        m.setattr(policy, "delete_everything", injected_fault("delete_everything"))
        custom_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name)
        st = wait_for(lambda: (lambda s: s if condition(s, "Degraded").get("reason") == "DeletionFailed" else None)(
            policy_status(custom_api, unique_name)), timeout=30, what="Degraded/DeletionFailed")
        message = condition(st, "Degraded")["message"]
        assert "InjectedFault: injected fault in delete_everything" in message and "retried every 1 s" in message
        events = wait_for(lambda: [e for e in policy_events(core_v1, unique_name) if e.reason == "DeletionFailed"],
                          timeout=30, what="a Warning DeletionFailed event")
        assert events[0].type == "Warning"
    wait_for(lambda: _gone(custom_api, unique_name), timeout=60, what="deleted once the fault is gone")

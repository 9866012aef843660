"""spec.enforcement at admission: the real kube-apiserver calls the webhook ``certpolicy run`` serves.

Each test runs the operator as a process (the shipped entry point: it serves the webhook on
loopback and registers it with the API server itself) and writes Secrets with kubectl, so what is
asserted is what a user sees: kubectl's refusal message, its ``Warning:`` lines, and the stored
Secret (its resourceVersion) after a refused write.
"""

from __future__ import annotations

import base64
import json
import uuid

import pytest
from kubernetes.client import ApiException

import certgen
from certpolicy.localcluster.cluster import free_port
from crd import GROUP, PLURAL, VERSION
from kubewait import wait_for
from operator_process import OperatorProcess

CONFIG = "certpolicy-operator"
CONFIG_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"


@pytest.fixture
def webhook_config_cleanup(api_client):
    """The configuration is cluster-wide; the operator of one test must not leave entries that
    point at its (stopped) port for the next test's writes."""
    from certpolicy.kube.rawapi import RawClient

    yield
    try:
        RawClient(api_client, gated=False).delete(f"{CONFIG_PATH}/{CONFIG}")
    except ApiException as e:
        if e.status != 404:
            raise


@pytest.fixture
def operator_proc(cluster, crd, operator_namespace, tmp_path, webhook_config_cleanup):
    op = OperatorProcess(cluster, tmp_path / "operator.log", args=["--no-leader-elect"])
    op.start()
    yield op
    op.stop()


def mtls_policy(name: str, namespace: str, enforcement: str) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
            "spec": {"enforcement": enforcement,
                     "selector": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}},
                     "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]}}}


def secret_manifest(namespace: str, name: str, issued: certgen.Issued, labels: dict | None = None) -> str:
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace,
                                                               "labels": labels or {}},
            **certgen.tls_secret(issued)}
    return json.dumps(body)


def leaf(eku=("serverAuth", "clientAuth"), cn="svc.example.com"):
    ca = certgen.root("enforcement test CA")
    return certgen.leaf(ca, cn, eku=eku)


def registered(cluster, policy: str) -> bool:
    proc = cluster.kubectl("get", "validatingwebhookconfiguration", CONFIG, "-o", "json", check=False)
    if proc.returncode != 0:
        return False
    return any(w["name"].startswith(f"{policy}.") for w in json.loads(proc.stdout).get("webhooks") or ())


def wait_enforced(cluster, namespace: str, marker: str) -> None:
    """Until a server-side dry run of a violating Secret is refused (nothing is written): the
    configuration is registered and the webhook answers."""
    probe = secret_manifest(namespace, f"probe-{uuid.uuid4().hex[:6]}", leaf(eku=("serverAuth",)))

    def refused() -> bool:
        p = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=probe, check=False)
        return p.returncode != 0 and marker in p.stderr

    wait_for(refused, timeout=60, interval=0.5, what=f"the webhook refusing for {marker}")


def wait_warned(cluster, namespace: str, marker: str) -> None:
    probe = secret_manifest(namespace, f"probe-{uuid.uuid4().hex[:6]}", leaf(eku=("serverAuth",)))

    def warned() -> bool:
        p = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=probe, check=False)
        return p.returncode == 0 and marker in p.stderr

    wait_for(warned, timeout=60, interval=0.5, what=f"the webhook warning for {marker}")


def rv(core_v1, namespace: str, name: str) -> str:
    return core_v1.read_namespaced_secret(name, namespace).metadata.resource_version


def test_deny_refuses_a_renewal_that_drops_client_auth(cluster, core_v1, namespace, policies, unique_name,
                                                       operator_proc):
    policies(mtls_policy(unique_name, namespace, "Deny"))
    cluster.kubectl("apply", "-f", "-", input=secret_manifest(namespace, "api-tls", leaf()))
    wait_enforced(cluster, namespace, unique_name)
    before = core_v1.read_namespaced_secret("api-tls", namespace)

    renewed = leaf(eku=("serverAuth",))  # the renewal lost clientAuth
    proc = cluster.kubectl("apply", "-f", "-", input=secret_manifest(namespace, "api-tls", renewed), check=False)

    assert proc.returncode != 0
    assert "denied the request" in proc.stderr
    assert f"CertificatePolicy {unique_name} (enforcement: Deny)" in proc.stderr
    assert "MissingClientAuth" in proc.stderr and "Re-issue it with clientAuth" in proc.stderr
    after = core_v1.read_namespaced_secret("api-tls", namespace)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.data["tls.crt"] == before.data["tls.crt"]


def test_warn_lets_the_same_write_pass_with_a_warning(cluster, core_v1, namespace, policies, unique_name,
                                                      operator_proc):
    policies(mtls_policy(unique_name, namespace, "Warn"))
    cluster.kubectl("apply", "-f", "-", input=secret_manifest(namespace, "api-tls", leaf()))
    wait_warned(cluster, namespace, unique_name)
    before = rv(core_v1, namespace, "api-tls")

    renewed = leaf(eku=("serverAuth",))
    proc = cluster.kubectl("apply", "-f", "-", input=secret_manifest(namespace, "api-tls", renewed))

    assert proc.returncode == 0
    assert f"Warning: CertificatePolicy {unique_name}: Secret {namespace}/api-tls: MissingClientAuth" in proc.stderr
    assert rv(core_v1, namespace, "api-tls") != before
    stored = base64.b64decode(core_v1.read_namespaced_secret("api-tls", namespace).data["tls.crt"])
    assert stored == certgen.pem(renewed)


def test_an_already_violating_secret_can_change_without_getting_worse(cluster, core_v1, namespace, policies,
                                                                      unique_name, operator_proc):
    """Created before the policy enforced (as a Secret that slipped through would be): a label
    change, an equally bad leaf and the fix all pass; so does a delete."""
    bad = leaf(eku=("serverAuth",))
    cluster.kubectl("apply", "-f", "-", input=secret_manifest(namespace, "legacy-tls", bad))
    policies(mtls_policy(unique_name, namespace, "Deny"))
    wait_enforced(cluster, namespace, unique_name)

    relabelled = cluster.kubectl("apply", "-f", "-", check=False,
                                 input=secret_manifest(namespace, "legacy-tls", bad, labels={"team": "payments"}))
    assert relabelled.returncode == 0, relabelled.stderr
    assert core_v1.read_namespaced_secret("legacy-tls", namespace).metadata.labels == {"team": "payments"}

    equally_bad = leaf(eku=("serverAuth",))  # another key and CA, the same names and usages
    same = cluster.kubectl("apply", "-f", "-", check=False,
                           input=secret_manifest(namespace, "legacy-tls", equally_bad, labels={"team": "payments"}))
    assert same.returncode == 0, same.stderr

    fixed = cluster.kubectl("apply", "-f", "-", check=False,
                            input=secret_manifest(namespace, "legacy-tls", leaf(), labels={"team": "payments"}))
    assert fixed.returncode == 0, fixed.stderr

    # Now compliant: making it worse again is refused, deleting it is not.
    worse = cluster.kubectl("apply", "-f", "-", check=False,
                            input=secret_manifest(namespace, "legacy-tls", bad, labels={"team": "payments"}))
    assert worse.returncode != 0 and "MissingClientAuth" in worse.stderr
    deleted = cluster.kubectl("delete", "secret", "-n", namespace, "legacy-tls", check=False)
    assert deleted.returncode == 0, deleted.stderr
    with pytest.raises(ApiException) as gone:
        core_v1.read_namespaced_secret("legacy-tls", namespace)
    assert gone.value.status == 404


def test_the_webhook_is_registered_only_for_what_the_policy_selects(cluster, namespace, policies, unique_name,
                                                                    operator_proc):
    policies(mtls_policy(unique_name, namespace, "Deny"))
    wait_for(lambda: registered(cluster, unique_name), timeout=60, what="the policy's webhook entry")
    config = json.loads(cluster.kubectl("get", "validatingwebhookconfiguration", CONFIG, "-o", "json").stdout)
    entry = next(w for w in config["webhooks"] if w["name"].startswith(f"{unique_name}."))
    assert entry["failurePolicy"] == "Ignore"
    assert entry["timeoutSeconds"] <= 5
    assert entry["namespaceSelector"] == {"matchLabels": {"kubernetes.io/metadata.name": namespace}}
    assert {r for rule in entry["rules"] for r in rule["operations"]} == {"CREATE", "UPDATE"}
    assert entry["clientConfig"]["url"].startswith("https://127.0.0.1:")
    assert entry["clientConfig"]["caBundle"]
    assert any(c["expression"] == "object.type == 'kubernetes.io/tls'" for c in entry["matchConditions"])


def test_with_the_operator_stopped_writes_pass_and_are_reported_when_it_is_back(
        cluster, core_v1, custom_api, namespace, policies, unique_name, operator_proc):
    policies(mtls_policy(unique_name, namespace, "Deny"))
    cluster.kubectl("apply", "-f", "-", input=secret_manifest(namespace, "api-tls", leaf()))
    wait_enforced(cluster, namespace, unique_name)
    operator_proc.stop()

    # failurePolicy Ignore: the API server cannot reach the webhook and admits the write.
    proc = cluster.kubectl("apply", "-f", "-", check=False,
                           input=secret_manifest(namespace, "api-tls", leaf(eku=("serverAuth",))))
    assert proc.returncode == 0, proc.stderr

    operator_proc.start()

    def reported():
        status = custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name).get("status") or {}
        return [v for v in status.get("violations") or () if v.get("name") == "api-tls"]

    violations = wait_for(reported, timeout=90, what="the violation that slipped through, in status")
    assert "MissingClientAuth" in json.dumps(violations)


def test_a_second_operator_on_the_same_port_answers_when_the_first_dies(cluster, core_v1, namespace, policies,
                                                                         unique_name, tmp_path,
                                                                         webhook_config_cleanup, crd,
                                                                         operator_namespace):
    """Two replicas (leader election on) listen on one port, as two Pods behind a Service: SIGKILL
    the leader and every write after it is still decided, by the standby."""
    port = free_port()
    lease = f"lease-{uuid.uuid4().hex[:6]}"
    procs = [OperatorProcess(cluster, tmp_path / f"op{i}.log",
                             args=[f"--identity=op{i}", f"--lease-name={lease}", f"--webhook-port={port}"])
             for i in range(2)]
    for p in procs:
        p.start()
    try:
        policies(mtls_policy(unique_name, namespace, "Deny"))
        cluster.kubectl("apply", "-f", "-", input=secret_manifest(namespace, "api-tls", leaf()))
        wait_enforced(cluster, namespace, unique_name)
        leader = wait_for(lambda: next((p for p in procs if _leads(p)), None), what="a leader")
        standby = next(p for p in procs if p is not leader)
        leader.kill()
        refused = 0
        for _ in range(10):
            proc = cluster.kubectl("apply", "-f", "-", check=False,
                                   input=secret_manifest(namespace, "api-tls", leaf(eku=("serverAuth",))))
            assert proc.returncode != 0, "a write passed unchecked after the leader died"
            assert unique_name in proc.stderr
            refused += 1
        assert refused == 10
        assert standby.proc.poll() is None
    finally:
        for p in procs:
            p.stop()


def test_the_port_opens_with_the_first_enforcing_policy_and_stale_entries_go_before(
        cluster, api_client, namespace, policies, unique_name, tmp_path, webhook_config_cleanup, crd,
        operator_namespace):
    """With no enforcing policy the webhook's port stays closed (nothing may call it, and the
    start does not wait on aiohttp), yet entries a previous run left are removed; the first
    enforcing policy opens the port, and a violating write is refused."""
    import socket

    from certpolicy.kube.rawapi import RawClient

    raw = RawClient(api_client, gated=False)
    enforcing = [p["metadata"]["name"] for p in raw.get(f"/apis/{GROUP}/{VERSION}/{PLURAL}")["items"]
                 if (p.get("spec") or {}).get("enforcement") in ("Warn", "Deny")]
    assert enforcing == [], f"another test left enforcing policies: {enforcing}"
    port = free_port()
    raw.post(CONFIG_PATH, {"metadata": {"name": CONFIG}, "webhooks": [{
        "name": "gone.secret.certpolicy.io", "admissionReviewVersions": ["v1"], "sideEffects": "None",
        "failurePolicy": "Ignore", "timeoutSeconds": 3,
        "clientConfig": {"url": f"https://127.0.0.1:{port}/validate/secret/gone"},
        "rules": [{"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"],
                   "resources": ["secrets"]}]}]})
    op = OperatorProcess(cluster, tmp_path / "operator.log", args=["--no-leader-elect", f"--webhook-port={port}"])
    op.start()
    try:
        wait_for(lambda: not (raw.get(f"{CONFIG_PATH}/{CONFIG}").get("webhooks") or []), timeout=60,
                 what="the previous run's entry removed")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=5).close()
        assert b"admission webhook on" not in op.log_path.read_bytes()

        policies(mtls_policy(unique_name, namespace, "Deny"))
        wait_enforced(cluster, namespace, unique_name)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        op.stop()


def test_a_port_another_program_holds_is_not_enforced_until_it_is_free(
        cluster, core_v1, custom_api, namespace, policies, unique_name, tmp_path, webhook_config_cleanup, crd,
        operator_namespace):
    """The port opens when the first policy enforces, so a port another program holds shows only
    then: ``Enforced=Unknown/WebhookUpkeepFailed`` naming the cause, with a Warning event, no entry
    registered, and the listen tried again until the port is free. A failed listen used to count
    as an open port: the next upkeep registered entries for a port this process did not serve
    and reported the policy enforced."""
    import socket

    from crd import policy_status, wait_status

    blocker = socket.socket()  # no SO_REUSEPORT: the operator cannot share the port
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    op = OperatorProcess(cluster, tmp_path / "operator.log", args=["--no-leader-elect", f"--webhook-port={port}"])
    op.start()
    try:
        policies(mtls_policy(unique_name, namespace, "Deny"))
        st = wait_status(custom_api, unique_name, lambda s: enforced_in(s) == ("Unknown", "WebhookUpkeepFailed"),
                         "Enforced=Unknown/WebhookUpkeepFailed", timeout=60)
        assert "address already in use" in next(c for c in st["conditions"] if c["type"] == "Enforced")["message"]
        wait_for(lambda: policy_events(core_v1, unique_name, "WebhookUpkeepFailed"), what="the Warning event")
        failures = op.log_path.read_text(errors="replace").count("webhook upkeep failed")
        wait_for(lambda: op.log_path.read_text(errors="replace").count("webhook upkeep failed") > failures,
                 timeout=60, what="a later upkeep trying the port again")
        assert not registered(cluster, unique_name)
        assert enforced_in(policy_status(custom_api, unique_name)) == ("Unknown", "WebhookUpkeepFailed")
        blocker.close()
        wait_enforced(cluster, namespace, unique_name)
        wait_status(custom_api, unique_name, lambda s: enforced_in(s) == ("True", "Registered"),
                    "Enforced=True once the port is free", timeout=60)
    finally:
        blocker.close()
        op.stop()


def _leads(proc: OperatorProcess) -> bool:
    return b"became the leader" in proc.log_path.read_bytes()


def bundle_manifest(namespace: str, name: str, *cas: certgen.Issued) -> str:
    return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": namespace},
                       "data": {"ca.crt": certgen.pem(*cas).decode()}})


def test_the_bundle_guard_refuses_removing_a_ca_that_still_anchors_a_leaf(cluster, core_v1, namespace, policies,
                                                                          unique_name, operator_proc):
    used, unused = certgen.root("guard CA in use"), certgen.root("guard CA unused")
    cluster.kubectl("apply", "-f", "-", input=bundle_manifest(namespace, "trust", used, unused))
    cluster.kubectl("apply", "-f", "-", input=secret_manifest(namespace, "api-tls", certgen.leaf(used, "api.example.com")))
    body = mtls_policy(unique_name, namespace, "Deny")
    body["spec"]["requirements"]["trustBundle"] = {"configMap": {"namespace": namespace, "name": "trust"}}
    policies(body)

    orphaning = bundle_manifest(namespace, "trust", unused)

    def refused():
        p = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=orphaning, check=False)
        return p if p.returncode != 0 else None

    proc = wait_for(refused, timeout=60, interval=0.5, what="the bundle guard refusing")
    assert f"CertificatePolicy {unique_name} (enforcement: Deny)" in proc.stderr
    assert f"Secret {namespace}/api-tls" in proc.stderr and "guard CA in use" in proc.stderr
    before = core_v1.read_namespaced_config_map("trust", namespace).metadata.resource_version
    assert cluster.kubectl("apply", "-f", "-", input=orphaning, check=False).returncode != 0
    assert core_v1.read_namespaced_config_map("trust", namespace).metadata.resource_version == before

    # Removing the CA that anchors nothing passes.
    kept = cluster.kubectl("apply", "-f", "-", input=bundle_manifest(namespace, "trust", used), check=False)
    assert kept.returncode == 0, kept.stderr
    assert core_v1.read_namespaced_config_map("trust", namespace).metadata.resource_version != before


def test_deny_refuses_a_renewal_regression_no_requirement_names(cluster, core_v1, namespace, policies, unique_name,
                                                                operator_proc):
    """The policy says nothing about names; the renewal lost one (old object's leaf vs new)."""
    policies(mtls_policy(unique_name, namespace, "Deny"))
    ca = certgen.root("renewal CA")
    two = certgen.leaf(ca, "a.example.com", dns_names=("a.example.com", "b.example.com"))
    cluster.kubectl("apply", "-f", "-", input=secret_manifest(namespace, "api-tls", two))
    wait_enforced(cluster, namespace, unique_name)
    before = rv(core_v1, namespace, "api-tls")

    one = certgen.leaf(ca, "a.example.com", dns_names=("a.example.com",))
    proc = cluster.kubectl("apply", "-f", "-", input=secret_manifest(namespace, "api-tls", one), check=False)

    assert proc.returncode != 0
    assert "RenewalDroppedDNSName" in proc.stderr and "b.example.com" in proc.stderr
    assert rv(core_v1, namespace, "api-tls") == before


def test_the_webhook_ca_rotates_without_one_failed_admission_call(cluster, core_v1, namespace, policies,
                                                                  unique_name, tmp_path, crd, operator_namespace,
                                                                  webhook_config_cleanup):
    """caBundle old+new before the serving certificate switches, old dropped after: a refused write
    every few milliseconds through the whole rotation is refused every time (an unreachable or
    untrusted webhook would let it through: failurePolicy Ignore)."""
    import threading

    from certpolicy.webhook.serving import CA_SECRET, ROTATE

    op = OperatorProcess(cluster, tmp_path / "operator.log", args=["--no-leader-elect"],
                         env={"CERTPOLICY_WEBHOOK_CA_PROPAGATION": "2"})
    op.start()
    try:
        policies(mtls_policy(unique_name, namespace, "Deny"))
        wait_enforced(cluster, namespace, unique_name)
        ca_before = core_v1.read_namespaced_secret(CA_SECRET, operator_namespace).data["tls.crt"]
        probe = json.loads(secret_manifest(namespace, "probe-tls", leaf(eku=("serverAuth",))))
        admitted, refused, stop = [], [], threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    core_v1.create_namespaced_secret(namespace, probe, dry_run="All")
                    admitted.append(1)
                except ApiException as e:
                    (refused if e.status == 403 else admitted).append(e.status)

        thread = threading.Thread(target=hammer, daemon=True)
        thread.start()
        core_v1.patch_namespaced_secret(CA_SECRET, operator_namespace,
                                        {"metadata": {"annotations": {ROTATE: uuid.uuid4().hex}}})

        def rotated():
            secret = core_v1.read_namespaced_secret(CA_SECRET, operator_namespace)
            config = json.loads(cluster.kubectl("get", "validatingwebhookconfiguration", CONFIG, "-o", "json").stdout)
            bundle = base64.b64decode(config["webhooks"][0]["clientConfig"]["caBundle"])
            done = (secret.data["tls.crt"] != ca_before and "next.crt" not in secret.data
                    and bundle == base64.b64decode(secret.data["tls.crt"]))
            return done

        wait_for(rotated, timeout=120, interval=0.5, what="the webhook CA rotated, the old CA out of the caBundle")
        stop.set()
        thread.join(10)
    finally:
        op.stop()
    log = (tmp_path / "operator.log").read_text()
    assert "webhook CA rotation: next CA" in log and "is the only one now" in log
    assert refused and not admitted, f"{len(admitted)} of {len(admitted) + len(refused)} calls were not refused"


def policy_events(core_v1, name: str, reason: str) -> list:
    return [e for e in core_v1.list_namespaced_event("default", field_selector=f"involvedObject.name={name}").items
            if e.reason == reason]


def test_a_failing_webhook_upkeep_is_enforced_false_on_the_policy_until_it_recovers(
        cluster, core_v1, custom_api, namespace, policies, unique_name, operator_namespace, operator_proc):
    """A real upkeep failure, no code patched: the webhook's CA Secret stops being the operator's
    own (its managed-by label removed), so the upkeep refuses to use it and raises every time.
    Entries already registered stay in force; a policy whose spec changes meanwhile cannot have
    its new entries written: ``Enforced=False/WebhookUpkeepFailed`` naming the cause, with a
    Warning event, not only the metric. With the label back the next upkeep writes them: True
    again, with a Normal event."""
    from certpolicy.kube.ownership import MANAGED_BY
    from certpolicy.webhook.serving import CA_SECRET
    from crd import wait_status

    policies(mtls_policy(unique_name, namespace, "Deny"))
    st = wait_status(custom_api, unique_name, lambda s: enforced_in(s) == ("True", "Registered"),
                     "Enforced=True/Registered", timeout=60)
    assert CONFIG in next(c for c in st["conditions"] if c["type"] == "Enforced")["message"]

    manager = core_v1.read_namespaced_secret(CA_SECRET, operator_namespace).metadata.labels[MANAGED_BY]
    core_v1.patch_namespaced_secret(CA_SECRET, operator_namespace, {"metadata": {"labels": {MANAGED_BY: None}}})
    try:
        # The upkeep has seen the Secret change first: otherwise an upkeep already under way can
        # still write the new entries below before it notices (seen once in a clean-clone .ci/run: Enforced stayed
        # True, rightly, since they were registered).
        wait_for(lambda: "webhook upkeep failed (NotOurs" in operator_proc.log_path.read_text(errors="replace"),
                 timeout=30, what="the upkeep refusing the CA Secret")
        # a change of what the policy selects: its entries must be written again, and cannot be
        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name, {"spec": {"selector": {
            "secretSelector": {"matchLabels": {"tier": "payments"}}}}})
        st = wait_status(custom_api, unique_name, lambda s: enforced_in(s) == ("False", "WebhookUpkeepFailed"),
                         "Enforced=False/WebhookUpkeepFailed", timeout=60)
        message = next(c for c in st["conditions"] if c["type"] == "Enforced")["message"]
        assert "not in force" in message and "was not created by the operator's webhook" in message, message
        assert f"{unique_name}.secrets.certpolicy.io" in message
        wait_for(lambda: policy_events(core_v1, unique_name, "WebhookUpkeepFailed"), what="the Warning event")
    finally:
        core_v1.patch_namespaced_secret(CA_SECRET, operator_namespace, {"metadata": {"labels": {MANAGED_BY: manager}}})
    wait_status(custom_api, unique_name, lambda s: enforced_in(s) == ("True", "Registered"),
                "Enforced=True again once the upkeep works", timeout=60)
    wait_for(lambda: policy_events(core_v1, unique_name, "Enforced"), what="the Normal event of the recovery")
    assert len(policy_events(core_v1, unique_name, "WebhookUpkeepFailed")) == 1


def test_entries_someone_else_removed_are_written_again(cluster, custom_api, api_client, namespace, policies,
                                                        unique_name, operator_proc):
    """A re-apply of the shipped (empty) configuration keeps the operator's hash annotation: the
    upkeep used to trust the annotation and never wrote the entries again, so enforcement stayed
    off with nothing saying so. Now it compares the entries it reads back."""
    from certpolicy.kube.rawapi import RawClient
    from crd import policy_status, wait_status

    policies(mtls_policy(unique_name, namespace, "Deny"))
    wait_status(custom_api, unique_name, lambda s: enforced_in(s) == ("True", "Registered"),
                "Enforced=True/Registered", timeout=60)
    raw = RawClient(api_client, gated=False)
    raw.patch(f"{CONFIG_PATH}/{CONFIG}", {"webhooks": []})
    wait_for(lambda: registered(cluster, unique_name), timeout=60, interval=0.5,
             what="the policy's entries written again by the upkeep")
    wait_enforced(cluster, namespace, unique_name)  # a violating write is refused again
    assert enforced_in(policy_status(custom_api, unique_name)) == ("True", "Registered")


def enforced_in(status: dict) -> tuple[str | None, str | None]:
    c = next((c for c in status.get("conditions") or () if c["type"] == "Enforced"), {})
    return c.get("status"), c.get("reason")

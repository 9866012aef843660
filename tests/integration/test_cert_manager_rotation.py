"""Rotating the CA behind a cert-manager CA Issuer (``spec.ca.certManager``, issue 27 item 3),
against cert-manager's real controllers (tests/certmanager.py) and ``certpolicy run`` as shipped.

30 Certificates from one CA Issuer, two of them used by mTLS workloads that re-read their leaf and
bundle with a lag (mtls_workload.py): the five steps move every Certificate to the new CA with no
failed handshake, although the operator is SIGKILLed in step 3 and again in step 4; the bundle ends
with the new CA alone, and the Issuer signs only with the new CA (a renewal after the rotation
chains to it). An abort before step 3 leaves the Issuer's Secret at its resourceVersion.
"""

from __future__ import annotations

import base64
import json
import uuid

from cryptography import x509
from rotation_support import MTLSPair, bundle_fingerprints

import certgen
import certmanager
from certpolicy.pki.fingerprint import fingerprint
from crd import GROUP, PLURAL, VERSION, policy_status
from kubewait import wait_for
from operator_process import OperatorProcess
from plugincli import plugin

CERTIFICATES = 30
USAGES = ["digital signature", "key encipherment", "server auth", "client auth"]
ISSUED = {"controller.cert-manager.io/fao": "true"}  # cert-manager's label on the Secrets it issues
ISSUER, ISSUER_SECRET, BUNDLE = "ca", "ca-ca", "mtls-ca"


def issuer_policy(name: str, namespace: str, **spec) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
            "spec": {"selector": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                                  "secretSelector": {"matchLabels": ISSUED}},
                     "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
                     "ca": {"secretName": ISSUER_SECRET, "keyAlgorithm": "ECDSAP256",
                            "certManager": {"issuerRef": {"kind": "Issuer", "name": ISSUER, "namespace": namespace}}},
                     "trustBundles": [{"configMap": {"name": BUNDLE}, "namespaceSelector": {
                         "matchLabels": {"kubernetes.io/metadata.name": namespace}}}],
                     **spec}}


def issue_all(core_v1, custom_api, namespace: str, count: int) -> x509.Certificate:
    """A CA Issuer and ``count`` Certificates (ECDSA P-256, mTLS usages) from it, all issued."""
    ca = certgen.root(f"cert-manager issuer CA {uuid.uuid4().hex[:6]}")
    certmanager.ca_issuer(core_v1, custom_api, namespace, ISSUER, ca.pem, ca.key_pem())
    for i in range(count):
        certmanager.apply(custom_api, namespace, "certificates", certmanager.certificate(
            f"app-{i}", issuer_name=ISSUER, secret_name=f"app-{i}", dns_names=[f"app-{i}.{namespace}.test"],
            usages=USAGES, private_key={"algorithm": "ECDSA", "size": 256}))
    for i in range(count):
        certmanager.wait_issued(custom_api, namespace, f"app-{i}", timeout=120)
    return ca.cert


def leaf_issuer_fingerprint(core_v1, namespace: str, secret: str, cas: list[x509.Certificate]) -> str | None:
    """The fingerprint of the CA among ``cas`` that signed the Secret's leaf (None: none of them)."""
    data = core_v1.read_namespaced_secret(secret, namespace).data
    leaf = x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))
    for ca in cas:
        try:
            leaf.verify_directly_issued_by(ca)
        except Exception:  # noqa: BLE001, S112 - not this one
            continue
        return fingerprint(ca)
    return None


def issuer_secret_named(core_v1, namespace: str, name: str):
    return core_v1.read_namespaced_secret(name, namespace)


def issuer_secret(core_v1, namespace: str):
    return issuer_secret_named(core_v1, namespace, ISSUER_SECRET)


def secret_cert(secret, key: str = "tls.crt") -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(secret.data[key]))


def test_thirty_certificates_move_to_the_new_ca_without_a_failed_handshake_through_two_kills(
        cert_manager, crd, cluster, operator_namespace, custom_api, core_v1, namespace, policies, unique_name,
        tmp_path):
    old_ca = issue_all(core_v1, custom_api, namespace, CERTIFICATES)
    old = fingerprint(old_ca)
    policies(issuer_policy(unique_name, namespace,
                           rotation={"propagationDelay": "3s", "leafPropagationDelay": "3s"},
                           issuanceLimits={"perMinute": 15}))
    op = OperatorProcess(cluster, tmp_path / "operator.log")
    op.start()
    pair = None

    def status() -> dict:
        return policy_status(custom_api, unique_name)

    def bundle() -> frozenset[str]:
        cm = core_v1.read_namespaced_config_map(BUNDLE, namespace) if any(
            c.metadata.name == BUNDLE for c in core_v1.list_namespaced_config_map(namespace).items) else None
        return bundle_fingerprints(cm.to_dict() if cm is not None else None)

    try:
        wait_for(lambda: (status().get("ca") or {}).get("fingerprint") == old and bundle() == {old}, timeout=60,
                 what="the Issuer's CA active in status and in the bundle")
        pair = MTLSPair(tmp_path, BUNDLE, [(namespace, "app-0", 1.2, 0.5, 0.0), (namespace, "app-1", 2.0, 0.7, 0.35)],
                        kubeconfig=cluster.kubeconfig)
        wait_for(lambda: pair.totals()[0] >= 20, timeout=60, what="the workloads handshake")
        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                               {"metadata": {"annotations": {"certpolicy.io/rotate": "issuer-1"}}})

        paced: list[int] = []  # re-issue requests in the current one-minute window, as seen in status

        def at_step(step: int) -> bool:
            rot = status().get("rotation") or {}
            paced.append(int((rot.get("reissue") or {}).get("windowCount") or 0))
            return rot.get("id") == "issuer-1" and rot.get("step") == step

        def wait_step(step: int, timeout: float) -> None:
            try:
                wait_for(lambda: at_step(step), timeout=timeout, interval=0.05, what=f"step {step}")
            except AssertionError as e:
                raise AssertionError(f"{e}; status: {status()}") from None

        wait_step(3, 60)
        op.kill()  # SIGKILL in step 3: the Issuer may hold either CA, some Certificates re-issued
        op.start()
        wait_step(4, 180)
        new = (status().get("rotation") or {})["newCA"]
        op.kill()  # SIGKILL in step 4
        op.start()

        def completed() -> dict | None:
            rot = status().get("rotation") or {}
            hist = rot.get("history") or []
            return hist[0] if not rot.get("id") and hist and hist[0]["id"] == "issuer-1" else None

        done = wait_for(completed, timeout=180, what="the rotation completed")
        assert done["outcome"] == "Completed", done
        assert (done["oldCA"], done["newCA"]) == (old, new)
        before = pair.totals()[0]
        wait_for(lambda: pair.totals()[0] >= before + 40, timeout=30, what="handshakes after the rotation")
        counts = pair.counts()  # before stopping: a peer shutting down is not the rotation's doing
    finally:
        if pair is not None:
            pair.stop()
        op.stop()

    assert 0 < max(paced) <= 15, paced  # issuanceLimits.perMinute: never more than 15 per window
    ok, failed = sum(c["ok"] for c in counts), sum(c["fail"] for c in counts)
    print(f"{CERTIFICATES} Certificates: {ok} handshakes succeeded, {failed} failed; loads {[c['loads'] for c in counts]}")
    assert failed == 0, [c["errors"] for c in counts]
    assert all(c["loads"] >= 3 for c in counts)  # bundle with both CAs, the new leaf, bundle with the new CA only

    # The Issuer's Secret holds the new key pair, ca.crt included, and nothing else changed in it.
    secret = issuer_secret(core_v1, namespace)
    new_ca = secret_cert(secret)
    assert fingerprint(new_ca) == new and fingerprint(secret_cert(secret, "ca.crt")) == new
    assert not (secret.metadata.labels or {}) and set(secret.data) == {"tls.crt", "tls.key", "ca.crt"}
    # Every Certificate is Ready with a leaf from the new CA; the bundle holds the new CA alone.
    for i in range(CERTIFICATES):
        assert certmanager.is_ready(certmanager.get(custom_api, namespace, "certificates", f"app-{i}"))
        assert leaf_issuer_fingerprint(core_v1, namespace, f"app-{i}", [old_ca, new_ca]) == new, f"app-{i}"
    assert bundle() == {new}
    # After step 3 the Issuer signs only with the new CA: a renewal now chains to it.
    revision = certmanager.get(custom_api, namespace, "certificates", "app-7")["status"]["revision"]
    certmanager.renew(custom_api, namespace, "app-7")
    certmanager.wait_issued(custom_api, namespace, "app-7", revision=revision + 1)
    assert leaf_issuer_fingerprint(core_v1, namespace, "app-7", [old_ca, new_ca]) == new


def test_an_abort_before_step_3_leaves_the_issuer_secret_untouched(
        cert_manager, operator, custom_api, core_v1, namespace, policies, unique_name):
    old_ca = issue_all(core_v1, custom_api, namespace, 2)
    old = fingerprint(old_ca)
    policies(issuer_policy(unique_name, namespace, rotation={"propagationDelay": "1h"}))

    def status() -> dict:
        return policy_status(custom_api, unique_name)

    wait_for(lambda: (status().get("ca") or {}).get("fingerprint") == old, timeout=60, what="the Issuer's CA active")
    before = issuer_secret(core_v1, namespace)
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                           {"metadata": {"annotations": {"certpolicy.io/rotate": "abort-1"}}})
    wait_for(lambda: (status().get("rotation") or {}).get("step") == 2, timeout=60, what="step 2 (held: 1h delay)")
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name, {"spec": {"rotation": {"abort": True}}})

    def aborted() -> dict | None:
        rot = status().get("rotation") or {}
        hist = rot.get("history") or []
        return hist[0] if not rot.get("id") and hist and hist[0]["id"] == "abort-1" else None

    done = wait_for(aborted, timeout=60, what="the rotation aborted and rolled back")
    assert done["outcome"] == "Aborted", done
    after = issuer_secret(core_v1, namespace)
    assert after.metadata.resource_version == before.metadata.resource_version
    assert after.data == before.data
    # Nothing asked cert-manager to re-issue: every Certificate is still at revision 1, from the old CA.
    for i in range(2):
        cert = certmanager.get(custom_api, namespace, "certificates", f"app-{i}")
        assert cert["status"]["revision"] == 1 and certmanager.condition(cert, "Issuing") is None
        assert leaf_issuer_fingerprint(core_v1, namespace, f"app-{i}", [old_ca]) == old


def test_the_issuer_rotation_example_reaches_its_documented_state_and_rotates(
        cert_manager, operator, crd, core_v1, custom_api, cluster, audit):
    """examples/cert-manager/ca-issuer-rotation.yaml as its header says: the CA Secret made outside
    cert-manager (here by certgen, as openssl would), the file applied as it is, the rotation asked
    for with the annotation the header gives, and the state it promises at the end."""
    from certpolicy.kube.namespaces import ensure_namespace
    from paths import REPO

    example = REPO / "examples" / "cert-manager" / "ca-issuer-rotation.yaml"
    ns, policy = "cert-manager-rotation-demo", "cert-manager-ca-rotation"
    ca = certgen.root("demo CA")
    ensure_namespace(core_v1, ns)
    core_v1.create_namespaced_secret(ns, {"metadata": {"name": "demo-ca"}, "type": "kubernetes.io/tls",
                                          "data": {"tls.crt": base64.b64encode(ca.pem).decode(),
                                                   "tls.key": base64.b64encode(ca.key_pem()).decode()}})
    cluster.kubectl("apply", "-f", str(example))
    old = fingerprint(ca.cert)

    def status() -> dict:
        return policy_status(custom_api, policy)

    def compliant() -> bool:
        c = certmanager.condition(custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, policy), "Compliant")
        return bool(c and c["status"] == "True")

    def bundle() -> frozenset[str]:
        return bundle_fingerprints(core_v1.read_namespaced_config_map("demo-ca", ns).to_dict())

    try:
        for name in ("engine", "partner"):
            certmanager.wait_issued(custom_api, ns, name, timeout=90)
        wait_for(lambda: compliant() and status()["summary"]["selected"] == 2 and bundle() == {old}, timeout=90,
                 what="the example's documented state")
        cluster.kubectl("annotate", "certpol", policy, "certpolicy.io/rotate=demo-1")

        def completed() -> dict | None:
            rot = status().get("rotation") or {}
            hist = rot.get("history") or []
            return hist[0] if not rot.get("id") and hist and hist[0]["id"] == "demo-1" else None

        done = wait_for(completed, timeout=180, what="the example's rotation completed")
        assert done["outcome"] == "Completed", done
        new_ca = secret_cert(issuer_secret_named(core_v1, ns, "demo-ca"))
        assert fingerprint(new_ca) == done["newCA"] != old
        assert bundle() == {done["newCA"]}
        for name in ("engine", "partner"):
            assert leaf_issuer_fingerprint(core_v1, ns, f"{name}-tls", [ca.cert, new_ca]) == done["newCA"]
    finally:
        audit.add(f"policy {policy}", str(custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, policy)))
        custom_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, policy)


def test_a_cluster_issuer_rotates_its_certificates_in_every_namespace_and_no_other(
        cert_manager, operator, custom_api, core_v1, namespace, policies, unique_name):
    """A ClusterIssuer's Secret lives in cert-manager's cluster resource namespace; its Certificates
    in two namespaces move to the new CA, and a Certificate from another Issuer is never asked to
    re-issue."""
    from certpolicy.kube.namespaces import ensure_namespace

    other_ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, other_ns)
    cm_ns, name = certmanager.CLUSTER_RESOURCE_NAMESPACE, f"ci-{uuid.uuid4().hex[:8]}"
    ca = certgen.root(f"cluster issuer CA {name}")
    core_v1.create_namespaced_secret(cm_ns, {"metadata": {"name": name}, "type": "kubernetes.io/tls",
                                             "data": {"tls.crt": base64.b64encode(ca.pem).decode(),
                                                      "tls.key": base64.b64encode(ca.key_pem()).decode()}})
    custom_api.create_cluster_custom_object(certmanager.GROUP, certmanager.VERSION, "clusterissuers", {
        "apiVersion": f"{certmanager.GROUP}/{certmanager.VERSION}", "kind": "ClusterIssuer",
        "metadata": {"name": name}, "spec": {"ca": {"secretName": name}}})
    placed = [(namespace, "a"), (other_ns, "b")]
    for ns, cert in placed:
        certmanager.apply(custom_api, ns, "certificates", certmanager.certificate(
            cert, issuer_name=name, issuer_kind="ClusterIssuer", secret_name=f"{cert}-tls", dns_names=[f"{cert}.test"],
            usages=USAGES, private_key={"algorithm": "ECDSA", "size": 256}))
    # Another Issuer's Certificate in the same namespace: not the ClusterIssuer's, never touched.
    other_ca = certgen.root("another issuer")
    certmanager.ca_issuer(core_v1, custom_api, namespace, "other", other_ca.pem, other_ca.key_pem())
    certmanager.apply(custom_api, namespace, "certificates", certmanager.certificate(
        "bystander", issuer_name="other", secret_name="bystander-tls", dns_names=["bystander.test"], usages=USAGES,
        private_key={"algorithm": "ECDSA", "size": 256}))
    for ns, cert in [*placed, (namespace, "bystander")]:
        certmanager.wait_issued(custom_api, ns, cert, timeout=90)
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
              "spec": {"selector": {"namespaceSelector": {"matchExpressions": [
                  {"key": "kubernetes.io/metadata.name", "operator": "In", "values": [namespace, other_ns]}]},
                  "secretSelector": {"matchLabels": ISSUED}},
                  "ca": {"secretName": name, "certManager": {"issuerRef": {"kind": "ClusterIssuer", "name": name}}},
                  "trustBundles": [{"configMap": {"name": BUNDLE}, "namespaceSelector": {
                      "matchLabels": {"kubernetes.io/metadata.name": namespace}}}],
                  "rotation": {"propagationDelay": "1s", "leafPropagationDelay": "1s"}}})

    def status() -> dict:
        return policy_status(custom_api, unique_name)

    wait_for(lambda: (status().get("ca") or {}).get("fingerprint") == fingerprint(ca.cert), timeout=60,
             what="the ClusterIssuer's CA active")
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                           {"metadata": {"annotations": {"certpolicy.io/rotate": "ci-1"}}})

    def completed() -> dict | None:
        rot = status().get("rotation") or {}
        hist = rot.get("history") or []
        return hist[0] if not rot.get("id") and hist and hist[0]["id"] == "ci-1" else None

    done = wait_for(completed, timeout=120, what="the ClusterIssuer rotation completed")
    assert done["outcome"] == "Completed", done
    new_ca = secret_cert(issuer_secret_named(core_v1, cm_ns, name))
    assert fingerprint(new_ca) == done["newCA"]
    for ns, cert in placed:
        assert leaf_issuer_fingerprint(core_v1, ns, f"{cert}-tls", [ca.cert, new_ca]) == done["newCA"], (ns, cert)
    bystander = certmanager.get(custom_api, namespace, "certificates", "bystander")
    assert bystander["status"]["revision"] == 1 and certmanager.condition(bystander, "Issuing") is None


def test_rotate_plan_lists_the_issuers_certificates_as_the_leaves_step_3_reissues(
        cert_manager, crd, cluster, operator, custom_api, core_v1, namespace, policies, unique_name):
    """Without reading the Issuer's Certificates the plan took their Secrets for leaves someone else
    must replace (unmanagedLeaves: step 4 waiting on their owners), not ones step 3 re-issues."""
    old = fingerprint(issue_all(core_v1, custom_api, namespace, 3))
    # A Certificate of another Issuer in the same namespace is not one the rotation re-issues.
    other = certgen.root(f"other issuer CA {uuid.uuid4().hex[:6]}")
    certmanager.ca_issuer(core_v1, custom_api, namespace, "other", other.pem, other.key_pem())
    certmanager.apply(custom_api, namespace, "certificates", certmanager.certificate(
        "elsewhere", issuer_name="other", secret_name="elsewhere", dns_names=[f"elsewhere.{namespace}.test"],
        usages=USAGES, private_key={"algorithm": "ECDSA", "size": 256}))
    certmanager.wait_issued(custom_api, namespace, "elsewhere", timeout=120)
    policies(issuer_policy(unique_name, namespace, rotation={"propagationDelay": "3s"}))
    wait_for(lambda: (policy_status(custom_api, unique_name).get("ca") or {}).get("fingerprint") == old, timeout=60,
             what="the Issuer's CA active in status")

    done = plugin(cluster, "rotate", "plan", unique_name, "-o", "json")
    assert done.returncode == 0, done.stderr
    plan = json.loads(done.stdout)
    ours = [f"{namespace}/app-{i}" for i in range(3)]
    assert plan["managedLeaves"] == ours
    assert plan["unmanagedLeaves"] == []
    issued = plan["issuerCertificates"]
    assert issued["issuer"] == f"Issuer {namespace}/{ISSUER}" and not issued["capped"]
    assert [(c["certificate"], c["secret"], c["ready"], c["chainsTo"], c["onActiveCA"])
            for c in issued["certificates"]] == [(leaf, leaf, True, old, True) for leaf in ours]
    assert plan["completes"] and plan["forecast"]["outcome"] == "Completed"
    human = plugin(cluster, "rotate", "plan", unique_name)
    assert human.returncode == 0 and f"Certificates of Issuer {namespace}/{ISSUER}" in human.stdout, human.stdout
    assert "Reads:" in plugin(cluster, "rotate", "--help").stdout

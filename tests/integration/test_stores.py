"""Certificates wherever they live, on the real API server: keystores and truststores in Secrets of
any type and in ConfigMaps (PEM, DER, PKCS#12, JKS, JCEKS), selected by label, with every password
source; trustedBy across peer stores; webhook caBundles; JKS bundle targets that keytool reads;
the per-object finding series.

Each test labels its own objects uniquely and waits for the policy's status with a deadline.
"""

from __future__ import annotations

import base64
import datetime as dt
import uuid

import pytest
from kubernetes import client

import certgen
from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.pki.javakeystore import encode_jks_truststore
from crd import GROUP, PLURAL, VERSION, condition, policy_status
from kubewait import wait_for

PW = "hl7-store-pw-7f3a"  # the stores' password: it must never appear in status, events or metrics
WRONG = "not-the-pw-91c2"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def new_namespace(core_v1, label: str) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, name, labels={"certpolicy-stores-run": label})
    return name


def secret(core_v1, ns: str, name: str, data: dict[str, bytes], labels: dict, type_: str = "Opaque") -> None:
    core_v1.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name, labels=labels),
                                                         type=type_, data={k: b64(v) for k, v in data.items()}))


def configmap(core_v1, ns: str, name: str, labels: dict, data: dict[str, str] | None = None,
              binary: dict[str, bytes] | None = None) -> None:
    core_v1.create_namespaced_config_map(ns, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, labels=labels), data=data,
        binary_data={k: b64(v) for k, v in (binary or {}).items()} or None))


def policy(policies, name: str, label: str, spec: dict) -> None:
    base = {"selector": {"namespaceSelector": {"matchLabels": {"certpolicy-stores-run": label}}, **spec.pop("selector", {})},
            "requirements": spec.pop("requirements", {})}
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
              "spec": {**base, **spec}})


def violations(st: dict) -> dict[tuple[str, str], list[str]]:
    return {(v.get("kind", "Secret"), v["name"]): v["reasons"] for v in st.get("violations") or ()}


def assert_no_password_anywhere(operator, core_v1, custom_api, name: str, namespaces: list[str]) -> None:
    texts = [str(custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)), operator.scrape()]
    for ns in namespaces:
        texts += [f"{e.reason} {e.message}" for e in core_v1.list_namespaced_event(ns).items]
    for text in texts:
        assert PW not in text and WRONG not in text


# --- 1. the keystore / truststore matrix ---------------------------------------------------------------
@certgen.needs_keytool
def test_keystore_and_truststore_matrix(operator, policies, core_v1, custom_api, unique_name):
    """PEM / DER / PKCS#12 / JKS / JCEKS x password from a sibling key, a Secret reference, empty or
    none x good / violating / unreadable; Opaque Secrets selected by label, stores in Secrets and
    ConfigMaps selected by label."""
    label = uuid.uuid4().hex[:8]
    ns = new_namespace(core_v1, label)
    app = {"app": f"hl7-{label}"}
    store_labels = {"truststore": f"peers-{label}"}
    pki = certgen.pki()
    no_client = certgen.leaf(pki.intermediate, "noclient.example.com", eku=("serverAuth",))
    expired_ca = certgen.root("expired peer CA", not_before=certgen.utcnow() - dt.timedelta(days=20),
                              not_after=certgen.utcnow() - dt.timedelta(days=1), key_slot=11)
    chain = (pki.intermediate,)

    good = {
        "pem": {"cert.pem": pki.leaf.pem + pki.intermediate.pem, "key.pem": pki.leaf.key_pem()},
        "der": {"server.der": pki.leaf.der},
        "p12-sibling": {"keystore.p12": certgen.pkcs12_bytes(pki.leaf, PW.encode(), chain), "keystore.p12.password": PW.encode()},
        "p12-empty": {"keystore.p12": certgen.pkcs12_bytes(pki.leaf, None, chain)},
        "jks-sibling": {"keystore.jks": certgen.java_keystore(pki.leaf, PW, chain, "JKS"), "keystore-password": PW.encode()},
        "jceks-sibling": {"keystore": certgen.java_keystore(pki.leaf, PW, chain, "JCEKS"), "password": PW.encode()},
    }
    bad = {
        "p12-violating": ({"keystore.p12": certgen.pkcs12_bytes(no_client, PW.encode(), chain), "password": PW.encode()},
                          "MissingClientAuth"),
        "jks-violating": ({"keystore.jks": certgen.java_keystore(no_client, PW, chain, "JKS"), "password": PW.encode()},
                          "MissingClientAuth"),
        "jks-unreadable": ({"keystore.jks": certgen.java_keystore(pki.leaf, PW, chain, "JKS"), "password": WRONG.encode()},
                           "KeystoreUnreadable"),
        "p12-unreadable": ({"keystore.p12": certgen.pkcs12_bytes(pki.leaf, PW.encode(), chain), "password": WRONG.encode()},
                           "KeystoreUnreadable"),
        "pem-malformed": ({"tls.crt": pki.leaf.pem[:200]}, "MalformedCertificate"),
    }
    for name, data in good.items():
        secret(core_v1, ns, name, data, app)
    for name, (data, _) in bad.items():
        secret(core_v1, ns, name, data, app)
    secret(core_v1, ns, "db-password", {"password": b"not a certificate"}, app)  # same labels, no certificate key
    # Trust stores: one per format and password source, each judged on its own.
    roots = [pki.root.cert]
    secret(core_v1, ns, "ts-jks-sibling", {"truststore.jks": encode_jks_truststore([("root", pki.root.cert)], PW),
                                           "truststore.jks.password": PW.encode()}, store_labels)
    secret(core_v1, ns, "ts-p12-ref", {"truststore.p12": certgen.java_truststore(tuple(roots), PW, "PKCS12")}, store_labels)
    secret(core_v1, ns, "ts-pw", {"password": PW.encode()}, {})
    configmap(core_v1, ns, "ts-pem", store_labels, data={"ca.crt": certgen.pem(pki.root).decode()})
    configmap(core_v1, ns, "ts-der", store_labels, binary={"root-ca.der": pki.root.der})
    configmap(core_v1, ns, "ts-jks-empty", store_labels, binary={"truststore.jks": encode_jks_truststore([("r", pki.root.cert)])})
    configmap(core_v1, ns, "ts-expired", store_labels, data={"ca.crt": certgen.pem(pki.root, expired_ca).decode()})
    secret(core_v1, ns, "ts-wrong", {"truststore.jks": encode_jks_truststore([("root", pki.root.cert)], PW),
                                     "truststore.password": WRONG.encode()}, store_labels)

    policy(policies, unique_name, label, {
        "selector": {"secretSelector": {"matchLabels": app}},
        "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"], "allowedDNSNames": ["*.example.com"]},
        "trustStores": {"selector": {"matchLabels": store_labels}, "passwordSecretRef": {"name": "ts-pw"}},
    })
    expected_bad = {("Secret", n): r for n, (_, r) in bad.items()} | {
        ("ConfigMap", "ts-expired"): "Expired", ("Secret", "ts-wrong"): "KeystoreUnreadable"}
    total = len(good) + len(bad) + 7

    def settled():
        st = policy_status(custom_api, unique_name)
        return st if (st.get("summary") or {}).get("selected") == total and set(violations(st)) == set(expected_bad) else None

    st = wait_for(settled, timeout=60, what=f"{total} objects judged, violations {sorted(expected_bad)}")
    found = violations(st)
    for key, reason in expected_bad.items():
        assert reason in found[key], (key, found[key])
    assert condition(st, "Compliant")["status"] == "False"
    assert st["summary"]["violating"] == len(expected_bad)
    # The unreadable store's finding names the reason, never the password.
    wrong = next(v for v in st["violations"] if v["name"] == "jks-unreadable")
    assert "integrity check failed" in wrong["message"] and "password is wrong" in wrong["message"]
    assert_no_password_anywhere(operator, core_v1, custom_api, unique_name, [ns])


# --- 1b. a selected Secret's own keystore, its password from spec.selector.passwordSecretRef -------------
@certgen.needs_keytool
def test_leaf_keystore_password_from_secret_ref(operator, policies, core_v1, custom_api, unique_name):
    """PKCS#12 and JKS keystores with no sibling password key: unreadable (naming the missing
    password Secret) until spec.selector.passwordSecretRef's Secret exists, then judged on their
    leaves (one violating), unreadable again when that Secret holds a wrong password."""
    label = uuid.uuid4().hex[:8]
    ns = new_namespace(core_v1, label)
    app = {"app": f"ks-{label}"}
    pki = certgen.pki()
    no_client = certgen.leaf(pki.intermediate, "noclient.example.com", eku=("serverAuth",))
    chain = (pki.intermediate,)
    secret(core_v1, ns, "engine-p12", {"keystore.p12": certgen.pkcs12_bytes(pki.leaf, PW.encode(), chain)}, app)
    secret(core_v1, ns, "engine-jks", {"keystore.jks": certgen.java_keystore(no_client, PW, chain, "JKS")}, app)
    policy(policies, unique_name, label, {
        "selector": {"secretSelector": {"matchLabels": app}, "passwordSecretRef": {"name": "ks-pw", "key": "pw"}},
        "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"], "allowedDNSNames": ["*.example.com"]},
    })

    def judged(expected: dict[str, set[str]]) -> dict:
        """Both judged; each Secret's reasons include ``expected[name]`` (absent: no violation)."""
        def settled():
            st = policy_status(custom_api, unique_name)
            found = {n: set(r) for (_, n), r in violations(st).items()}
            ok = (st.get("summary") or {}).get("selected") == 2 and set(found) == set(expected) and all(
                expected[n] <= found[n] for n in expected)
            return st if ok else None
        try:
            return wait_for(settled, timeout=60, what=f"violations {expected}")
        except Exception as e:
            st = policy_status(custom_api, unique_name)
            raise AssertionError(f"{e}: summary {st.get('summary')}, violations {st.get('violations')}") from None

    judged({"engine-p12": {"KeystoreUnreadable", "NoCertificate"}, "engine-jks": {"EncryptedKey", "KeystoreUnreadable"}})

    secret(core_v1, ns, "ks-pw", {"pw": PW.encode() + b"\n"}, {})
    st = judged({"engine-jks": {"MissingClientAuth"}})  # both opened: the PKCS#12 leaf is good, the JKS one lacks clientAuth
    assert violations(st) == {("Secret", "engine-jks"): ["MissingClientAuth"]}  # its key opened too: no EncryptedKey

    core_v1.patch_namespaced_secret("ks-pw", ns, {"data": {"pw": b64(WRONG.encode())}})
    judged({"engine-p12": {"KeystoreUnreadable"}, "engine-jks": {"KeystoreUnreadable"}})
    assert_no_password_anywhere(operator, core_v1, custom_api, unique_name, [ns])


# --- 2. trustedBy: one of three peer trust stores lacks the anchor --------------------------------------
@certgen.needs_keytool
def test_trusted_by_names_the_peer_store_that_lacks_the_anchor(operator, policies, core_v1, custom_api, unique_name):
    label = uuid.uuid4().hex[:8]
    ns = new_namespace(core_v1, label)
    pki, other = certgen.pki(), certgen.pki("p384")
    secret(core_v1, ns, "engine-tls", {"tls.crt": pki.leaf.pem + pki.intermediate.pem, "tls.key": pki.leaf.key_pem()},
           {"app": f"engine-{label}"}, type_="kubernetes.io/tls")
    peers = {"peer": f"p-{label}"}
    secret(core_v1, ns, "peer-a", {"truststore.jks": encode_jks_truststore([("ca", pki.root.cert)], PW),
                                   "truststore.jks.password": PW.encode()}, peers)
    configmap(core_v1, ns, "peer-b", peers, data={"ca.crt": certgen.pem(other.root, pki.root).decode()})
    secret(core_v1, ns, "peer-c", {"truststore.p12": certgen.java_truststore((other.root.cert,), PW, "PKCS12"),
                                   "truststore.p12.password": PW.encode()}, peers)
    policy(policies, unique_name, label, {
        "selector": {"secretSelector": {"matchLabels": {"app": f"engine-{label}"}}},
        "requirements": {"trustedBy": {"selector": {"matchLabels": peers}}},
    })

    def settled():
        st = policy_status(custom_api, unique_name)
        return st if (st.get("summary") or {}).get("selected") == 4 and violations(st) else None

    st = wait_for(settled, timeout=60, what="the leaf and three peer stores judged")
    assert violations(st) == {("Secret", "peer-c"): ["TruststoreMissingAnchor"]}
    (v,) = st["violations"]
    assert v["kind"] == "Secret" and v["namespace"] == ns and v["severity"] == "Critical"
    assert f"Secret {ns}/engine-tls" in v["message"] and "svc.example.com" in v["message"]
    assert condition(st, "Compliant")["reason"] == "TruststoreMissingAnchor"
    # Fixing the store (adding the anchor) clears it.
    core_v1.patch_namespaced_secret("peer-c", ns, {"data": {"truststore.p12": b64(
        certgen.java_truststore((other.root.cert, pki.root.cert), PW, "PKCS12"))}})
    st = wait_for(lambda: (lambda s: s if condition(s, "Compliant").get("status") == "True" else None)(
        policy_status(custom_api, unique_name)), timeout=60, what="Compliant once peer-c holds the anchor")
    assert st["violations"] == []
    assert_no_password_anywhere(operator, core_v1, custom_api, unique_name, [ns])


# --- 3. a webhook caBundle that expires in 3 days ---------------------------------------------------------
@pytest.fixture
def webhook_configs(api_client):
    api = client.AdmissionregistrationV1Api(api_client)
    made: list[str] = []
    yield api, made
    for name in made:
        api.delete_validating_webhook_configuration(name)


def test_webhook_ca_bundle_expiring_in_three_days(operator, policies, core_v1, custom_api, unique_name, webhook_configs):
    api, made = webhook_configs
    label = uuid.uuid4().hex[:8]
    ns = new_namespace(core_v1, label)
    ca = certgen.root("guard webhook CA", valid_for=dt.timedelta(days=3), key_slot=12)
    served_by_other = certgen.leaf(certgen.root("another CA", key_slot=13), "guard.webhooks.svc")
    secret(core_v1, ns, "guard-tls", {"tls.crt": served_by_other.pem, "tls.key": served_by_other.key_pem()}, {},
           type_="kubernetes.io/tls")
    name = f"guard-{label}"
    made.append(name)
    api.create_validating_webhook_configuration(client.V1ValidatingWebhookConfiguration(
        metadata=client.V1ObjectMeta(name=name, labels={"webhook-run": label},
                                     annotations={"certpolicy.io/serving-secret": f"{ns}/guard-tls"}),
        webhooks=[client.V1ValidatingWebhook(
            name="guard.example.invalid", admission_review_versions=["v1"], side_effects="None",
            failure_policy="Ignore",  # it matches nothing real anyway: an invented group
            rules=[client.V1RuleWithOperations(api_groups=["example.invalid"], api_versions=["v1"],
                                               operations=["CREATE"], resources=["nothings"])],
            client_config=client.AdmissionregistrationV1WebhookClientConfig(
                url="https://127.0.0.1:1/validate", ca_bundle=b64(certgen.pem(ca))))]))
    policy(policies, unique_name, label, {"caBundles": {"selector": {"matchLabels": {"webhook-run": label}}},
                                          "requirements": {"expiry": {"warningBefore": "720h", "criticalBefore": "168h"}}})
    st = wait_for(lambda: (lambda s: s if violations(s) else None)(policy_status(custom_api, unique_name)),
                  timeout=60, what="the caBundle judged")
    reasons = violations(st)[("ValidatingWebhookConfiguration", name)]
    assert reasons == ["ExpiringSoon", "TruststoreMissingAnchor"], reasons
    (v,) = st["violations"]
    assert v["severity"] == "Critical" and "guard webhook CA" in v["message"]
    text = operator.scrape()
    assert (f'certpolicy_secret_findings{{kind="ValidatingWebhookConfiguration",policy="{unique_name}",'
            f'reason="ExpiringSoon",secret_name="{name}",secret_namespace="",severity="Critical"}} 1.0') in text
    assert "certpolicy_build_info{" in text and 'certpolicy_watch_up{watch="cabundle-validatingwebhookconfigurations' in text


# --- 4. JKS bundle targets, read by keytool ----------------------------------------------------------
@certgen.needs_keytool
def test_jks_bundle_target_passes_keytool(operator, policies, core_v1, custom_api, unique_name, operator_namespace):
    label = uuid.uuid4().hex[:8]
    ns = new_namespace(core_v1, label)
    pw_secret = f"{unique_name}-jks-pw"
    core_v1.create_namespaced_secret(operator_namespace, client.V1Secret(
        metadata=client.V1ObjectMeta(name=pw_secret), type="Opaque", data={"password": b64(PW.encode() + b"\n")}))
    policy(policies, unique_name, label, {
        "ca": {"secretName": f"{unique_name}-ca"},
        "trustBundles": [{"configMap": {"name": "java-ca", "key": "ca.crt"},
                          "namespaceSelector": {"matchLabels": {"certpolicy-stores-run": label}},
                          "formats": {"jks": {"key": "truststore.jks", "alias": "HL7-CA",
                                              "passwordSecretRef": {"name": pw_secret, "key": "password"}}}}]})

    def target():
        try:
            cm = core_v1.read_namespaced_config_map("java-ca", ns)
        except client.ApiException:
            return None
        return cm if "truststore.jks" in (cm.binary_data or {}) else None

    cm = wait_for(target, timeout=60, what="the JKS truststore in the ConfigMap")
    ca_fp = wait_for(lambda: (policy_status(custom_api, unique_name).get("ca") or {}).get("fingerprint"), what="the CA")
    listing = certgen.keytool_list(base64.b64decode(cm.binary_data["truststore.jks"]), PW)
    assert "Your keystore contains 1 entry" in listing and "Alias name: hl7-ca" in listing
    hexfp = ca_fp.removeprefix("sha256:").upper()
    assert ":".join(hexfp[i:i + 2] for i in range(0, 64, 2)) in listing
    pem_fp = {fingerprint(c) for c in __import__("cryptography").x509.load_pem_x509_certificates(cm.data["ca.crt"].encode())}
    assert pem_fp == {ca_fp}

"""Secrets that cert-manager writes, under a CertificatePolicy, against cert-manager's real
controllers (tests/certmanager.py): the finding names the Certificate and what to change there,
and under ``enforcement: Deny`` a re-issue that drops ``client auth`` is refused, the old leaf stays,
and cert-manager's own state says the issuance did not complete."""

from __future__ import annotations

import base64
import json
import subprocess
import uuid

from cryptography import x509

import certgen
import certmanager
from crd import GROUP, PLURAL, VERSION, policy_status
from kubewait import wait_for
from plugincli import PLUGIN

USAGES_MTLS = ["digital signature", "key encipherment", "server auth", "client auth"]
FIX = "add `client auth` to spec.usages"
#: cert-manager labels every Secret it issues into so (PartOfCertManagerControllerLabelKey): a policy
#: for cert-manager's Secrets selects by it (the CA Issuer's own Secret, which has no clientAuth, is not).
ISSUED = {"controller.cert-manager.io/fao": "true"}


def mtls_policy(name: str, namespace: str, **spec) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
            "spec": {"selector": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}},
                                  "secretSelector": {"matchLabels": ISSUED}},
                     "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]}, **spec}}


def issue(core_v1, custom_api, namespace: str, usages: list[str]) -> dict:
    """A CA Issuer ``ca`` and a Certificate ``mirth`` (Secret ``mirth-tls``) from it, once issued."""
    ca = certgen.root(f"cert-manager test CA {uuid.uuid4().hex[:6]}")
    certmanager.ca_issuer(core_v1, custom_api, namespace, "ca", ca.pem, ca.key_pem())
    certmanager.apply(custom_api, namespace, "certificates", certmanager.certificate(
        "mirth", issuer_name="ca", secret_name="mirth-tls", dns_names=["mirth.example.test"], usages=usages))
    return certmanager.wait_issued(custom_api, namespace, "mirth")


def leaf(core_v1, namespace: str) -> x509.Certificate:
    data = core_v1.read_namespaced_secret("mirth-tls", namespace).data
    return x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))


def violation(custom_api, policy: str, namespace: str) -> dict | None:
    st = policy_status(custom_api, policy)
    return next((v for v in st.get("violations") or () if (v.get("namespace"), v["name"]) == (namespace, "mirth-tls")),
                None)


def compliant(custom_api, policy: str) -> bool:
    c = certmanager.condition(custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, policy), "Compliant")
    return bool(c and c["status"] == "True")


def test_a_finding_names_the_certificate_its_issuer_and_the_field(cert_manager, operator, policies, core_v1,
                                                                   custom_api, namespace, unique_name, cluster):
    issue(core_v1, custom_api, namespace, ["digital signature", "key encipherment", "server auth"])
    policies(mtls_policy(unique_name, namespace))
    named = f"Certificate {namespace}/mirth (Issuer {namespace}/ca): {FIX}"

    v = wait_for(lambda: (lambda v: v if v and named in v["message"] else None)(
        violation(custom_api, unique_name, namespace)), timeout=60, what="the violation naming the Certificate")
    assert "MissingClientAuth" in v["reasons"]

    def event() -> str | None:
        return next((e.message for e in core_v1.list_namespaced_event(
            namespace, field_selector="involvedObject.kind=Secret,involvedObject.name=mirth-tls").items
            if e.reason == "MissingClientAuth"), None)

    message = wait_for(event, timeout=30, what="the Warning event on the Secret")
    assert f"CertificatePolicy {unique_name}:" in message and named in message

    why = subprocess.run([str(PLUGIN), "why", f"{namespace}/mirth-tls", "--kubeconfig", str(cluster.kubeconfig)],
                         capture_output=True, text=True, timeout=120)
    assert why.returncode == 0, why.stderr
    assert f"written by     cert-manager Certificate {namespace}/mirth from Issuer {namespace}/ca" in why.stdout
    assert named in why.stdout
    doc = json.loads(subprocess.run(
        [str(PLUGIN), "why", f"{namespace}/mirth-tls", "-o", "json", "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True, text=True, timeout=120, check=True).stdout)
    assert doc["secrets"][0]["certManager"] == {"certificate": f"{namespace}/mirth", "issuer": f"Issuer {namespace}/ca",
                                                "spec": "judged"}
    # Its spec would issue the same again: the renewal will lack clientAuth too.
    [mine] = [p for p in doc["secrets"][0]["policies"] if p["name"] == unique_name]
    assert [f["reason"] for f in mine["findings"]].count("CertificateSpecViolates") == 1

    # The Certificate gone (or cert-manager's CRDs absent: the same 404): said, not fatal.
    custom_api.delete_namespaced_custom_object(certmanager.GROUP, certmanager.VERSION, namespace, "certificates", "mirth")
    gone = json.loads(subprocess.run(
        [str(PLUGIN), "why", f"{namespace}/mirth-tls", "-o", "json", "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True, text=True, timeout=120, check=True).stdout)["secrets"][0]
    assert gone["certManager"]["spec"].startswith("not found")
    [mine] = [p for p in gone["policies"] if p["name"] == unique_name]
    assert "CertificateSpecViolates" not in [f["reason"] for f in mine["findings"]]


def test_deny_refuses_the_reissue_that_drops_client_auth_and_keeps_the_old_leaf(
        cert_manager, operator, policies, core_v1, custom_api, namespace, unique_name, cluster):
    cert = issue(core_v1, custom_api, namespace, USAGES_MTLS)
    before = leaf(core_v1, namespace)
    policies(mtls_policy(unique_name, namespace, enforcement="Deny"))
    wait_for(lambda: compliant(custom_api, unique_name), timeout=60, what="the policy to judge the issued Secret compliant")
    wait_enforced(cluster, namespace, unique_name)

    # The Certificate loses `client auth`; the re-issue is triggered as `cmctl renew` does it.
    custom_api.patch_namespaced_custom_object(certmanager.GROUP, certmanager.VERSION, namespace, "certificates",
                                              "mirth", {"spec": {"usages": USAGES_MTLS[:3]}})
    certmanager.renew(custom_api, namespace, "mirth")

    # cert-manager signs the new leaf (its CertificateRequest is Ready), then its write of the
    # Secret is refused: the refusal, which names the Certificate and the fix, is in its log.
    # The re-issue's request is the one made from the edited spec (its usages), not just any request
    # annotated revision + 1: seen once in a cold CI run, a Ready request of revision + 1 carried
    # clientAuth, made from the spec as it was before the edit (cert-manager replaces a request that
    # no longer matches the spec under the same revision; the Certificate stayed at its revision).
    revision = cert["status"]["revision"]

    def signed_request() -> dict | None:
        for cr in custom_api.list_namespaced_custom_object(certmanager.GROUP, certmanager.VERSION, namespace,
                                                           "certificaterequests")["items"]:
            annotations = cr["metadata"].get("annotations") or {}
            if (int(annotations.get("cert-manager.io/certificate-revision") or 0) > revision
                    and sorted((cr.get("spec") or {}).get("usages") or ()) == sorted(USAGES_MTLS[:3])
                    and certmanager.is_ready(cr)):
                return cr
        return None

    cr = wait_for(signed_request, timeout=60, interval=0.3, what="the re-issue's CertificateRequest, signed")
    signed = x509.load_pem_x509_certificate(base64.b64decode(cr["status"]["certificate"]))
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH not in signed.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    refusal = f"CertificatePolicy {unique_name} (enforcement: Deny) refuses this write to Secret {namespace}/mirth-tls"
    wait_for(lambda: refusal in cert_manager.log_text(), timeout=60, interval=0.5,
             what="cert-manager's Secret write refused by the webhook")
    log = cert_manager.log_text()
    assert f"Certificate {namespace}/mirth (Issuer {namespace}/ca): {FIX}" in log

    # The old, still valid leaf stays; the Certificate stays at its revision, still Issuing.
    after = leaf(core_v1, namespace)
    assert after.serial_number == before.serial_number
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in after.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    now = certmanager.get(custom_api, namespace, "certificates", "mirth")
    assert now["status"]["revision"] == revision
    issuing = certmanager.condition(now, "Issuing")
    assert issuing is not None and issuing["status"] == "True"

    # kubectl certpolicy why reads the Certificate: its spec will still issue a leaf without
    # clientAuth, at the renewal time cert-manager set (CertificateSpecViolates).
    doc = json.loads(subprocess.run(
        [str(PLUGIN), "why", f"{namespace}/mirth-tls", "-o", "json", "--kubeconfig", str(cluster.kubeconfig)],
        capture_output=True, text=True, timeout=120, check=True).stdout)
    [secret] = doc["secrets"]
    assert secret["certManager"]["spec"] == "judged"
    [mine] = [p for p in secret["policies"] if p["name"] == unique_name]
    ahead = [f["message"] for f in mine["findings"] if f["reason"] == "CertificateSpecViolates"]
    assert ahead == [f"the renewal at {now['status']['renewalTime']} will lack clientAuth — Certificate "
                     f"{namespace}/mirth: {FIX}"], mine
    assert mine["compliant"] is False


def wait_enforced(cluster, namespace: str, policy: str) -> None:
    """Until a server-side dry run of a Secret without clientAuth is refused by ``policy``."""
    ca = certgen.root("probe CA")
    body = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"probe-{uuid.uuid4().hex[:6]}",
                                                               "namespace": namespace, "labels": ISSUED},
            **certgen.tls_secret(certgen.leaf(ca, "probe.example.test", eku=("serverAuth",)))}

    def refused() -> bool:
        p = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False)
        return p.returncode != 0 and policy in p.stderr

    wait_for(refused, timeout=60, interval=0.5, what=f"the webhook refusing for {policy}")


def test_the_cert_manager_example_reaches_its_documented_state_and_its_fix_works(
        cert_manager, operator, crd, core_v1, custom_api, cluster, audit):
    """examples/cert-manager/mtls-certificates.yaml as its header says: applied as it is, then fixed."""
    from paths import REPO

    example = REPO / "examples" / "cert-manager" / "mtls-certificates.yaml"
    ns, policy = "cert-manager-demo", "cert-manager-mtls"
    cluster.kubectl("apply", "-f", str(example))
    try:
        # the leaf lacks clientAuth, and so will its renewal (the operator reads the Certificate)
        v = wait_for(lambda: (lambda v: v if v and "CertificateSpecViolates" in v["reasons"] else None)(
            violation(custom_api, policy, ns)), timeout=90, what="the example's violation")
        assert sorted(v["reasons"]) == ["CertificateSpecViolates", "MissingClientAuth"], v
        assert (f"Certificate {ns}/mirth (Issuer {ns}/demo-ca): {FIX}") in v["message"]
        st = custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, policy)["status"]
        assert (st["summary"]["selected"], st["summary"]["violating"]) == (1, 1), st["summary"]

        # The fix the header gives, as a user types it.
        cluster.kubectl("-n", ns, "patch", "certificate", "mirth", "--type", "merge", "-p",
                        json.dumps({"spec": {"usages": USAGES_MTLS}}))
        wait_for(lambda: compliant(custom_api, policy), timeout=90, what="Compliant=True after the fix")
    finally:
        audit.add(f"policy {policy}", str(custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, policy)))
        custom_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, policy)


def test_an_edit_that_drops_client_auth_is_reported_before_any_reissue(
        cert_manager, operator, policies, core_v1, custom_api, namespace, unique_name):
    """The operator watches Certificates: an edit of one re-judges the Secret it writes, and what
    its next leaf will lack is a finding (status, Warning event) while the old leaf is still there.
    Issuance is paused by deleting the Issuer first, so no re-issue can replace the leaf: without
    the watch, the still-compliant Secret would give no finding at all."""
    issue(core_v1, custom_api, namespace, USAGES_MTLS)
    before = leaf(core_v1, namespace)
    policies(mtls_policy(unique_name, namespace))
    wait_for(lambda: compliant(custom_api, unique_name), timeout=60, what="the issued Secret judged compliant")
    custom_api.delete_namespaced_custom_object(certmanager.GROUP, certmanager.VERSION, namespace, "issuers", "ca")
    wait_for(lambda: not any(i["metadata"]["name"] == "ca" for i in custom_api.list_namespaced_custom_object(
        certmanager.GROUP, certmanager.VERSION, namespace, "issuers")["items"]), timeout=30, what="the Issuer gone")

    custom_api.patch_namespaced_custom_object(certmanager.GROUP, certmanager.VERSION, namespace, "certificates",
                                              "mirth", {"spec": {"usages": USAGES_MTLS[:3]}})
    renewal = certmanager.get(custom_api, namespace, "certificates", "mirth")["status"]["renewalTime"]
    ahead = f"the renewal at {renewal} will lack clientAuth — Certificate {namespace}/mirth: {FIX}"
    v = wait_for(lambda: (lambda v: v if v and "CertificateSpecViolates" in v["reasons"] else None)(
        violation(custom_api, unique_name, namespace)), timeout=60, what="CertificateSpecViolates in the status")
    assert v["reasons"] == ["CertificateSpecViolates"] and ahead in v["message"], v

    def event():
        return next((e for e in core_v1.list_namespaced_event(
            namespace, field_selector="involvedObject.kind=Secret,involvedObject.name=mirth-tls").items
            if e.reason == "CertificateSpecViolates"), None)

    e = wait_for(event, timeout=30, what="the Warning event on the Secret")
    assert e.type == "Warning" and f"CertificatePolicy {unique_name}: {ahead}" in e.message, e.message
    # ... posted for the old leaf, which is still the Secret's: no re-issue happened.
    after = leaf(core_v1, namespace)
    assert after.serial_number == before.serial_number
    assert x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH in after.extensions.get_extension_for_class(
        x509.ExtendedKeyUsage).value
    assert not compliant(custom_api, unique_name)

    # The usage put back: re-judged from the watch, compliant again (still without a re-issue).
    custom_api.patch_namespaced_custom_object(certmanager.GROUP, certmanager.VERSION, namespace, "certificates",
                                              "mirth", {"spec": {"usages": USAGES_MTLS}})
    wait_for(lambda: compliant(custom_api, unique_name), timeout=60, what="Compliant=True with the usage back")
    assert leaf(core_v1, namespace).serial_number == before.serial_number

"""The cert-manager harness itself (tests/certmanager.py): its real controllers issue from a CA
Issuer what the Certificate asks for, and re-issue when the Issuing condition is set (cmctl renew).
Other cert-manager tests build on these two facts."""

from __future__ import annotations

import base64

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID

import certgen
import certmanager


def leaf(core_v1, namespace: str, secret: str) -> x509.Certificate:
    data = core_v1.read_namespaced_secret(secret, namespace).data or {}
    return x509.load_pem_x509_certificate(base64.b64decode(data["tls.crt"]))


def test_ca_issuer_issues_what_the_certificate_asks_and_renews(cert_manager, core_v1, custom_api, namespace):
    ca = certgen.root("harness CA")
    certmanager.ca_issuer(core_v1, custom_api, namespace, "ca", ca.pem, ca.key_pem())
    certmanager.apply(custom_api, namespace, "certificates", certmanager.certificate(
        "mirth", issuer_name="ca", secret_name="mirth-tls", dns_names=["mirth.example.test"],
        usages=["digital signature", "key encipherment", "server auth", "client auth"]))
    cert = certmanager.wait_issued(custom_api, namespace, "mirth")

    first = leaf(core_v1, namespace, "mirth-tls")
    assert first.issuer == ca.cert.subject
    first.verify_directly_issued_by(ca.cert)
    eku = first.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert set(eku) == {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH}
    san = first.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mirth.example.test"]
    annotations = core_v1.read_namespaced_secret("mirth-tls", namespace).metadata.annotations
    assert annotations[certmanager.CERTIFICATE_NAME_ANNOTATION] == "mirth"
    assert annotations[certmanager.ISSUER_NAME_ANNOTATION] == "ca"

    certmanager.renew(custom_api, namespace, "mirth")
    certmanager.wait_issued(custom_api, namespace, "mirth", revision=cert["status"]["revision"] + 1)
    second = leaf(core_v1, namespace, "mirth-tls")
    assert second.serial_number != first.serial_number
    second.verify_directly_issued_by(ca.cert)

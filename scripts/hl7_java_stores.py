"""Generate the keystore and trust stores of examples/java-hl7-stores.yaml, as a manifest list for kubectl.

A Java/HL7 engine keeps its certificate in a PKCS#12 keystore and its peers keep trust stores
(JKS, PKCS#12) in Opaque Secrets. Static keystores in a YAML file would expire, so this script
makes fresh ones with the operator's own PKI code (:mod:`certpolicy.pki`) each time it runs:

* ConfigMap ``hl7-java-ca`` (``ca.crt``): the engine's CA, the policy's trust bundle;
* Secret ``hl7-java-engine-keystore`` (labelled ``app=hl7-java-engine``): ``keystore.p12``, the
  engine's leaf, key and CA, with its password in the sibling key ``keystore.p12.password``;
* Secret ``hl7-lab-truststore`` (labelled ``hl7-java-peer=engine``): ``truststore.jks`` holding
  the engine's CA, password in ``truststore.jks.password``;
* Secret ``hl7-billing-truststore`` (same label): ``truststore.p12`` holding only a CA the engine
  no longer uses -- the stale peer the HL7 outage was about.

The fix is what a person would do: give the stale peer the engine's *current* CA, leaving the
engine's keystore alone (regenerating it would be a renewal to another CA, which the operator's
renewal guard reports as ``RenewalChangedAnchor``)::

    kubectl get cm hl7-java-ca -n integration -o jsonpath='{.data.ca\\.crt}' \\
      | python scripts/hl7_java_stores.py --billing-trusts - | kubectl apply -f -

Usage (the demo's cluster; see examples/README.md)::

    python scripts/hl7_java_stores.py | kubectl apply -f -

The passwords are random per run and exist only in the Secrets written here.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import secrets
import sys

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certpolicy.pki.issue import create_ca, issue_leaf
from certpolicy.pki.truststore import build_jks_truststore, build_truststore

ENGINE_DNS = "hl7java.uat.example.com"


def _secret(namespace: str, name: str, labels: dict[str, str], data: dict[str, bytes]) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": name, "namespace": namespace, "labels": labels},
            "data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def manifests(namespace: str) -> list[dict]:
    """The ConfigMap and three Secrets described in the module docstring."""
    ca = create_ca("hl7 java engine CA", validity=dt.timedelta(days=730))
    retired = create_ca("hl7 java engine CA (retired)", validity=dt.timedelta(days=730))
    leaf = issue_leaf(ca, dns_names=[ENGINE_DNS], validity=dt.timedelta(days=365))
    ks_pw, lab_pw, billing_pw = (secrets.token_urlsafe(18).encode() for _ in range(3))
    keystore = pkcs12.serialize_key_and_certificates(
        b"hl7-java-engine", leaf.key, leaf.cert, [ca.cert], serialization.BestAvailableEncryption(ks_pw))
    peer = {"hl7-java-peer": "engine"}
    return [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hl7-java-ca", "namespace": namespace},
         "data": {"ca.crt": ca.cert_pem.decode()}},
        _secret(namespace, "hl7-java-engine-keystore", {"app": "hl7-java-engine"},
                {"keystore.p12": keystore, "keystore.p12.password": ks_pw}),
        _secret(namespace, "hl7-lab-truststore", peer,
                {"truststore.jks": build_jks_truststore([ca.cert], "hl7-java", lab_pw), "truststore.jks.password": lab_pw}),
        _secret(namespace, "hl7-billing-truststore", peer,
                {"truststore.p12": build_truststore([retired.cert], "hl7-java", billing_pw),
                 "truststore.p12.password": billing_pw}),
    ]


def billing_store(namespace: str, ca_pem: bytes) -> dict:
    """Only the billing peer's trust store, trusting the CA(s) in ``ca_pem`` (the fix)."""
    cas = x509.load_pem_x509_certificates(ca_pem)
    password = secrets.token_urlsafe(18).encode()
    return _secret(namespace, "hl7-billing-truststore", {"hl7-java-peer": "engine"},
                   {"truststore.p12": build_truststore(cas, "hl7-java", password), "truststore.p12.password": password})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", default="integration", help="where the objects go (default: integration)")
    parser.add_argument("--billing-trusts", metavar="CA_PEM_FILE",
                        help="print only the billing peer's trust store, trusting the CA in this PEM file "
                             "('-' for stdin): the fix, which leaves the engine's keystore as it is")
    args = parser.parse_args(argv)
    if args.billing_trusts:
        with (sys.stdin.buffer if args.billing_trusts == "-" else open(args.billing_trusts, "rb")) as f:
            items = [billing_store(args.namespace, f.read())]
    else:
        items = manifests(args.namespace)
    json.dump({"apiVersion": "v1", "kind": "List", "items": items}, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

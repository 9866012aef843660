"""The CRD on a real API server: invalid specs are rejected with a clear message, examples are accepted."""

from __future__ import annotations

import copy
import json
import uuid

import pytest
import yaml
from kubernetes.client import ApiException

from crd import GROUP, PLURAL, VERSION
from paths import EXAMPLES


def policy(spec: dict) -> dict:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "CertificatePolicy",
        "metadata": {"name": f"crd-{uuid.uuid4().hex[:10]}"},
        "spec": spec,
    }


def create(custom_api, body: dict, dry_run: bool = True) -> dict:
    return custom_api.create_cluster_custom_object(GROUP, VERSION, PLURAL, body, dry_run="All" if dry_run else None)


def rejection(custom_api, spec: dict) -> str:
    with pytest.raises(ApiException) as err:
        create(custom_api, policy(spec))
    assert err.value.status == 422, err.value.body
    return json.loads(err.value.body)["message"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"requirements": {"extendedKeyUsages": ["clientAuthentication"]}},
         'Unsupported value: "clientAuthentication"'),
        ({"requirements": {"expiry": {"warningBefore": "30d"}}}, "spec.requirements.expiry.warningBefore"),
        ({"requirements": {"expiry": {"warningBefore": "24h", "criticalBefore": "48h"}}},
         "criticalBefore must not be longer than warningBefore"),
        ({"selector": {"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "Equals"}]}}},
         'Unsupported value: "Equals"'),
        ({"selector": {"namespaceSelector": {"matchExpressions": [{"key": "env", "operator": "In"}]}}},
         "values must be non-empty for In and NotIn"),
        ({"requirements": {"allowedIPRanges": ["10.0.0.0/33"]}}, "must be a CIDR"),
        ({"requirements": {"minimumRSABits": 512}}, "spec.requirements.minimumRSABits"),
        ({"requirements": {"trustBundle": {"configMap": {"namespace": "a", "name": "b"},
                                           "secret": {"namespace": "a", "name": "b"}}}},
         "set exactly one of configMap or secret"),
        ({"issuance": [{"secretName": "s", "namespace": "n", "dnsNames": ["a.example.com"]}]},
         "spec.issuance needs spec.ca"),
        ({"ca": {"secretName": "ca"}, "issuance": [{"secretName": "s", "namespace": "n"}]},
         "at least one of dnsNames or ipAddresses"),
        ({"enforcement": "enforce"}, 'Unsupported value: "enforce"'),
        ({"ca": {"secretName": "ca"}, "trustBundles": [{"configMap": {"name": "a"}, "clusterTrustBundle": {"name": "a"}}]},
         "set exactly one of configMap, secret or clusterTrustBundle"),
        ({"ca": {"secretName": "ca"}, "trustBundles": [{"clusterTrustBundle": {"name": "a"},
                                                        "formats": {"pkcs12": {"key": "t.p12"}}}]},
         "formats apply to ConfigMap and Secret targets"),
        ({"ca": {"secretName": "ca"}, "trustBundles": [{"clusterTrustBundle": {"name": "example.com:signer:a"}}]},
         "spec.trustBundles[0].clusterTrustBundle.name"),
        # Issue 18: a hostile or careless author.
        ({"ca": {"secretName": "ca", "validity": "1h"}}, "rotateBefore must be shorter than validity"),
        ({"ca": {"secretName": "ca", "validity": "100h", "rotateBefore": "99h30m"}},
         "rotateBefore must be shorter than validity"),
        ({"ca": {"secretName": "ca"}, "issuance": [{"secretName": "s", "namespace": "n", "dnsNames": ["a.example.com"],
                                                    "validity": "24h", "renewBefore": "24h"}]},
         "renewBefore must be shorter than validity"),
        ({"rotation": {"probes": [{"host": "a.b.svc", "port": 443, "timeout": "240s"}]}}, "at most 30s"),
        ({"ca": {"secretName": "ca"}, "trustBundles": [{"secret": {"name": "other-ca", "key": "tls.key"}}]},
         "never a bundle target"),
        ({"ca": {"secretName": "ca"}, "trustBundles": [{"configMap": {"name": "x", "key": "server.key"}}]},
         "never a bundle target"),
        ({"requirements": {"allowedDNSNames": [f"n{i}.example.com" for i in range(513)]}}, "must have at most 512 items"),
        ({"requirements": {"requiredDNSNames": [f"n{i}.example.com" for i in range(513)]}}, "must have at most 512 items"),
        # Issue 23: the renewal guard's ignore list takes only its own reasons.
        ({"requirements": {"renewal": {"ignore": ["RenewalChangedAnchr"]}}}, "Unsupported value: \"RenewalChangedAnchr\""),
        ({"requirements": {"renewal": {"guard": "off"}}}, "spec.requirements.renewal.guard"),
        # Issue 27 item 3: a cert-manager CA Issuer handed to the policy.
        ({"ca": {"secretName": "ca", "certManager": {"issuerRef": {"kind": "Issuer", "name": "ca"}}}},
         "issuerRef.namespace is required for an Issuer"),
        ({"ca": {"secretName": "ca", "certManager": {"issuerRef": {"kind": "ClusterIssuer", "name": "ca",
                                                                   "namespace": "x"}}}},
         "not allowed for a ClusterIssuer"),
        ({"ca": {"secretName": "ca", "certManager": {"issuerRef": {"kind": "Issuer", "name": "ca", "namespace": "n"}}},
          "issuance": [{"secretName": "s", "namespace": "n", "dnsNames": ["a.example.com"]}]},
         "spec.ca.certManager is not allowed with spec.issuance"),
        ({"ca": {"secretName": "ca", "adopt": True,
                 "certManager": {"issuerRef": {"kind": "ClusterIssuer", "name": "ca"}}}},
         "nor with spec.ca.adopt"),
        ({"ca": {"secretName": "ca", "certManager": {"issuerRef": {"kind": "Vault", "name": "ca"}}}},
         'Unsupported value: "Vault"'),
    ],
    ids=["unknown-eku", "malformed-duration", "critical-longer-than-warning", "bad-selector-operator",
         "selector-without-values", "bad-cidr", "tiny-rsa", "two-bundle-sources", "issuance-without-ca",
         "issuance-without-names", "enforce-unknown", "two-target-kinds", "ctb-with-formats", "ctb-signer-name",
         "ca-validity-1h-default-rotate-before", "rotate-before-near-validity", "renew-before-equals-validity",
         "probe-timeout-240s", "bundle-into-tls-key", "bundle-into-key-file", "allowed-names-6000",
         "required-names-20000", "renewal-ignore-typo", "renewal-guard-not-bool", "issuer-without-namespace",
         "cluster-issuer-with-namespace", "cert-manager-with-issuance", "cert-manager-with-adopt",
         "cert-manager-unknown-kind"],
)
def test_invalid_specs_are_rejected_with_a_clear_message(crd, custom_api, spec, expected):
    assert expected in rejection(custom_api, spec)


@pytest.mark.parametrize("fmt", ["pkcs12", "jks"])
def test_truststore_alias_outside_the_bmp_is_refused_and_inside_accepted(crd, custom_api, fmt):
    """The operator cannot read an alias outside the BMP back from a PKCS#12 store
    (tests/unit/pki/test_truststore.py::test_alias_outside_the_bmp_is_not_read_back_from_pkcs12), so the
    CRD refuses one; any BMP character (here a-umlaut and a CJK ideograph) is accepted."""
    def spec(alias: str) -> dict:
        return {"ca": {"secretName": "ca"},
                "trustBundles": [{"configMap": {"name": "t"}, "formats": {fmt: {"key": "t.store", "alias": alias}}}]}
    assert f"spec.trustBundles[0].formats.{fmt}.alias" in rejection(custom_api, spec("ca-\U0001F600"))
    created = create(custom_api, policy(spec("ca-\u00e4-\u4e2d")))
    assert created["spec"]["trustBundles"][0]["formats"][fmt]["alias"] == "ca-\u00e4-\u4e2d"


#: What the API server's own messages say when a bad duration reaches a raw pattern or a CEL
#: duration() conversion: none of it tells a user what to write.
NOISE = ("should match", "^(", "[0-9]", "type conversion", "no such overload", "failed to evaluate",
         "duration(", "Invalid value: \"string\"", "compilation", "cost")


ADVICE = "not a duration: write hours, minutes or seconds with a unit: 720h for 30 days, 168h for 7 days"


@pytest.mark.parametrize(
    ("field", "value", "body"),
    [
        ("spec.requirements.expiry.warningBefore", "30days", {"requirements": {"expiry": {"warningBefore": "30days"}}}),
        ("spec.requirements.expiry.criticalBefore", "7d", {"requirements": {"expiry": {"criticalBefore": "7d"}}}),
        ("spec.ca.validity", "10 years", {"ca": {"secretName": "x-ca", "validity": "10 years"}}),
        ("spec.issuance[0].renewBefore", "2w", {"ca": {"secretName": "x-ca"}, "issuance": [
            {"secretName": "leaf", "namespace": "default", "dnsNames": ["a.example.com"], "renewBefore": "2w"}]}),
        ("spec.rotation.probes[0].timeout", "30 days", {"ca": {"secretName": "x-ca"}, "rotation": {"probes": [
            {"host": "a.svc", "port": 443, "timeout": "30 days"}]}}),
    ],
    ids=["30days", "7d", "10-years", "2w", "probe-timeout"],
)
def test_a_bad_duration_says_what_to_write(crd, cluster, field, value, body):
    """kubectl apply, as a user meets it: one line per bad field, saying what to write; no regex,
    no CEL conversion error from the rules that compare durations."""
    doc = policy({"selector": {}, **body})
    out = cluster.kubectl("apply", "-f", "-", input=json.dumps(doc), check=False)
    assert out.returncode != 0
    message = out.stderr
    assert f"{field}: Invalid value: {json.dumps(value)}: {ADVICE}" in message, message
    assert [n for n in NOISE if n in message] == [], message
    assert message.count("Invalid value") == 1, message


def test_defaults_are_applied(crd, custom_api):
    created = create(custom_api, policy({}), dry_run=True)
    req = created["spec"]["requirements"]
    assert req["extendedKeyUsages"] == ["serverAuth"]
    assert req["expiry"] == {"warningBefore": "720h", "criticalBefore": "168h"}
    assert req["minimumRSABits"] == 2048
    assert created["spec"]["selector"]["mountedOnly"] is False
    assert created["spec"]["rotation"]["propagationDelay"] == "2m"
    assert created["spec"]["enforcement"] == "Audit"


@pytest.mark.parametrize("value", ["Audit", "Warn", "Deny", "audit"])
def test_enforcement_values_are_accepted(crd, custom_api, value):
    """Kubernetes' enum casing, and the lowercase audit of earlier versions (read as Audit)."""
    assert create(custom_api, policy({"enforcement": value}), dry_run=True)["spec"]["enforcement"] == value


def example_documents():
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for i, doc in enumerate(yaml.safe_load_all(path.read_text())):
            if doc and doc.get("kind") == "CertificatePolicy":
                yield pytest.param(doc, id=f"{path.stem}-{i}")


@pytest.mark.parametrize("doc", list(example_documents()))
def test_every_example_is_accepted(crd, custom_api, doc):
    body = copy.deepcopy(doc)
    created = create(custom_api, body, dry_run=True)
    assert created["metadata"]["name"] == doc["metadata"]["name"]


def test_kubectl_explain_and_short_name(crd, cluster):
    from kubewait import wait_for

    # Discovery publishes a freshly installed (or re-applied) CRD a moment later.
    out = wait_for(lambda: (p := cluster.kubectl("explain", "certpol.spec.requirements", check=False)).returncode == 0
                   and p.stdout, timeout=30, what="kubectl explain finds the CRD")
    assert "extendedKeyUsages" in out and "clientAuth" in out
    out = cluster.kubectl("explain", "certificatepolicies.spec.selector.mountedOnly").stdout
    assert "subPath" in out
    out = cluster.kubectl("explain", "certpol.status.conditions").stdout
    assert "Compliant" in out
    for field in ("spec.issuance.validity", "spec.issuanceLimits.perMinute", "spec.rotation.probes.host",
                  "status.summary.violating", "spec.ca.certManager.issuerRef.kind"):  # shown as <no description> before
        out = cluster.kubectl("explain", f"certpol.{field}").stdout
        assert "no description" not in out and "DESCRIPTION" in out, out


def test_printer_columns(crd, cluster, policies):
    body = policy({"selector": {"namespaceSelector": {"matchLabels": {"selects": "nothing"}}}})
    policies(body)
    header = cluster.kubectl("get", "certpol", body["metadata"]["name"]).stdout.splitlines()[0].split()
    assert header == ["NAME", "COMPLIANT", "VIOLATIONS", "SELECTED", "ROTATION", "DEGRADED", "AGE"]
    wide = cluster.kubectl("get", "certpol", body["metadata"]["name"], "-o", "wide").stdout.splitlines()[0].split()
    assert wide[-3:] == ["READY", "ENFORCED", "AGE"]

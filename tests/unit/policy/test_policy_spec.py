"""spec.requirements → Requirements."""

from __future__ import annotations

import dataclasses
import datetime as dt
import ipaddress

import pytest

from certpolicy.policy.spec import (
    PolicySpecError,
    Requirements,
    requirements_from_spec,
)

H = dt.timedelta(hours=1)


def test_defaults():
    r = requirements_from_spec({})
    assert r == Requirements()
    assert r.require_san and not r.require_private_key
    assert r.warning_before == 720 * H and r.critical_before == 168 * H
    assert r.minimum_rsa_bits == 2048
    assert r.allowed_ec_curves == ("P-256", "P-384", "P-521")
    assert r.allowed_signature_hashes == ("sha256", "sha384", "sha512")
    assert requirements_from_spec(None) == r


def test_full_spec_round_trip():
    spec = {
        "extendedKeyUsages": ["serverAuth", "clientAuth"],
        "allowedDNSNames": ["*.uat.example.com", "api.example.com"],
        "requiredDNSNames": ["hl7tls.uat.example.com"],
        "allowedIPRanges": ["10.0.0.0/8", "fd00::/8"],
        "requiredIPAddresses": ["10.1.2.3"],
        "requireSAN": True,
        "expiry": {"warningBefore": "720h", "criticalBefore": "168h"},
        "minimumRSABits": 3072,
        "allowedECCurves": ["P-256", "secp384r1"],
        "allowedSignatureHashes": ["sha256", "SHA-384"],
        "requirePrivateKey": True,
        "trustBundle": {"configMap": {"namespace": "x", "name": "y", "key": "ca.crt"}},
    }
    r = requirements_from_spec(spec)
    assert r.extended_key_usages == ("serverAuth", "clientAuth")
    assert r.allowed_ip_ranges == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8"))
    assert r.required_ip_addresses == (ipaddress.ip_address("10.1.2.3"),)
    assert r.allowed_ec_curves == ("P-256", "P-384")
    assert r.allowed_signature_hashes == ("sha256", "sha384")
    assert requirements_from_spec(r.to_spec()) == r


def test_whole_spec_or_requirements():
    reqs = {"extendedKeyUsages": ["clientAuth"]}
    assert requirements_from_spec({"selector": {}, "requirements": reqs}) == requirements_from_spec(reqs)


def test_hashable_and_equal():
    a = requirements_from_spec({"extendedKeyUsages": ["clientAuth"]})
    b = requirements_from_spec({"extendedKeyUsages": ["clientAuth"]})
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    c = dataclasses.replace(a, minimum_rsa_bits=4096)
    assert c != a and hash(c) == hash(requirements_from_spec({"extendedKeyUsages": ["clientAuth"], "minimumRSABits": 4096}))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"extendedKeyUsages": ["serverauth", "mTLS"]}, "unknown usage 'mTLS'"),
        ({"extendedKeyUsages": "serverAuth"}, "must be a list"),
        ({"allowedDNSNames": ["a.*.example.com"]}, "wildcard may only be the whole left-most label"),
        ({"allowedDNSNames": ["f*.example.com"]}, "wildcard"),
        ({"allowedDNSNames": ["exa mple.com"]}, "not a valid DNS name"),
        ({"allowedDNSNames": [""]}, "non-empty string"),
        ({"allowedDNSNames": ["*.uat.example.com"], "requiredDNSNames": ["api.prod.example.com"]}, "no certificate could satisfy"),
        ({"allowedIPRanges": ["10.0.0.0/33"]}, "not a CIDR"),
        ({"requiredIPAddresses": ["10.0.0.256"]}, "not an IP address"),
        ({"allowedIPRanges": ["10.0.0.0/8"], "requiredIPAddresses": ["192.168.1.1"]}, "outside allowedIPRanges"),
        ({"requireSAN": "yes"}, "true or false"),
        ({"expiry": {"warningBefore": "30d"}}, "720h"),
        ({"expiry": {"warningBefore": "24h", "criticalBefore": "168h"}}, "make warningBefore the longer one"),
        ({"expiry": {"warningBefore": "-1h"}}, "must not be negative"),
        ({"expiry": {"warnBefore": "1h"}}, "unknown field spec.requirements.expiry.warnBefore"),
        ({"expiry": "720h"}, "must be a mapping"),
        ({"minimumRSABits": 512}, "between 1024 and 16384"),
        ({"minimumRSABits": "2048"}, "must be an integer"),
        ({"minimumRSABits": True}, "must be an integer"),
        ({"allowedECCurves": ["P-257"]}, "unknown curve"),
        ({"allowedSignatureHashes": ["sha257"]}, "unknown hash"),
        ({"allowedSignatureHashes": []}, "every certificate would be rejected"),
        ({"extendedKeyUsage": ["serverAuth"]}, "did you mean 'extendedKeyUsages'"),
        ({"bogus": 1}, "known fields"),
    ],
)
def test_semantic_errors(spec, message):
    with pytest.raises(PolicySpecError) as e:
        requirements_from_spec(spec)
    assert message in str(e.value)


def test_all_problems_reported_at_once():
    with pytest.raises(PolicySpecError) as e:
        requirements_from_spec({"extendedKeyUsages": ["nope"], "minimumRSABits": 1, "allowedDNSNames": ["a..b"]})
    assert len(e.value.problems) == 3


def test_spec_must_be_a_mapping():
    with pytest.raises(PolicySpecError, match="must be a mapping"):
        requirements_from_spec(["serverAuth"])  # type: ignore[arg-type]


def test_idn_patterns_are_compared_as_a_labels():
    r = requirements_from_spec({"allowedDNSNames": ["*.bücher.example"]})
    assert r.allowed_dns_names == ("*.xn--bcher-kva.example",)


def test_case_insensitive_inputs():
    r = requirements_from_spec({"extendedKeyUsages": ["SERVERAUTH"], "allowedDNSNames": ["*.UAT.Example.COM."], "allowedECCurves": ["prime256v1"]})
    assert r.extended_key_usages == ("serverAuth",)
    assert r.allowed_dns_names == ("*.uat.example.com",)
    assert r.allowed_ec_curves == ("P-256",)

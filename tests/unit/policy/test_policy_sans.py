"""SAN findings."""

from __future__ import annotations

import pytest

import certgen
from certpolicy.policy.findings import Severity
from certpolicy.policy.spec import requirements_from_spec

UAT = requirements_from_spec({"allowedDNSNames": ["*.uat.example.com"]})


def leaf_of(pki, **kw):
    kw.setdefault("dns_names", None)
    return certgen.leaf(pki.intermediate, kw.pop("cn", "svc.uat.example.com"), **kw)


def test_allowed_names_pass(ec_pki, run, now):
    leaf = leaf_of(ec_pki, dns_names=["a.uat.example.com", "*.uat.example.com"])
    assert run(leaf, [ec_pki.intermediate], req=UAT, bundle=ec_pki.bundle, now=now).findings == ()


@pytest.mark.parametrize("bad", ["api.example.com", "uat.example.com", "a.b.uat.example.com", "*.example.com", "hl7.prod.example.com"])
def test_name_outside_the_patterns(ec_pki, run, pick, now, bad):
    leaf = leaf_of(ec_pki, dns_names=["ok.uat.example.com", bad])
    ev = run(leaf, [ec_pki.intermediate], req=UAT, bundle=ec_pki.bundle, now=now)
    (f,) = pick(ev, "DNSNameNotAllowed")
    assert f.severity is Severity.CRITICAL and f"'{bad}'" in f.message and "*.uat.example.com" in f.message


def test_no_san_cn_only(ec_pki, run, pick, reasons, now):
    leaf = leaf_of(ec_pki, cn="cnonly.uat.example.com", dns_names=())
    ev = run(leaf, [ec_pki.intermediate], req=UAT, bundle=ec_pki.bundle, now=now)
    assert reasons(ev) == ["NoSubjectAltName"]
    assert "CN=cnonly.uat.example.com" in ev.findings[0].message
    relaxed = requirements_from_spec({"requireSAN": False})
    assert run(leaf, [ec_pki.intermediate], req=relaxed, bundle=ec_pki.bundle, now=now).findings == ()


def test_required_names(ec_pki, run, pick, now):
    req = requirements_from_spec({"requiredDNSNames": ["hl7tls.uat.example.com", "api.uat.example.com"]})
    wildcard = leaf_of(ec_pki, dns_names=["*.uat.example.com"])
    assert run(wildcard, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now).findings == ()
    partial = leaf_of(ec_pki, dns_names=["hl7tls.uat.example.com"])
    (f,) = pick(run(partial, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now), "MissingRequiredDNSName")
    assert "api.uat.example.com" in f.message and "hl7tls.uat.example.com" in f.message
    no_san = leaf_of(ec_pki, dns_names=())
    assert len(pick(run(no_san, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now), "MissingRequiredDNSName")) == 2


def test_wildcard_covers_one_label_only_for_required_names(ec_pki, run, pick, now):
    req = requirements_from_spec({"requiredDNSNames": ["a.b.uat.example.com"]})
    leaf = leaf_of(ec_pki, dns_names=["*.uat.example.com"])
    assert pick(run(leaf, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now), "MissingRequiredDNSName")


def test_ip_sans_are_checked_as_ips(ec_pki, run, pick, reasons, now):
    req = requirements_from_spec({"allowedDNSNames": ["*.uat.example.com"], "allowedIPRanges": ["10.0.0.0/8"], "requiredIPAddresses": ["10.1.2.3"]})
    ok = leaf_of(ec_pki, dns_names=[], ip_addresses=["10.1.2.3", "10.9.9.9"])
    assert run(ok, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now).findings == ()
    bad = leaf_of(ec_pki, dns_names=[], ip_addresses=["192.168.1.1"])
    ev = run(bad, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now)
    assert sorted(reasons(ev)) == ["IPAddressNotAllowed", "MissingRequiredIPAddress"]
    assert "192.168.1.1" in pick(ev, "IPAddressNotAllowed")[0].message


def test_ipv4_mapped_ipv6_is_the_same_address(ec_pki, run, now):
    req = requirements_from_spec({"allowedIPRanges": ["10.0.0.0/8"], "requiredIPAddresses": ["10.1.2.3"]})
    leaf = leaf_of(ec_pki, dns_names=[], ip_addresses=["::ffff:10.1.2.3"])
    assert run(leaf, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now).findings == ()


def test_ip_written_as_dns_san(ec_pki, run, reasons, now):
    req = requirements_from_spec({"requiredIPAddresses": ["10.1.2.3"]})
    leaf = leaf_of(ec_pki, dns_names=["10.1.2.3"])
    assert sorted(reasons(run(leaf, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now))) == ["InvalidDNSName", "MissingRequiredIPAddress"]


def test_invalid_dns_san(ec_pki, run, reasons, now):
    leaf = leaf_of(ec_pki, dns_names=["f*o.example.com"])
    assert reasons(run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now)) == ["InvalidDNSName"]


def test_no_allow_list_means_unconstrained(ec_pki, run, now):
    leaf = leaf_of(ec_pki, dns_names=["anything.example.org"], ip_addresses=["8.8.8.8"])
    assert run(leaf, [ec_pki.intermediate], bundle=ec_pki.bundle, now=now).findings == ()


def test_dns_patterns_do_not_constrain_ip_sans(ec_pki, run, now):
    leaf = leaf_of(ec_pki, dns_names=["a.uat.example.com"], ip_addresses=["10.0.0.1"])
    assert run(leaf, [ec_pki.intermediate], req=UAT, bundle=ec_pki.bundle, now=now).findings == ()


def test_messages_stay_small_however_long_the_lists(ec_pki, run, pick, now):
    """Each bad name is a finding of its own; quoting the whole allowed list in each one made the
    messages quadratic (6,000 patterns x 6,000 names: 1.18 GiB). Now a message quotes at most 5."""
    n = 300
    req = requirements_from_spec({"allowedDNSNames": [f"*.zone{i}.example.com" for i in range(n)],
                                  "requiredDNSNames": [f"need{i}.zone{i}.example.com" for i in range(n)]})
    leaf = leaf_of(ec_pki, dns_names=[f"bad{i}.other.example.com" for i in range(n)])
    ev = run(leaf, [ec_pki.intermediate], req=req, bundle=ec_pki.bundle, now=now)
    not_allowed, missing = pick(ev, "DNSNameNotAllowed"), pick(ev, "MissingRequiredDNSName")
    assert len(not_allowed) == n and len(missing) == n
    longest = max(len(f.message) for f in (*not_allowed, *missing))
    assert longest < 400, longest
    assert f"(+{n - 5} more)" in not_allowed[0].message and "*.zone0.example.com" in not_allowed[0].message

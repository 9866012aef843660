"""The renewal regression guard's pure comparison: each reason, equal and better renewals, the
stored form, and malformed input. Certificates come from ``certgen`` (cryptography)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import ExtensionOID

import certgen
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.policy.findings import REASONS, Severity
from certpolicy.policy.renewal import (
    CHANGED_ANCHOR,
    DROPPED_DNS_NAME,
    DROPPED_IP_ADDRESS,
    DROPPED_USAGE,
    RENEWAL_REASONS,
    SHORTER_LIFETIME,
    WEAKER_KEY,
    LeafBaseline,
    baseline_of,
    plain_fingerprint,
    regressions,
    security_bits,
)
from certpolicy.policy.spec import (
    RENEWAL_IGNORABLE,
    PolicySpecError,
    RenewalGuard,
    renewal_guard_from_spec,
    requirements_from_spec,
)

ANCHOR = "sha256:" + "a" * 64
OTHER_ANCHOR = "sha256:" + "b" * 64


@pytest.fixture(scope="module")
def ca() -> certgen.Issued:
    return certgen.root("renewal test root")


def leaf(ca: certgen.Issued, **kw) -> x509.Certificate:
    kw.setdefault("dns_names", ("api.example.com", "api.internal"))
    kw.setdefault("eku", ("serverAuth", "clientAuth"))
    return certgen.leaf(ca, "api.example.com", **kw).cert


def reasons(before: LeafBaseline, after: LeafBaseline, **kw) -> list[str]:
    return [f.reason for f in regressions(before, after, **kw)]


def test_baseline_facts(ca):
    cert = leaf(ca, ip_addresses=("10.0.0.1",), valid_for=dt.timedelta(days=90))
    b = baseline_of(cert, ANCHOR)
    assert b.sha256 == fingerprint(cert).removeprefix("sha256:") and len(b.sha256) == 64
    assert b.ekus == ("clientAuth", "serverAuth")
    assert b.dns_names == ("api.example.com", "api.internal") and b.ip_addresses == ("10.0.0.1",)
    assert (b.key_algorithm, b.key_size, b.key_curve, b.key_description) == ("EC", 256, "P-256", "EC P-256")
    assert b.anchor == "a" * 64
    assert b.lifetime_seconds == 90 * 86400
    assert "renewal test root" in b.issuer


def test_the_same_leaf_an_equal_renewal_and_a_better_one_are_no_regression(ca):
    before = baseline_of(leaf(ca), ANCHOR)
    assert regressions(before, before) == []
    assert regressions(before, baseline_of(leaf(ca), ANCHOR)) == []  # another key, same facts
    better = leaf(ca, dns_names=("api.example.com", "api.internal", "api2.example.com"),
                  eku=("serverAuth", "clientAuth", "codeSigning"), key_kind="p384",
                  valid_for=dt.timedelta(days=365))
    assert regressions(before, baseline_of(better, ANCHOR)) == []


def test_dropped_client_auth(ca):
    before = baseline_of(leaf(ca), ANCHOR)
    after = baseline_of(leaf(ca, eku=("serverAuth",)), ANCHOR)
    [f] = regressions(before, after)
    assert f.reason == DROPPED_USAGE and f.severity is Severity.CRITICAL
    assert f.message == ("the renewed leaf dropped extended key usage clientAuth: "
                         "[clientAuth, serverAuth] → [serverAuth]")


def test_usage_without_eku_extension(ca):
    with_eku = baseline_of(leaf(ca), ANCHOR)
    without = baseline_of(leaf(ca, eku=None), ANCHOR)
    assert without.ekus is None
    [f] = regressions(with_eku, without)  # strict stacks refuse a leaf without EKU: every usage is lost
    assert f.reason == DROPPED_USAGE and "(no EKU extension)" in f.message
    assert regressions(without, with_eku) == []  # from "any usage" nothing can be dropped


def test_dropped_dns_name_and_wildcard_cover(ca):
    before = baseline_of(leaf(ca), ANCHOR)
    [f] = regressions(before, baseline_of(leaf(ca, dns_names=("api.example.com",)), ANCHOR))
    assert f.reason == DROPPED_DNS_NAME and f.severity is Severity.CRITICAL
    assert f.message == ("the renewed leaf dropped DNS name api.internal: "
                         "[api.example.com, api.internal] → [api.example.com]")
    wildcard = baseline_of(leaf(ca, dns_names=("*.example.com", "api.internal")), ANCHOR)
    assert regressions(before, wildcard) == []  # *.example.com covers api.example.com
    assert reasons(wildcard, before) == [DROPPED_DNS_NAME]  # the wildcard reached more names
    upper = baseline_of(leaf(ca, dns_names=("API.example.com", "api.internal")), ANCHOR)
    assert regressions(before, upper) == []  # names compare case-insensitively


def test_dropped_ip_address(ca):
    before = baseline_of(leaf(ca, ip_addresses=("10.0.0.1", "fd00::1")), ANCHOR)
    [f] = regressions(before, baseline_of(leaf(ca, ip_addresses=("10.0.0.1",)), ANCHOR))
    assert f.reason == DROPPED_IP_ADDRESS and "fd00::1" in f.message and "→" in f.message


@pytest.mark.parametrize(("old", "new", "weaker"), [
    ("rsa3072", "rsa2048", True),
    ("p384", "p256", True),
    ("rsa4096", "p256", False),  # 128 bits each by NIST's table
    ("rsa2048", "p256", False),
    ("p256", "rsa2048", True),  # 128 → 112 bits
    ("p256", "ed25519", False),
    ("rsa2048", "rsa4096", False),
])
def test_weaker_key(ca, old, new, weaker):
    before = baseline_of(leaf(ca, key_kind=old), ANCHOR)
    found = regressions(before, baseline_of(leaf(ca, key_kind=new), ANCHOR))
    assert [f.reason for f in found] == ([WEAKER_KEY] if weaker else [])
    if weaker:
        assert found[0].severity is Severity.CRITICAL
        assert found[0].message.startswith(f"the renewed leaf has a weaker key: {before.key_description} → ")


def test_security_bits():
    assert [security_bits("RSA", n) for n in (1024, 2048, 3072, 4096, 7680, 15360)] == [80, 112, 128, 128, 192, 256]
    assert (security_bits("EC", 256), security_bits("EC", 384), security_bits("EC", 521)) == (128, 192, 256)
    assert security_bits("Ed25519", None) == 128 and security_bits("1.2.3.4", 999) is None


def test_unknown_strength_compares_sizes_of_the_same_algorithm(ca):
    before = dataclasses.replace(baseline_of(leaf(ca), ANCHOR), key_algorithm="1.2.3", key_size=900)
    assert reasons(before, dataclasses.replace(before, sha256="c" * 64, key_size=800)) == [WEAKER_KEY]
    assert reasons(before, dataclasses.replace(before, sha256="c" * 64, key_algorithm="1.2.4", key_size=8)) == []


def test_changed_anchor(ca):
    before = baseline_of(leaf(ca), ANCHOR)
    [f] = regressions(before, baseline_of(leaf(ca), OTHER_ANCHOR))
    assert f.reason == CHANGED_ANCHOR and f.severity is Severity.CRITICAL
    assert f.message.startswith("the renewed leaf chains to another trust anchor: aaaaaaaaaaaaaaaa → bbbbbbbbbbbbbbbb")
    # an unverified chain on either side says nothing about the anchor
    assert regressions(before, baseline_of(leaf(ca), None)) == []
    assert regressions(baseline_of(leaf(ca), None), before) == []


def test_shorter_lifetime_with_tolerance(ca):
    before = baseline_of(leaf(ca, valid_for=dt.timedelta(days=90)), ANCHOR)
    [f] = regressions(before, baseline_of(leaf(ca, valid_for=dt.timedelta(days=47)), ANCHOR))
    assert f.reason == SHORTER_LIFETIME and f.severity is Severity.WARNING
    assert f.message == "the renewed leaf has a shorter lifetime: 90d → 47d"
    # a notBefore backdated differently (an hour, or under 1 %) is the same lifetime
    assert regressions(before, baseline_of(leaf(ca, valid_for=dt.timedelta(days=90) - dt.timedelta(hours=20)),
                                           ANCHOR)) == []


def test_several_regressions_and_ignore(ca):
    before = baseline_of(leaf(ca, key_kind="p384", valid_for=dt.timedelta(days=365)), ANCHOR)
    worse = baseline_of(leaf(ca, eku=("serverAuth",), dns_names=("api.example.com",),
                             valid_for=dt.timedelta(days=90)), OTHER_ANCHOR)
    assert reasons(before, worse) == [DROPPED_USAGE, DROPPED_DNS_NAME, WEAKER_KEY, CHANGED_ANCHOR, SHORTER_LIFETIME]
    assert reasons(before, worse, ignore=frozenset({CHANGED_ANCHOR, SHORTER_LIFETIME})) == [
        DROPPED_USAGE, DROPPED_DNS_NAME, WEAKER_KEY]


def test_every_reason_is_in_the_table():
    assert all(REASONS[r].category == "renewal" for r in RENEWAL_REASONS)
    assert len(RENEWAL_REASONS) == 6


def test_compact_round_trip(ca):
    for b in (baseline_of(leaf(ca, ip_addresses=("10.0.0.1",)), ANCHOR), baseline_of(leaf(ca, eku=None), None),
              baseline_of(leaf(ca, key_kind="rsa2048", dns_names=()), ANCHOR)):
        s = b.to_compact()
        assert LeafBaseline.from_compact(s) == b
        assert "\n" not in s and len(s.encode()) < 400


def test_compact_form_keeps_odd_names(ca):
    b = dataclasses.replace(baseline_of(leaf(ca), ANCHOR), issuer='CN=a\\,b|"c",O=ü',
                            dns_names=("xn--bcher-kva.example",))
    assert LeafBaseline.from_compact(b.to_compact()) == b


@pytest.mark.parametrize("damaged", [
    "", "not json", "{}", "[]", "[2]", "null", '"x"',
    '[1,"abc",null,[],[],"EC",256,"P-256",null,1,"CN=x"]',  # short fingerprint
    '[1,"' + "A" * 64 + '",null,[],[],"EC",256,"P-256",null,1,"CN=x"]',  # upper-case hex
    '[1,"' + "a" * 63 + 'g",null,[],[],"EC",256,"P-256",null,1,"CN=x"]',  # not hex
    '[1,"' + "a" * 65 + '",null,[],[],"EC",256,"P-256",null,1,"CN=x"]',  # one digit too many
    '[1,"' + "a" * 64 + '\\n",null,[],[],"EC",256,"P-256",null,1,"CN=x"]',  # a line break after it
    '[1,"' + "a" * 64 + '",null,[],[],"EC",256,"P-256","' + "a" * 63 + '",1,"CN=x"]',  # a short anchor
    '[1,"' + "a" * 64 + '",null,[1],[],"EC",256,"P-256",null,1,"CN=x"]',  # a DNS name that is a number
    '[1,"' + "a" * 64 + '",null,[],[],"EC",true,"P-256",null,1,"CN=x"]',  # a bool for a size
    '[1,"' + "a" * 64 + '",null,[],[],"EC",256,"P-256",null,1]',  # a field short
])
def test_damaged_compact_form_is_refused(damaged):
    with pytest.raises(ValueError, match="not a stored leaf baseline"):
        LeafBaseline.from_compact(damaged)


def test_malformed_leaf_is_no_baseline(ca):
    bad = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x05\x82\x09oops")
    broken = certgen.leaf(ca, "x.example.com", dns_names=(), extra_extensions=[(bad, False)])
    with pytest.raises(ValueError, match="can be no baseline"):  # its names and usages are unknown
        baseline_of(broken.cert, ANCHOR)


def test_plain_fingerprint_spellings():
    hexa = "ab" * 32
    assert plain_fingerprint("sha256:" + hexa) == hexa
    assert plain_fingerprint(":".join(["AB"] * 32)) == hexa
    assert plain_fingerprint(f"  {hexa.upper()}\n") == hexa


# --- spec.requirements.renewal ---

def test_guard_settings_from_spec():
    assert renewal_guard_from_spec({}) == RenewalGuard(True, frozenset())
    assert renewal_guard_from_spec({"requirements": None}) == RenewalGuard()
    spec = {"requirements": {"renewal": {"guard": False, "ignore": ["RenewalChangedAnchor"]}}}
    assert renewal_guard_from_spec(spec) == RenewalGuard(False, frozenset({CHANGED_ANCHOR}))
    assert renewal_guard_from_spec(spec["requirements"]).ignore == {CHANGED_ANCHOR}
    requirements_from_spec(spec)  # a known field of spec.requirements


@pytest.mark.parametrize(("renewal", "problem"), [
    ({"ignore": ["RenewalTypo"]}, "unknown reason 'RenewalTypo'"),
    ({"ignore": "RenewalChangedAnchor"}, "must be a list"),
    ({"guard": "no"}, "renewal.guard must be true or false"),
    ({"gaurd": False}, "unknown field spec.requirements.renewal.gaurd"),
    ("off", "renewal must be a mapping"),
])
def test_guard_settings_are_validated(renewal, problem):
    with pytest.raises(PolicySpecError, match=re.escape(problem)):
        requirements_from_spec({"renewal": renewal})
    with pytest.raises(PolicySpecError, match=re.escape(problem)):
        renewal_guard_from_spec({"requirements": {"renewal": renewal}})


def test_crd_enum_is_the_guards_reasons():
    crd = yaml.safe_load((Path(__file__).resolve().parents[3] / "crds" / "certificatepolicies.certpolicy.io.yaml").read_text())
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    renewal = schema["properties"]["spec"]["properties"]["requirements"]["properties"]["renewal"]
    assert renewal["properties"]["ignore"]["items"]["enum"] == list(RENEWAL_REASONS) == list(RENEWAL_IGNORABLE)
    assert renewal["properties"]["guard"]["default"] is True


def test_baselines_of_one_ca_share_what_repeats():
    """A policy holds a baseline per selected Secret: the fields its CA's leaves repeat (EKUs, key,
    anchor, issuer) are one object each, whether built from a leaf or read back from the store."""
    ca = certgen.root("sharing root")
    built = [baseline_of(certgen.leaf(ca, f"s{i}.example.com").cert, "ab" * 32) for i in range(2)]
    read = [LeafBaseline.from_compact(b.to_compact()) for b in built]
    for a, b in (built, read, (built[0], read[1])):
        assert a.sha256 != b.sha256
        assert a.ekus is b.ekus and a.issuer is b.issuer and a.anchor is b.anchor
        assert a.key_algorithm is b.key_algorithm and a.key_curve is b.key_curve

"""RFC 6125 name matching."""

from __future__ import annotations

import pytest

from certpolicy.policy.dnsnames import is_valid_dns_san, pattern_allows, san_covers, validate_pattern


@pytest.mark.parametrize(
    ("pattern", "san", "allowed"),
    [
        ("*.uat.example.com", "a.uat.example.com", True),
        ("*.uat.example.com", "A.UAT.Example.com.", True),
        ("*.uat.example.com", "uat.example.com", False),  # a wildcard needs its one label
        ("*.uat.example.com", "a.b.uat.example.com", False),  # ... and only one
        ("*.uat.example.com", "a.prod.example.com", False),
        ("*.uat.example.com", "*.uat.example.com", True),  # the same wildcard
        ("*.uat.example.com", "*.example.com", False),  # reaches further than allowed
        ("*.uat.example.com", "*.a.uat.example.com", False),  # two labels down
        ("api.example.com", "api.example.com", True),
        ("api.example.com", "www.api.example.com", False),
        ("api.example.com", "*.example.com", False),
        ("*.uat.example.com", "f*.uat.example.com", False),
    ],
)
def test_pattern_allows(pattern, san, allowed):
    assert pattern_allows(validate_pattern(pattern), san) is allowed


@pytest.mark.parametrize(
    ("san", "name", "covers"),
    [
        ("*.uat.example.com", "hl7.uat.example.com", True),
        ("*.uat.example.com", "uat.example.com", False),
        ("*.uat.example.com", "a.b.uat.example.com", False),
        ("hl7.uat.example.com", "HL7.uat.example.com", True),
        ("*.uat.example.com", "*.uat.example.com", True),
        ("a.uat.example.com", "*.uat.example.com", False),
    ],
)
def test_san_covers(san, name, covers):
    assert san_covers(san, name) is covers


@pytest.mark.parametrize(
    ("name", "valid"),
    [("a.example.com", True), ("*.example.com", True), ("_srv.example.com", True), ("f*.example.com", False), ("*.*.example.com", False), ("a..b", False), ("-a.example.com", False), ("", False), ("a" * 64 + ".com", False)],
)
def test_valid_dns_san(name, valid):
    assert is_valid_dns_san(name) is valid


@pytest.mark.parametrize("bad", ["*", "a.*.com", "**.example.com", "exa mple.com", "a..example.com", " "])
def test_bad_patterns(bad):
    with pytest.raises(ValueError):
        validate_pattern(bad)

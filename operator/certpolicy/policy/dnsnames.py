"""DNS names and patterns, matched the way TLS clients match them (RFC 6125).

A wildcard is only ever the whole left-most label and covers exactly one label:
``*.uat.example.com`` covers ``a.uat.example.com`` but neither ``uat.example.com`` nor
``a.b.uat.example.com``. Comparison is case-insensitive and ignores a trailing dot. Names are
compared in their ASCII (A-label) form, which is how certificates carry them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

#: Items of a list (allowed patterns, ranges, the SANs a leaf has) quoted in one message. Every bad
#: name gets a message of its own, so quoting whole lists would make the messages quadratic in size
#: (6,000 patterns x 6,000 names took 1.18 GiB).
MAX_QUOTED = 5


def quoted(items: Sequence[object], empty: str = "none") -> str:
    """At most MAX_QUOTED items, then how many more: a message stays small however long the list."""
    if not items:
        return empty
    head = ", ".join(str(i) for i in items[:MAX_QUOTED])
    return head + (f" (+{len(items) - MAX_QUOTED} more)" if len(items) > MAX_QUOTED else "")

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


def normalize_dns(name: str) -> str:
    return name.strip().lower().rstrip(".")


def to_ascii(name: str) -> str:
    """The A-label form of a (possibly internationalised) name; ValueError if it has none."""
    name = normalize_dns(name)
    if name.isascii():
        return name
    out = []
    for label in name.split("."):
        if label == "*" or label.isascii():
            out.append(label)
        else:
            try:
                out.append(label.encode("idna").decode("ascii"))
            except UnicodeError as e:
                raise ValueError(f"'{name}' is not a valid internationalised name") from e
    return ".".join(out)


def is_hostname(name: str) -> bool:
    """A syntactically valid host name (LDH labels; underscores tolerated, as private DNS has them)."""
    if not name or len(name) > 253:
        return False
    return all(_LABEL.match(label) for label in name.split("."))


def is_wildcard(name: str) -> bool:
    return name.startswith("*.")


def is_valid_dns_san(name: str) -> bool:
    """A host name, or ``*.`` followed by one; anything else no client will match."""
    name = normalize_dns(name)
    if is_wildcard(name):
        return is_hostname(name[2:])
    return is_hostname(name)


def validate_pattern(pattern: str) -> str:
    """The normalised form of an ``allowedDNSNames`` entry; ValueError saying what is wrong."""
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError("a DNS name pattern must be a non-empty string")
    p = to_ascii(pattern)
    rest = p[2:] if is_wildcard(p) else p
    if "*" in rest:
        raise ValueError(f"'{pattern}': a wildcard may only be the whole left-most label ('*.example.com'), covering exactly one label")
    if not is_hostname(rest):
        raise ValueError(f"'{pattern}' is not a valid DNS name")
    return p


def pattern_allows(pattern: str, san: str) -> bool:
    """Does ``allowedDNSNames`` entry ``pattern`` allow certificate SAN ``san``?

    A literal SAN is allowed by an equal literal or by a wildcard covering it; a wildcard SAN only
    by the same wildcard (``*.example.com`` in a certificate reaches more than ``*.uat.example.com``
    allows, and ``*.a.uat.example.com`` reaches names two labels down).
    """
    san = normalize_dns(san)
    if is_wildcard(san):
        return san == pattern
    if not is_wildcard(pattern):
        return san == pattern
    head, dot, tail = san.partition(".")
    return bool(dot) and bool(head) and "*" not in head and tail == pattern[2:]


def san_covers(san: str, name: str) -> bool:
    """Would a client connecting to ``name`` accept a certificate with DNS SAN ``san``?"""
    san, name = normalize_dns(san), normalize_dns(name)
    if is_wildcard(name):
        return san == name  # a required wildcard must be present as that wildcard
    if not is_wildcard(san):
        return san == name
    head, dot, tail = name.partition(".")
    return bool(dot) and bool(head) and tail == san[2:]

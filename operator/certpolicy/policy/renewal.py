"""The renewal regression guard: is a Secret's new leaf worse than the last one that was accepted?

Why: in 2026 renewals broke mTLS silently. A certificate renewed by a public CA lost
``clientAuth``; a renewal through another issuer profile lost a SAN, came back with a smaller key,
chained to another root, or was issued for a fraction of the old lifetime. Each renewed leaf was
valid on its own terms, so a policy that writes no requirement saw nothing wrong. This guard needs
no requirement: it compares the new leaf with the *baseline*, the facts of the last leaf accepted
for the same Secret, and every loss is a finding with its own reason.

Pure (no kopf, no kubernetes): the operator keeps the baselines (``handlers/renewal.py``),
``certpolicy check --baseline OLD NEW`` compares two files, and the admission webhook compares
what it is asked to admit, all with :func:`baseline_of` and :func:`regressions`.

What counts as a regression (each one a reason, see ``docs/renewal-guard.md``):

* ``RenewalDroppedUsage`` — an extended key usage of the old leaf is not in the new one. A leaf
  without the EKU extension stands for any usage: from no EKU, nothing can be dropped; to no EKU,
  every listed usage is reported (strict TLS stacks refuse a leaf without an explicit EKU).
* ``RenewalDroppedDNSName`` / ``RenewalDroppedIPAddress`` — a DNS SAN of the old leaf that no SAN
  of the new one covers (``*.example.com`` covers ``a.example.com``, as clients match), or an IP
  SAN that is gone.
* ``RenewalWeakerKey`` — the new key is weaker by NIST SP 800-57's comparable strengths (RSA 2048:
  112 bits, 3072: 128, 7680: 192, 15360: 256; P-256/Ed25519: 128, P-384: 192, P-521: 256):
  RSA 4096 → P-256 is *not* weaker, RSA 3072 → RSA 2048 is. A key whose strength is unknown is
  compared only with a key of the same algorithm (by size).
* ``RenewalChangedAnchor`` — the new leaf chains to another trust anchor than the old one (both
  known): peers that pinned or only trust the old root break.
* ``RenewalShorterLifetime`` — notAfter − notBefore is shorter by more than
  :data:`LIFETIME_TOLERANCE` (the larger of one hour and 1 %): issuers backdate notBefore by
  varying amounts, which is no regression.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass

from cryptography import x509

from certpolicy.interning import shared
from certpolicy.pki.fingerprint import PREFIX
from certpolicy.pki.inspect import summarize
from certpolicy.policy.dnsnames import normalize_dns, quoted, san_covers
from certpolicy.policy.durations import humanize
from certpolicy.policy.findings import Finding, finding

DROPPED_USAGE = "RenewalDroppedUsage"
DROPPED_DNS_NAME = "RenewalDroppedDNSName"
DROPPED_IP_ADDRESS = "RenewalDroppedIPAddress"
WEAKER_KEY = "RenewalWeakerKey"
CHANGED_ANCHOR = "RenewalChangedAnchor"
SHORTER_LIFETIME = "RenewalShorterLifetime"
#: Every reason the guard reports, in the order it checks them; each may be listed in
#: ``spec.requirements.renewal.ignore``.
RENEWAL_REASONS: tuple[str, ...] = (DROPPED_USAGE, DROPPED_DNS_NAME, DROPPED_IP_ADDRESS, WEAKER_KEY,
                                    CHANGED_ANCHOR, SHORTER_LIFETIME)

#: A lifetime shorter by at most this much (or 1 % of the old one, whichever is larger) is the same.
LIFETIME_TOLERANCE = dt.timedelta(hours=1)
_COMPACT_VERSION = 1
ARROW = "→"


@dataclass(frozen=True, slots=True)
class LeafBaseline:
    """The facts of one accepted leaf that a renewal must not lose: small, public, comparable.

    ``sha256`` is the leaf's SHA-256 fingerprint as lowercase hex without colons or prefix (what a
    person writes into ``certpolicy.io/renewal-accepted``); ``anchor`` likewise for the trust
    anchor its chain ended at, None when the chain was not verified. ``ekus`` is None when the leaf
    has no EKU extension (any usage). Names are sorted and deduplicated, DNS names lowercased.
    """

    sha256: str
    ekus: tuple[str, ...] | None
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    key_algorithm: str  # RSA | EC | Ed25519 | Ed448 | DSA | a dotted OID
    key_size: int | None
    key_curve: str | None  # P-256, ... for EC
    anchor: str | None
    lifetime_seconds: int
    issuer: str  # RFC 4514, for messages only

    @property
    def key_description(self) -> str:
        """``RSA 2048``, ``EC P-256``, ``Ed25519``: what a message shows."""
        if self.key_algorithm == "EC" and self.key_curve:
            return f"EC {self.key_curve}"
        if self.key_algorithm in ("RSA", "DSA") and self.key_size:
            return f"{self.key_algorithm} {self.key_size}"
        return self.key_algorithm

    def to_compact(self) -> str:
        """The stored form: one JSON array, no spaces, fields in a fixed order after a version
        number (about 250 bytes for a leaf with two SANs; see benchmarks/renewal_baseline.py)."""
        return json.dumps([_COMPACT_VERSION, self.sha256,
                           None if self.ekus is None else list(self.ekus),
                           list(self.dns_names), list(self.ip_addresses), self.key_algorithm, self.key_size,
                           self.key_curve, self.anchor, self.lifetime_seconds, self.issuer],
                          separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_compact(cls, s: str) -> LeafBaseline:
        """Parse :meth:`to_compact`'s output; ValueError for anything else (a damaged store entry
        must be noticed, never read as a baseline with fewer names)."""
        try:
            v = json.loads(s)
        except (TypeError, ValueError) as e:
            raise ValueError("not a stored leaf baseline (not JSON)") from e
        if not isinstance(v, list) or len(v) != 11 or v[0] != _COMPACT_VERSION:
            raise ValueError("not a stored leaf baseline (unknown layout or version)")
        _, sha, ekus, dns, ips, alg, size, curve, anchor, lifetime, issuer = v
        if not (_is_hex(sha) and (anchor is None or _is_hex(anchor)) and isinstance(alg, str)
                and _str_list(dns) and _str_list(ips) and (ekus is None or _str_list(ekus))
                and (size is None or _int(size)) and (curve is None or isinstance(curve, str))
                and _int(lifetime) and isinstance(issuer, str)):
            raise ValueError("not a stored leaf baseline (a field has the wrong type)")
        # A policy holds a baseline per selected Secret: what its CA's leaves repeat is shared.
        return cls(sha, None if ekus is None else shared(tuple(ekus)), tuple(dns), tuple(ips), shared(alg), size,
                   _shared(curve), _shared(anchor), lifetime, shared(issuer))


def _shared(v: str | None) -> str | None:
    return None if v is None else shared(v)


#: A SHA-256 fingerprint as stored: 64 lower-case hex digits. A compiled pattern, not a loop over
#: the characters: two per stored baseline, read back for every selected Secret after a restart
#: (18 of the 37 µs that reading a baseline took).
_HEX64 = re.compile(r"[0-9a-f]{64}")


def _is_hex(v: object) -> bool:
    return isinstance(v, str) and _HEX64.fullmatch(v) is not None


def _str_list(v: object) -> bool:
    return isinstance(v, list) and all(isinstance(i, str) for i in v)


def _int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def plain_fingerprint(fp: str) -> str:
    """``sha256:AB:CD...`` / ``abcd...`` → ``abcd...``: the form of the acceptance annotation."""
    return fp.strip().lower().removeprefix(PREFIX).replace(":", "")


def baseline_of(leaf: x509.Certificate, anchor_fingerprint: str | None, issuer: str | None = None) -> LeafBaseline:
    """The baseline facts of ``leaf``, whose verified chain ended at ``anchor_fingerprint`` (any
    fingerprint spelling; None when the chain was not verified). ``issuer``: the leaf's issuer
    name when the caller has it (``Evaluation.leaf_issuer``), else it is read from the leaf.

    Raises ValueError when the leaf's extensions cannot be parsed: its usages and names are
    unknown, so it can be no baseline (the evaluation reports ``MalformedExtension``).
    """
    s = summarize(leaf)
    if s.extension_error:
        raise ValueError(f"the leaf's extensions cannot be read ({s.extension_error}); it can be no baseline")
    return LeafBaseline(
        sha256=plain_fingerprint(s.fingerprint),
        ekus=shared(tuple(sorted(set(s.extended_key_usages)))) if s.has_eku else None,
        dns_names=tuple(sorted({normalize_dns(n) for n in s.dns_names})),
        ip_addresses=tuple(sorted(set(s.ip_addresses))),
        key_algorithm=shared(s.key_algorithm),
        key_size=s.key_size,
        key_curve=_shared(s.key_curve),
        anchor=shared(plain_fingerprint(anchor_fingerprint)) if anchor_fingerprint else None,
        lifetime_seconds=int((s.not_after - s.not_before).total_seconds()),
        issuer=shared(issuer if issuer is not None else s.issuer),
    )


def regressions(before: LeafBaseline, after: LeafBaseline, *, ignore: frozenset[str] = frozenset()) -> list[Finding]:
    """What ``after`` lost against ``before``: one finding per reason (not in ``ignore``), each
    message naming the values before → after. Empty for the same leaf, an equal or a better one."""
    if before.sha256 == after.sha256:
        return []
    out: list[Finding] = []

    def add(reason: str, message: str) -> None:
        if reason not in ignore:
            out.append(finding(reason, message))  # the caller, who has the leaf, may attach its CertRef

    if before.ekus is not None:
        now = set(after.ekus or ())
        dropped = [u for u in before.ekus if u not in now]
        if dropped:
            shown = "(no EKU extension)" if after.ekus is None else f"[{', '.join(after.ekus)}]"
            add(DROPPED_USAGE, f"the renewed leaf dropped extended key usage {', '.join(dropped)}: "
                               f"[{', '.join(before.ekus)}] {ARROW} {shown}")
    lost_dns = [n for n in before.dns_names if not any(san_covers(s, n) for s in after.dns_names)]
    if lost_dns:
        add(DROPPED_DNS_NAME, f"the renewed leaf dropped DNS name {quoted(lost_dns)}: "
                              f"[{quoted(before.dns_names)}] {ARROW} [{quoted(after.dns_names)}]")
    lost_ips = [a for a in before.ip_addresses if a not in set(after.ip_addresses)]
    if lost_ips:
        add(DROPPED_IP_ADDRESS, f"the renewed leaf dropped IP address {quoted(lost_ips)}: "
                                f"[{quoted(before.ip_addresses)}] {ARROW} [{quoted(after.ip_addresses)}]")
    if _weaker(before, after):
        add(WEAKER_KEY, f"the renewed leaf has a weaker key: {before.key_description} {ARROW} {after.key_description}")
    if before.anchor and after.anchor and before.anchor != after.anchor:
        add(CHANGED_ANCHOR, f"the renewed leaf chains to another trust anchor: {before.anchor[:16]} {ARROW} "
                            f"{after.anchor[:16]} (SHA-256; issuer {before.issuer} {ARROW} {after.issuer})")
    shorter = before.lifetime_seconds - after.lifetime_seconds
    if shorter > max(LIFETIME_TOLERANCE.total_seconds(), before.lifetime_seconds / 100):
        add(SHORTER_LIFETIME, f"the renewed leaf has a shorter lifetime: {_days(before.lifetime_seconds)} {ARROW} "
                              f"{_days(after.lifetime_seconds)}")
    return out


# NIST SP 800-57 Part 1 Rev. 5, Table 2: comparable security strength in bits.
_RSA_STRENGTH = ((15360, 256), (7680, 192), (3072, 128), (2048, 112), (1024, 80))
_FIXED_STRENGTH = {"Ed25519": 128, "Ed448": 224}


def security_bits(algorithm: str, size: int | None) -> int | None:
    """The comparable strength of a key (None when unknown): RSA/DSA by the NIST steps, EC as
    half the field size, Ed25519/Ed448 fixed."""
    if algorithm in _FIXED_STRENGTH:
        return _FIXED_STRENGTH[algorithm]
    if size is None:
        return None
    if algorithm in ("RSA", "DSA"):
        return next((bits for floor, bits in _RSA_STRENGTH if size >= floor), 0)
    if algorithm == "EC":
        return min(size // 2, 256)
    return None


def _weaker(before: LeafBaseline, after: LeafBaseline) -> bool:
    b, a = security_bits(before.key_algorithm, before.key_size), security_bits(after.key_algorithm, after.key_size)
    if b is not None and a is not None:
        return a < b
    same = before.key_algorithm == after.key_algorithm
    return same and before.key_size is not None and after.key_size is not None and after.key_size < before.key_size


def _days(seconds: int) -> str:
    return humanize(dt.timedelta(seconds=seconds))

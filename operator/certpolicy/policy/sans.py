"""Subject Alternative Name checks: the names a certificate can be used for, as clients see them.

Clients match SANs, never the CN (RFC 6125, and every browser since 2017), so a certificate
without a SAN is unusable however right its CN looks. IP SANs are compared as addresses and DNS SANs
as names; an IP written into a DNS SAN matches nothing and is reported as such.
"""

from __future__ import annotations

import ipaddress

from certpolicy.pki.inspect import CertSummary
from certpolicy.policy.dnsnames import is_valid_dns_san, normalize_dns, pattern_allows, quoted, san_covers
from certpolicy.policy.findings import CertRef, Finding, Role, finding
from certpolicy.policy.spec import Requirements


def check_names(req: Requirements, leaf: CertSummary) -> list[Finding]:
    if leaf.extension_error:
        return []
    out: list[Finding] = []

    # The leaf's name and reference are built only if a finding needs them: turning a subject
    # into a string costs more than all the matching below.
    def add(reason: str, message: str) -> None:
        out.append(finding(reason, message, CertRef.of(Role.LEAF, leaf)))

    def name() -> str:  # only rendered when there is a finding to report
        return leaf.display_name

    if not leaf.has_san:
        if req.require_san:
            cn = f"only CN={leaf.common_name}" if leaf.common_name else "and no CN either"
            add("NoSubjectAltName", f"leaf '{name()}' has no subjectAltName ({cn}); clients match SANs, not the CN")
        for required in req.required_dns_names:
            add("MissingRequiredDNSName", f"leaf '{name()}' does not cover required DNS name '{required}' (it has no SANs)")
        for ip in req.required_ip_addresses:
            add("MissingRequiredIPAddress", f"leaf '{name()}' lacks required IP address {ip} (it has no SANs)")
        return out

    dns = [normalize_dns(n) for n in leaf.dns_names]
    for san in dns:
        if _is_ip_literal(san):
            add("InvalidDNSName", f"leaf '{name()}' has IP address '{san}' as a DNS SAN; clients match IP addresses only against IP SANs")
        elif not is_valid_dns_san(san):
            add("InvalidDNSName", f"leaf '{name()}' has DNS SAN '{san}', which is not a valid host name or one-label wildcard; clients will not match it")
        if req.allowed_dns_names and not any(pattern_allows(p, san) for p in req.allowed_dns_names):
            patterns = quoted(req.allowed_dns_names)
            add("DNSNameNotAllowed", f"leaf '{name()}' has DNS name '{san}', not allowed by allowedDNSNames [{patterns}]")

    ips = []
    for text in leaf.ip_addresses:
        try:
            ips.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    if req.allowed_ip_ranges:
        ranges = quoted(req.allowed_ip_ranges)
        for ip in ips:
            if not _in_ranges(ip, req.allowed_ip_ranges):
                add("IPAddressNotAllowed", f"leaf '{name()}' has IP address {ip}, outside allowedIPRanges [{ranges}]")

    for required in req.required_dns_names:
        if not any(san_covers(san, required) for san in dns):
            have = quoted(dns, "no DNS names")
            add("MissingRequiredDNSName", f"leaf '{name()}' does not cover required DNS name '{required}' (has: {have})")
    for want in req.required_ip_addresses:
        if not any(_same_ip(want, ip) for ip in ips):
            have_ips = quoted(ips, "no IP addresses")
            add("MissingRequiredIPAddress", f"leaf '{name()}' lacks required IP address {want} (has: {have_ips})")
    return out


def _is_ip_literal(text: str) -> bool:
    if not text or not (text[0].isdigit() or ":" in text):
        return False  # host names cannot be IPv4 literals unless they start with a digit
    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        return False


def _unmap(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """``::ffff:10.0.0.1`` is ``10.0.0.1`` to a dual-stack client."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _same_ip(a: ipaddress.IPv4Address | ipaddress.IPv6Address, b: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return _unmap(a) == _unmap(b)


def _in_ranges(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, ranges: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]) -> bool:
    ip = _unmap(ip)
    return any(ip.version == r.version and ip in r for r in ranges)

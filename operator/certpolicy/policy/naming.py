"""Subject Alternative Name checks: the names a certificate can be used for, as clients see them.

Clients match SANs, never the CN (RFC 6125, and every browser since 2017), so a certificate
without a SAN is unusable however right its CN looks. IP SANs are compared as addresses and DNS SANs
as names; an IP written into a DNS SAN matches nothing and is reported as such.
"""

from __future__ import annotations

import ipaddress

from certpolicy.pki.inspect import CertSummary
from certpolicy.policy.findings import CertRef, Finding, finding
from certpolicy.policy.names import is_valid_dns_san, normalize_dns, pattern_allows, san_covers
from certpolicy.policy.spec import Requirements


def check_names(req: Requirements, leaf: CertSummary, ref: CertRef) -> list[Finding]:
    if leaf.extension_error:
        return []
    out: list[Finding] = []
    name = leaf.display_name
    if not leaf.has_san:
        if req.require_san:
            cn = f"only CN={leaf.common_name}" if leaf.common_name else "and no CN either"
            out.append(finding("NoSubjectAltName", f"leaf '{name}' has no subjectAltName ({cn}); clients match SANs, not the CN", ref))
        for required in req.required_dns_names:
            out.append(finding("MissingRequiredDNSName", f"leaf '{name}' does not cover required DNS name '{required}' (it has no SANs)", ref))
        for ip in req.required_ip_addresses:
            out.append(finding("MissingRequiredIPAddress", f"leaf '{name}' lacks required IP address {ip} (it has no SANs)", ref))
        return out

    dns = [normalize_dns(n) for n in leaf.dns_names]
    for san in dns:
        if _is_ip_literal(san):
            out.append(finding("InvalidDNSName", f"leaf '{name}' has IP address '{san}' as a DNS SAN; clients match IP addresses only against IP SANs", ref))
        elif not is_valid_dns_san(san):
            out.append(finding("InvalidDNSName", f"leaf '{name}' has DNS SAN '{san}', which is not a valid host name or one-label wildcard; clients will not match it", ref))
        if req.allowed_dns_names and not any(pattern_allows(p, san) for p in req.allowed_dns_names):
            out.append(finding("DNSNameNotAllowed", f"leaf '{name}' has DNS name '{san}', not allowed by allowedDNSNames [{', '.join(req.allowed_dns_names)}]", ref))

    ips = []
    for text in leaf.ip_addresses:
        try:
            ips.append(ipaddress.ip_address(text))
        except ValueError:
            continue
    if req.allowed_ip_ranges:
        for ip in ips:
            if not _in_ranges(ip, req.allowed_ip_ranges):
                ranges = ", ".join(str(r) for r in req.allowed_ip_ranges)
                out.append(finding("IPAddressNotAllowed", f"leaf '{name}' has IP address {ip}, outside allowedIPRanges [{ranges}]", ref))

    for required in req.required_dns_names:
        if not any(san_covers(san, required) for san in dns):
            have = ", ".join(dns) or "no DNS names"
            out.append(finding("MissingRequiredDNSName", f"leaf '{name}' does not cover required DNS name '{required}' (has: {have})", ref))
    for want in req.required_ip_addresses:
        if not any(_same_ip(want, ip) for ip in ips):
            have = ", ".join(str(i) for i in ips) or "no IP addresses"
            out.append(finding("MissingRequiredIPAddress", f"leaf '{name}' lacks required IP address {want} (has: {have})", ref))
    return out


def _is_ip_literal(text: str) -> bool:
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

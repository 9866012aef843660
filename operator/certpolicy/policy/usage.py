"""Extended Key Usage checks: does the leaf (and every CA above it) allow what the policy needs?

Why more than "is clientAuth in the EKU": the 2026 failures came in several shapes — a leaf whose
EKU silently lost ``clientAuth`` at renewal, a leaf with no EKU at all (accepted by some stacks,
rejected by others), ``anyExtendedKeyUsage`` standing in for real usages, and an intermediate whose
own EKU excludes a usage, which Go, Windows and NSS enforce down the chain.
"""

from __future__ import annotations

from certpolicy.pki.inspect import ANY_EKU, CertSummary
from certpolicy.policy.findings import MISSING_EKU_REASON, CertRef, Finding, Role, Severity, finding
from certpolicy.policy.spec import Requirements


def check_leaf_eku(req: Requirements, leaf: CertSummary) -> list[Finding]:
    required = req.extended_key_usages
    if not required or leaf.extension_error:
        return []
    if leaf.has_eku and all(u in leaf.extended_key_usages for u in required):
        return []
    ref = CertRef.of(Role.LEAF, leaf)
    if not leaf.has_eku:
        return [
            finding(
                "NoExtendedKeyUsage",
                f"leaf '{leaf.display_name}' has no extendedKeyUsage extension; the policy requires {', '.join(required)}, and strict TLS stacks reject a leaf without an explicit EKU",
                ref,
            )
        ]
    have = set(leaf.extended_key_usages)
    missing = [u for u in required if u not in have]
    if not missing:
        return []
    shown = ", ".join(leaf.extended_key_usages) or "empty"
    if ANY_EKU in have:
        return [
            finding(
                "AnyExtendedKeyUsageOnly",
                f"leaf '{leaf.display_name}' grants {', '.join(missing)} only through anyExtendedKeyUsage (EKU: {shown}); strict verifiers require the usage itself",
                ref,
            )
        ]
    return [
        finding(MISSING_EKU_REASON[u], f"leaf '{leaf.display_name}' EKU is [{shown}]; the policy requires {u}", ref)
        for u in missing
    ]


def check_ca_eku(req: Requirements, ca: CertSummary, role: Role) -> list[Finding]:
    """A CA with an EKU extension constrains the usages of everything below it."""
    if not req.extended_key_usages or not ca.has_eku or ANY_EKU in ca.extended_key_usages:
        return []
    excluded = [u for u in req.extended_key_usages if u not in ca.extended_key_usages]
    if not excluded:
        return []
    ref = CertRef.of(role, ca)
    return [
        finding(
            "IntermediateExcludesUsage",
            f"{ref.role} CA '{ca.display_name}' restricts its EKU to [{', '.join(ca.extended_key_usages)}]; leaves under it cannot be used for {', '.join(excluded)}",
            ref,
        )
    ]


def public_ca_client_auth(leaf: CertSummary, root_name: str, severity: Severity | None = None) -> Finding:
    ref = CertRef.of(Role.LEAF, leaf)
    has = "carries clientAuth today" if "clientAuth" in leaf.extended_key_usages or not leaf.has_eku else "already lacks clientAuth"
    return finding(
        "PublicCAClientAuth",
        f"leaf '{leaf.display_name}' chains to public root '{root_name}' and {has}; public CAs stopped issuing clientAuth in 2026, so renewals will not have it — move this certificate to a private CA",
        ref,
        severity,
    )

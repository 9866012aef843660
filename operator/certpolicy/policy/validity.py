"""Expiry checks, and the instants at which their answer changes.

Each certificate's result can only change at four instants: ``notBefore``, the moment its
remaining life drops to ``warningBefore`` and to ``criticalBefore``, and just after ``notAfter``
(a certificate is valid *at* its notAfter, as RFC 5280 and the verifier read it). The evaluator
caches a result until the earliest upcoming one, so a clock ticking past nothing costs nothing.
"""

from __future__ import annotations

import datetime as dt

from certpolicy.pki.inspect import CertSummary
from certpolicy.policy.durations import format_duration, humanize
from certpolicy.policy.findings import CertRef, Finding, Role, Severity, finding
from certpolicy.policy.spec import Requirements
from certpolicy.timestamps import rfc3339 as _iso

_TICK = dt.timedelta(microseconds=1)


def check_expiry(req: Requirements, s: CertSummary, role: Role, now: dt.datetime, cap: Severity | None = None) -> list[Finding]:
    if s.not_before <= now and s.not_after - now > req.warning_before:
        return []  # the common case, decided without building the certificate's name
    ref = CertRef.of(role, s)
    what = f"{role} '{s.display_name}'"
    if now < s.not_before:
        f = finding("NotYetValid", f"{what} is not valid before {_iso(s.not_before)} (in {humanize(s.not_before - now)})", ref)
    elif now > s.not_after:
        f = finding("Expired", f"{what} expired {_iso(s.not_after)} ({humanize(now - s.not_after)} ago)", ref)
    else:
        left = s.not_after - now
        if left <= req.critical_before:
            sev, limit = Severity.CRITICAL, f"criticalBefore {format_duration(req.critical_before)}"
        elif left <= req.warning_before:
            sev, limit = Severity.WARNING, f"warningBefore {format_duration(req.warning_before)}"
        else:
            return []
        f = finding("ExpiringSoon", f"{what} expires {_iso(s.not_after)} (in {humanize(left)}), within {limit}", ref, sev)
    if cap is not None and f.severity > cap:
        f = Finding(f.reason, cap, f.message, f.cert)
    return [f]


def change_instants(req: Requirements, s: CertSummary) -> tuple[dt.datetime, ...]:
    """The instants at which :func:`check_expiry` (and chain validity) can change for ``s``:
    at each of them, the new answer holds from that instant on."""
    return (
        s.not_before,
        s.not_after - req.warning_before,
        s.not_after - req.critical_before,
        s.not_after + _TICK,
    )

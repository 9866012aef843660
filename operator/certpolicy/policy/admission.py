"""Admission decisions: what ``spec.enforcement`` does with a write to a selected Secret or bundle.

Pure: (a policy's enforcement and requirements, the stored object's material, the new object's
material, the trust bundle, now) → :class:`Verdict` (allow, allow with warnings, or refuse with a
message). The webhook (:mod:`certpolicy.webhook`) only parses the AdmissionReview, looks the policy
up in its warm index and hands the parts here.

The rule is "no worse than what is stored": a write is judged on what it *adds*. A Critical
finding of the new object counts only when the stored object does not have the same one (same
reason, same certificate role), so a Secret that already violates can still be relabelled,
replaced by an equally bad leaf, or fixed in several steps. A renewal regression (the new leaf
lost something the stored leaf had, :mod:`certpolicy.policy.renewal`) counts by its nature.
Deletes are never judged: the webhook is not registered for them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from certpolicy.pki.fingerprint import certificate_fingerprint
from certpolicy.pki.secretdata import SecretMaterial
from certpolicy.policy.certmanager import CertManagerOwner, name_finding
from certpolicy.policy.evaluate import Evaluation, TrustBundle
from certpolicy.policy.findings import REASONS, Finding, Severity
from certpolicy.policy.renewal import CHANGED_ANCHOR, baseline_of, plain_fingerprint, regressions
from certpolicy.policy.spec import PolicySpecError


class Enforcement(str, enum.Enum):
    """``spec.enforcement``, in Kubernetes' enum casing."""

    AUDIT = "Audit"  # report only (status, events, metrics)
    WARN = "Warn"  # let the write pass with an admission warning
    DENY = "Deny"  # refuse the write

    def __str__(self) -> str:
        return self.value


#: Values of earlier versions, still accepted (the CRD keeps them in its enum).
_LEGACY = {"audit": Enforcement.AUDIT}


def enforcement_from_spec(spec: Mapping[str, Any] | None) -> Enforcement:
    """The policy's enforcement (``Audit`` when absent; ``audit`` is ``Audit``). Raises
    :class:`PolicySpecError` for any other value."""
    value = (spec or {}).get("enforcement")
    if value is None:
        return Enforcement.AUDIT
    if value in _LEGACY:
        return _LEGACY[value]
    try:
        return Enforcement(value)
    except ValueError:
        raise PolicySpecError([f"enforcement must be one of Audit, Warn, Deny; got {value!r}"]) from None


#: Findings spelled out in a refusal or as warnings; the rest are counted. A refusal's message
#: and each warning stay small (the API server truncates warnings longer than 256 characters).
MAX_LISTED = 3
MAX_WARNING = 256


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer to one admission request."""

    allowed: bool
    message: str = ""  # why it is refused (allowed False); empty otherwise
    warnings: tuple[str, ...] = ()
    worse: tuple[Finding, ...] = ()  # what the write adds (Warn and Deny alike)

    @property
    def reason(self) -> str:
        """The first added finding's reason (metrics, the response's status reason)."""
        return self.worse[0].reason if self.worse else ""


ALLOW = Verdict(True)


def _kind(f: Finding) -> tuple[str, str]:
    return f.reason, f.cert.role.value if f.cert else ""


def added_critical(before: Evaluation | None, after: Evaluation) -> tuple[Finding, ...]:
    """The Critical findings of ``after`` that ``before`` (the stored object; None on CREATE) does
    not have, by reason and certificate role: an equally bad leaf adds nothing."""
    have = {_kind(f) for f in before.findings if f.severity is Severity.CRITICAL} if before else set()
    return tuple(f for f in after.findings if f.severity is Severity.CRITICAL and _kind(f) not in have)


def _fix(f: Finding) -> str:
    info = REASONS.get(f.reason)
    return f"{f.reason}: {f.message}" + (f" (fix: {info.action})" if info else "")


def verdict(policy: str, enforcement: Enforcement, what: str, worse: Sequence[Finding]) -> Verdict:
    """The answer of ``policy`` about ``what`` (``Secret ns/name``) given what the write adds."""
    if not worse or enforcement is Enforcement.AUDIT:
        return ALLOW
    if enforcement is Enforcement.WARN:
        warnings = [f"CertificatePolicy {policy}: {what}: {f.reason}: {f.message}"[:MAX_WARNING]
                    for f in worse[:MAX_LISTED]]
        if len(worse) > MAX_LISTED:
            warnings.append(f"CertificatePolicy {policy}: {what}: and {len(worse) - MAX_LISTED} more findings")
        return Verdict(True, warnings=tuple(warnings), worse=tuple(worse))
    listed = "; ".join(_fix(f) for f in worse[:MAX_LISTED])
    more = f"; and {len(worse) - MAX_LISTED} more" if len(worse) > MAX_LISTED else ""
    message = (f"CertificatePolicy {policy} (enforcement: Deny) refuses this write to {what}: {listed}{more}. "
               f"The stored object is unchanged; a write that leaves it no worse is admitted.")
    return Verdict(False, message=message, worse=tuple(worse))


Evaluate = Callable[[SecretMaterial, TrustBundle | None], Evaluation]


def renewal_regressions(old_leaf: x509.Certificate, old_anchor: str | None, new_leaf: x509.Certificate,
                        new_anchor: str | None, *, ignore: frozenset[str] = frozenset(),
                        own_anchors: frozenset[str] = frozenset()) -> list[Finding]:
    """What the new leaf lost that the stored one had (:mod:`certpolicy.policy.renewal`). A change
    of anchor between two of the policy's own CAs (``own_anchors``: its rotation) is none. A leaf
    whose extensions cannot be read is no baseline: its evaluation reports MalformedExtension."""
    if old_anchor in own_anchors and new_anchor in own_anchors:
        ignore = ignore | {CHANGED_ANCHOR}
    try:
        return regressions(baseline_of(old_leaf, old_anchor), baseline_of(new_leaf, new_anchor), ignore=ignore)
    except ValueError:
        return []


def judge_secret(policy: str, enforcement: Enforcement, what: str, old: SecretMaterial | None,
                 new: SecretMaterial, bundle: TrustBundle | None, evaluate: Evaluate, *,
                 ignore: frozenset[str] = frozenset(), own_anchors: frozenset[str] = frozenset(),
                 accepted: str | None = None, owner: CertManagerOwner | None = None) -> Verdict:
    """A CREATE (``old`` None) or UPDATE of a selected Secret. ``evaluate`` is the operator's cached
    evaluator bound to the policy's requirements and ``now``. Renewal regressions are judged on an
    UPDATE that replaces the leaf, except those in ``ignore`` (``requirements.renewal.ignore``) and
    all of them when ``accepted`` (the new object's ``certpolicy.io/renewal-accepted``) names the
    new leaf's SHA-256. ``owner``: the cert-manager Certificate that writes the Secret (its
    annotations); the refusal then names it and what to change there, since cert-manager is the
    writer that reports it."""
    if enforcement is Enforcement.AUDIT:
        return ALLOW
    after = evaluate(new, bundle)
    before = evaluate(old, bundle) if old is not None else None
    worse = list(added_critical(before, after))
    if before is not None and old is not None and old.leaf is not None and new.leaf is not None:
        new_fp = plain_fingerprint(certificate_fingerprint(new.leaf))
        if accepted is None or plain_fingerprint(accepted) != new_fp:
            found = renewal_regressions(old.leaf, before.anchor_fingerprint, new.leaf, after.anchor_fingerprint,
                                        ignore=ignore, own_anchors=own_anchors)
            have = {_kind(f) for f in worse}
            worse += [f for f in found if _kind(f) not in have]
    if owner is not None:
        worse = [name_finding(f, owner) for f in worse]
    return verdict(policy, enforcement, what, worse)


# --- the bundle guard ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Orphan:
    """A selected leaf that chains to a CA a bundle write removes, and to nothing left in it."""

    namespace: str
    name: str
    anchor_subject: str


def removed_cas(old: Iterable[x509.Certificate], new: Iterable[x509.Certificate]) -> frozenset[str]:
    """Fingerprints of the certificates ``old`` holds and ``new`` does not."""
    return frozenset({certificate_fingerprint(c) for c in old} - {certificate_fingerprint(c) for c in new})


def orphans(leaves: Iterable[tuple[str, str, SecretMaterial]], old_bundle: Sequence[x509.Certificate],
            new_bundle: Sequence[x509.Certificate], evaluate: Evaluate, *, limit: int = 5) -> list[Orphan]:
    """The leaves (namespace, name, material) anchored by a CA that ``new_bundle`` drops from
    ``old_bundle`` and not trusted by ``new_bundle`` (at most ``limit``). A leaf that chained to
    nothing before is not orphaned by the write."""
    gone = removed_cas(old_bundle, new_bundle)
    if not gone:
        return []
    subjects = {certificate_fingerprint(c): c.subject.rfc4514_string() for c in old_bundle}
    # Only a leaf whose chain names a removed CA as issuer can be anchored by it: a comparison of
    # names per leaf instead of a chain verification, for a bundle that 10,000 leaves chain to.
    issuers = {c.subject for c in old_bundle if certificate_fingerprint(c) in gone}
    old_t, new_t = tuple(old_bundle), tuple(new_bundle)
    found: list[Orphan] = []
    for namespace, name, material in leaves:
        if material.leaf is None:
            continue
        if material.leaf.issuer not in issuers and not any(c.issuer in issuers for c in material.intermediates):
            continue
        before = evaluate(material, old_t)
        if before.anchor_fingerprint not in gone:
            continue
        if evaluate(material, new_t).anchor_fingerprint is None:
            found.append(Orphan(namespace, name, subjects.get(before.anchor_fingerprint, "?")))
            if len(found) >= limit:
                break
    return found


def judge_bundle(policy: str, enforcement: Enforcement, what: str, found: Sequence[Orphan]) -> Verdict:
    """The guard's answer on a write to ``what`` (a trust bundle the policy reads or writes). Only
    ``Deny`` refuses; ``Warn`` warns."""
    if not found or enforcement is Enforcement.AUDIT:
        return ALLOW
    leaves = ", ".join(f"Secret {o.namespace}/{o.name}" for o in found)
    text = (f"CertificatePolicy {policy} (enforcement: {enforcement}): this write to {what} removes CA "
            f"'{found[0].anchor_subject}', which still anchors {leaves}")
    if enforcement is Enforcement.WARN:
        return Verdict(True, warnings=(text[:MAX_WARNING],))
    return Verdict(False, message=text + ". Re-issue those leaves from a CA the bundle keeps first, then remove it.")

"""From per-Secret evaluations to what a policy reports: counts, worst violations, conditions.

Pure, so the rules that decide what people see in ``kubectl get certpol`` are unit-tested without
a cluster. Status stays small at any scale: counts plus the ``MAX_VIOLATIONS`` worst Secrets.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from certpolicy.policy.evaluate import Evaluation
from certpolicy.policy.findings import Finding, Severity

MAX_VIOLATIONS = 50
EXPIRY_REASONS = frozenset({"ExpiringSoon", "Expired"})


#: What the operator could not check in a pass, by the reason it reports under ``Degraded`` (see
#: handlers/): each one means a requirement was not checked on every selected Secret, so
#: ``Compliant`` cannot be True. Everything else the operator can fail at (writing bundles,
#: issuing leaves, rotating, reading a truststore password for a *target*) is about what it
#: writes, not about what it judged: ``Degraded`` only.
UNCHECKED_REASONS = frozenset({
    "TrustBundleMissing",  # requirements.trustBundle: the object or its key does not exist
    "TrustBundleUnreadable",  # ... cannot be read (access denied, API error) or is not named right
    "TrustBundleEmpty",  # ... holds no certificate
    "SecretNotFound",  # a Secret named in spec.selector.names does not exist
    "OwnCANotAvailable",  # spec.ca without a trustBundle: chains must lead to the policy's CAs, and it has none
    "TrustStoresNotJudged",  # more trust stores / caBundle holders selected than a pass judges (handlers/truststores.py)
    "RenewalBaselineUnavailable",  # the renewal guard's baselines cannot be read or written: renewals not compared
    "RenewalBaselineFull",  # some selected Secrets have no baseline (shards full): their renewals cannot be compared
    "RenewalBaselineUnreadable",  # damaged baselines: those Secrets' current leaves were not compared (retaken)
})


@dataclass(frozen=True)
class Unchecked:
    """A part of the policy that was not checked in this pass (reason: one of UNCHECKED_REASONS)."""

    reason: str
    message: str


def compliance(selected: int, violating: int, unchecked: Sequence[Unchecked] = ()) -> bool | None:
    """The one rule behind every green signal (``Compliant``, the compliance metric, the policy's
    event, the plugin's STATE, ``check --cluster``'s exit code): True only when something was
    selected, every requirement was checked on every selected Secret and none violates. A
    violation wins (False) even when a part was not checked: what was checked already fails, and
    a pipeline must never read "fine". Otherwise None (``Unknown``) when a part was not checked or
    nothing was selected."""
    if violating:
        return False
    if unchecked or not selected:
        return None
    return True


@dataclass(frozen=True, slots=True)
class SecretResult:
    namespace: str
    name: str
    evaluation: Evaluation
    #: What was judged: a selected Secret, or a trust store / caBundle holder judged on its own
    #: (ConfigMap, Secret, ValidatingWebhookConfiguration, ...), named by this kind in the status.
    kind: str = "Secret"
    store: bool = False  # a trust store or caBundle (its violation entry then names its kind)

    @property
    def violating(self) -> bool:
        return not self.evaluation.compliant

    @property
    def problems(self) -> tuple[Finding, ...]:
        """Findings that make the Secret violating (Warning and Critical), worst first."""
        evaluation = self.evaluation
        if evaluation.compliant:  # findings are worst first: the common case costs one comparison
            return ()
        return tuple(f for f in evaluation.findings if f.severity >= Severity.WARNING)

    @property
    def signature(self) -> tuple[str, ...]:
        """What changed means an event: the sorted set of problem reasons."""
        problems = self.problems
        return tuple(sorted({f.reason for f in problems})) if problems else ()


@dataclass(frozen=True)
class PolicyReport:
    selected: int
    compliant: int
    violating: int
    expiring_soon: int
    violations: tuple[dict[str, Any], ...]
    findings_by_namespace: tuple[tuple[str, str, str, int], ...]  # (namespace, reason, severity, count of Secrets)
    compliant_reason: str
    compliant_message: str
    next_evaluation: dt.datetime | None = None
    results: tuple[SecretResult, ...] = field(default=(), repr=False)
    unchecked: tuple[Unchecked, ...] = ()

    @property
    def is_compliant(self) -> bool | None:
        """:func:`compliance`: None (condition status Unknown) when the selection is empty or a part
        was not checked, so ``kubectl wait --for=condition=Compliant`` never passes on a selector
        that matches nothing (a typo, a namespace not labelled yet) or a trust bundle that is gone."""
        return compliance(self.selected, self.violating, self.unchecked)

    def summary(self) -> dict[str, int]:
        return {"selected": self.selected, "compliant": self.compliant, "violating": self.violating,
                "expiringSoon": self.expiring_soon}


def _severity_rank(result: SecretResult) -> tuple[int, int, str, str]:
    worst = result.evaluation.worst_severity
    return (-(int(worst) if worst is not None else -1), -len(result.problems), result.namespace, result.name)


def build_report(results: Sequence[SecretResult], now: dt.datetime, *,
                 resync: dt.timedelta = dt.timedelta(minutes=10), unchecked: Sequence[Unchecked] = (),
                 nothing_selected: str = "") -> PolicyReport:
    """``unchecked``: what the pass could not check (:func:`compliance`); ``nothing_selected``:
    which part of the selector matched nothing, for the ``NothingSelected`` message."""
    violating = [r for r in results if r.violating]
    violating.sort(key=_severity_rank)
    expiring = sum(1 for r in results if any(f.reason in EXPIRY_REASONS for f in r.problems))
    by_reason: Counter[tuple[str, str, str]] = Counter()
    for r in results:
        for reason, sev in {(f.reason, f.severity.name.capitalize()) for f in r.evaluation.findings}:
            by_reason[(r.namespace, reason, sev)] += 1
    violations = tuple(
        {
            **({"kind": r.kind} if r.store else {}),
            "namespace": r.namespace,
            "name": r.name,
            "severity": (r.evaluation.worst_severity or Severity.INFO).name.capitalize(),
            "reasons": list(r.signature),
            "message": r.problems[0].message[:512],
        }
        for r in violating[:MAX_VIOLATIONS]
    )
    if violating:
        worst = violating[0].evaluation.worst_severity
        reasons = Counter(f.reason for r in violating for f in r.problems if f.severity == worst)
        top_reason = sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]
        # The message's example is a finding of the reason itself, so reason and message agree.
        example, problem = next((r, p) for r in violating for p in r.problems if p.reason == top_reason)
        with_reason = sum(1 for r in violating if any(p.reason == top_reason for p in r.problems))
        compliant_reason = top_reason
        compliant_message = (
            f"{len(violating)} of {len(results)} selected Secrets violate the policy; {top_reason} on "
            f"{with_reason}, e.g. {example.namespace}/{example.name}: {problem.message}"
        ) + (f" Not checked: {_unchecked_text(unchecked)}" if unchecked else "")
    elif unchecked:
        compliant_reason = unchecked[0].reason
        compliant_message = (f"Compliance is unknown: not everything was checked. {_unchecked_text(unchecked)}"
                             + (f" The {len(results)} selected Secrets judged show no violation." if results else ""))
    elif results:
        compliant_reason, compliant_message = "AllCompliant", f"All {len(results)} selected Secrets comply."
    else:
        compliant_reason, compliant_message = "NothingSelected", (
            f"The selector matches no Secret{f' ({nothing_selected})' if nothing_selected else ''}, so "
            "compliance is unknown: check spec.selector (names, namespaceSelector, secretSelector, mountedOnly) "
            "and the labels of the Secrets and namespaces.")
    horizon = now + resync
    upcoming = [r.evaluation.valid_until for r in results if r.evaluation.valid_until is not None]
    next_eval = min([horizon, *[u for u in upcoming if u > now]])
    return PolicyReport(
        selected=len(results), compliant=len(results) - len(violating), violating=len(violating),
        expiring_soon=expiring, violations=violations,
        findings_by_namespace=tuple(sorted((ns, r, s, n) for (ns, r, s), n in by_reason.items())),
        compliant_reason=compliant_reason, compliant_message=compliant_message,
        next_evaluation=next_eval, results=tuple(results), unchecked=tuple(unchecked),
    )


MAX_UNCHECKED_MESSAGES = 3


def _unchecked_text(unchecked: Sequence[Unchecked]) -> str:
    more = len(unchecked) - MAX_UNCHECKED_MESSAGES
    return "; ".join(u.message for u in unchecked[:MAX_UNCHECKED_MESSAGES]) + (f" (+{more} more)" if more > 0 else "") + "."

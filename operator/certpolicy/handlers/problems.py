"""Operator-side trouble in one policy's pass, reported as its ``Degraded`` condition.

Not a certificate finding (those are :class:`certpolicy.policy.findings.Finding`, about a Secret):
a Problem is something the operator could not read, write or do for the policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from certpolicy.conditions import DEGRADED, Condition

MAX_DEGRADED_MESSAGES = 5


@dataclass(frozen=True)
class Problem:
    reason: str  # CamelCase, the condition's reason when it is the first
    message: str  # actionable, never key material


def degraded_condition(problems: Sequence[Problem]) -> Condition:
    """``Degraded``: the first problem's reason, the first few messages; False when there is none."""
    if not problems:
        return Condition(DEGRADED, False, "AsExpected", "The operator can read everything this policy needs.")
    msgs = "; ".join(p.message for p in problems[:MAX_DEGRADED_MESSAGES])
    return Condition(DEGRADED, True, problems[0].reason, msgs)

"""Status conditions in the ``metav1.Condition`` shape.

``lastTransitionTime`` moves only when ``status`` changes, so a re-check that finds the same
state produces the same condition list, the status patch is skipped, and ``kubectl wait`` and
alerting see real transitions only.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from certpolicy.timestamps import rfc3339

_REASON = re.compile(r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$")
MAX_MESSAGE = 32768

READY = "Ready"
COMPLIANT = "Compliant"
DEGRADED = "Degraded"
ROTATING = "Rotating"
ENFORCED = "Enforced"  # spec.enforcement Warn/Deny only: its rules are registered with the webhook


@dataclass(frozen=True)
class Condition:
    type: str
    status: bool | None  # None renders as "Unknown"
    reason: str
    message: str

    def __post_init__(self) -> None:
        if not _REASON.match(self.reason):
            raise ValueError(f"condition reason {self.reason!r} is not CamelCase")


def _status_text(status: bool | None) -> str:
    return "Unknown" if status is None else ("True" if status else "False")


def merge_conditions(
    existing: Sequence[Mapping[str, Any]] | None,
    updates: Iterable[Condition],
    generation: int | None,
    now: dt.datetime,
) -> list[dict[str, Any]]:
    """Return the new condition list: updated types replaced, others kept, order stable by type."""
    by_type: dict[str, dict[str, Any]] = {c["type"]: dict(c) for c in existing or () if "type" in c}
    for cond in updates:
        old = by_type.get(cond.type)
        status = _status_text(cond.status)
        transition = old.get("lastTransitionTime") if old and old.get("status") == status else rfc3339(now)
        new = {
            "type": cond.type,
            "status": status,
            "reason": cond.reason,
            "message": cond.message[:MAX_MESSAGE],
            "lastTransitionTime": transition,
        }
        if generation is not None:
            new["observedGeneration"] = generation
        by_type[cond.type] = new
    order = {READY: 0, COMPLIANT: 1, DEGRADED: 2, ROTATING: 3, ENFORCED: 4}
    return sorted(by_type.values(), key=lambda c: (order.get(c["type"], 99), c["type"]))


def without(conditions: Sequence[Mapping[str, Any]], type_: str) -> list[dict[str, Any]]:
    """The list without the condition of that type: one that no longer applies (merge keeps it)."""
    return [dict(c) for c in conditions if c.get("type") != type_]


def find(conditions: Sequence[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)

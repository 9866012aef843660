"""Writing a CertificatePolicy's status through the status subresource, only when it changed."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from certpolicy import GROUP, PLURAL, VERSION
from certpolicy.kube.rawapi import RawClient

VOLATILE = ("lastEvaluationTime", "nextEvaluationTime")


def policy_path(name: str, subresource: str = "") -> str:
    return f"/apis/{GROUP}/{VERSION}/{PLURAL}/{name}" + (f"/{subresource}" if subresource else "")


def strip_none(value: Any) -> Any:
    """Without nulls: in a merge patch null deletes a key, and an absent key reads back as null."""
    if isinstance(value, dict):
        return {k: strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [strip_none(v) for v in value]
    return value


def _stable(status: Mapping[str, Any]) -> str:
    return json.dumps(strip_none({k: v for k, v in status.items() if k not in VOLATILE}), sort_keys=True, default=str)


def status_changed(old: Mapping[str, Any] | None, new: Mapping[str, Any]) -> bool:
    """Whether ``new`` differs from ``old`` in anything but the evaluation timestamps."""
    old = old or {}
    relevant = {k: old.get(k) for k in new}
    return _stable(relevant) != _stable(new)


def same_status(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two whole statuses are equal in everything but the evaluation timestamps."""
    return _stable(a or {}) == _stable(b or {})


def patch_status(raw: RawClient, name: str, status: Mapping[str, Any]) -> dict:
    """Merge-patch the given top-level status fields (each one replaced as a whole)."""
    return raw.patch(policy_path(name, "status"), {"status": dict(status)})


def describe_change(old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """One line saying what an evaluation changed in the policy's verdict (None: nothing did).

    Compares what an operator on call reads: each condition's status and reason, and the counts.
    Timestamps and messages alone do not count, so a re-sync that changes nothing logs nothing.
    """
    parts = []
    old_conds = {c.get("type"): c for c in old.get("conditions") or ()}
    for c in new.get("conditions") or ():
        before = old_conds.get(c["type"]) or {}
        if (before.get("status"), before.get("reason")) != (c["status"], c["reason"]):
            was = f" (was {before.get('status')}/{before.get('reason')})" if before else ""
            parts.append(f"{c['type']}={c['status']}/{c['reason']}{was}")
    old_sum, new_sum = old.get("summary") or {}, new.get("summary") or {}
    counts = [f"{k} {new_sum[k]}" if k not in old_sum else f"{k} {old_sum[k]}->{new_sum[k]}"
              for k in ("selected", "violating", "expiringSoon") if k in new_sum and old_sum.get(k) != new_sum[k]]
    if counts:
        parts.append(", ".join(counts))
    return "; ".join(parts) or None

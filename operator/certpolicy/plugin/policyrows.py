"""Each CertificatePolicy's line in ``kubectl certpolicy status``, ranked from its status.

Its own module because two views print it: the list of policies (``plugin/status.py``) and one
policy's Secrets (``plugin/policysecrets.py``, which heads its table with the policy's line).
The ranks are the order of ``status``'s "worst first": Critical violations, then Warning
violations, then Degraded, then not Ready (or never evaluated), then Unknown (``Compliant`` not
True), then OK, which means exactly what ``Compliant=True`` means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

RANKS = ("Critical", "Warning", "Degraded", "NotReady", "Unknown", "OK")


def _conditions(policy: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    # Looked up by type name: an entry without a string type could never be found, so it is left out.
    return {c["type"]: c for c in ((policy.get("status") or {}).get("conditions") or ())
            if isinstance(c, Mapping) and isinstance(c.get("type"), str)}


def row(policy: Mapping[str, Any]) -> dict[str, Any]:
    """One policy's line: what ``kubectl get certpol`` shows plus why it ranks where it does."""
    status = policy.get("status") or {}
    conds = _conditions(policy)
    summary = status.get("summary") or {}
    violations = status.get("violations") or []
    worst = violations[0] if violations else None
    compliant = (conds.get("Compliant") or {}).get("status", "Unknown")
    degraded = conds.get("Degraded") or {}
    ready = (conds.get("Ready") or {}).get("status", "Unknown")
    if compliant == "False":  # without a listed violation (status cut short): still a violation
        rank = "Critical" if (worst or {}).get("severity") == "Critical" else "Warning"
    elif degraded.get("status") == "True":
        rank = "Degraded"
    elif ready != "True":
        rank = "NotReady"
    elif compliant != "True":
        rank = "Unknown"
    else:
        rank = "OK"
    rotating = conds.get("Rotating") or {}
    return {
        "name": policy["metadata"]["name"],
        "rank": rank,
        "compliant": compliant,
        "compliantReason": (conds.get("Compliant") or {}).get("reason"),
        "ready": ready,
        "degraded": degraded.get("reason") if degraded.get("status") == "True" else None,
        "degradedMessage": degraded.get("message") if degraded.get("status") == "True" else None,
        "selected": summary.get("selected", 0),
        "violating": summary.get("violating", 0),
        "expiringSoon": summary.get("expiringSoon", 0),
        "rotation": rotating.get("reason"),
        "ca": (status.get("ca") or {}).get("fingerprint"),
        "worst": ({"namespace": worst.get("namespace"), "name": worst.get("name"), "severity": worst.get("severity"),
                   "reasons": worst.get("reasons") or [], "message": worst.get("message")} if worst else None),
        "lastEvaluationTime": status.get("lastEvaluationTime"),
    }


def rows(policies: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    out = [row(p) for p in policies]
    out.sort(key=lambda r: (RANKS.index(r["rank"]), -int(r["violating"] or 0), r["name"]))
    return out

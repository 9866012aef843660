"""Label selectors evaluated in memory, with the API server's semantics.

The inventory holds every TLS Secret's labels already, so matching a policy's
``namespaceSelector``/``secretSelector`` locally costs nothing and needs no extra API calls.
An empty or absent selector selects everything, as it does for a NetworkPolicy or a Deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class LabelSelector:
    match_labels: tuple[tuple[str, str], ...] = ()
    # (key, operator, values)
    match_expressions: tuple[tuple[str, str, frozenset[str]], ...] = ()

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | None) -> LabelSelector:
        spec = spec or {}
        labels = tuple(sorted((str(k), str(v)) for k, v in (spec.get("matchLabels") or {}).items()))
        exprs = []
        for e in spec.get("matchExpressions") or ():
            op = e.get("operator")
            if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
                raise ValueError(f"unknown label selector operator {op!r}")
            exprs.append((str(e["key"]), op, frozenset(str(v) for v in e.get("values") or ())))
        return cls(labels, tuple(exprs))

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.match_expressions

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        for k, v in self.match_labels:
            if labels.get(k) != v:
                return False
        for key, op, values in self.match_expressions:
            present = key in labels
            if op == "In" and (not present or labels[key] not in values):
                return False
            if op == "NotIn" and present and labels[key] in values:
                return False
            if op == "Exists" and not present:
                return False
            if op == "DoesNotExist" and present:
                return False
        return True

    def to_query(self) -> str:
        """The selector as a ``labelSelector`` query string, for server-side filtering."""
        parts = [f"{k}={v}" for k, v in self.match_labels]
        for key, op, values in self.match_expressions:
            vals = ",".join(sorted(values))
            parts.append({"In": f"{key} in ({vals})", "NotIn": f"{key} notin ({vals})",
                          "Exists": key, "DoesNotExist": f"!{key}"}[op])
        return ",".join(parts)

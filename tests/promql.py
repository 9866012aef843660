"""The metric and label names a PromQL expression uses, for checking dashboards and alerts
against a real /metrics scrape.

Not a PromQL parser: a tokenizer that knows where names stand — a metric name is an identifier
that is not a function call or keyword; label names are the left-hand sides of matchers inside
``{...}`` and the lists after ``by``, ``without``, ``on``, ``ignoring``, ``group_left`` and
``group_right`` (those after ``without`` apart, in ``dropped``: they are removed, not used). That
is all the check needs, and promtool (which has the real parser) checks
the same expressions' syntax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN = re.compile(r"""\s*(?:
    (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<range>\[[^\]]*\])
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?(?:ms|[smhdwy])?)
  | (?P<id>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|>=|<=|[-+*/%^(){},=<>@])
)""", re.VERBOSE)

KEYWORDS = {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan",
            # aggregation operators: `sum by (x) (...)` puts a grouping between the name and "("
            "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk",
            "quantile", "limitk", "limit_ratio"}
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}


@dataclass
class Names:
    """Names used by one expression: metric -> label names matched on it, plus grouping labels."""

    metrics: dict[str, set[str]] = field(default_factory=dict)
    grouping: set[str] = field(default_factory=set)
    #: labels after ``without``: aggregated away, so an expression may name labels its metrics lack
    #: (or target labels such as pod and instance, which is how alerts survive a failover)
    dropped: set[str] = field(default_factory=set)


def tokens(expr: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    expr = expr.rstrip()
    while pos < len(expr):
        m = _TOKEN.match(expr, pos)
        if not m or m.end() == pos:
            raise ValueError(f"cannot tokenize {expr[pos:pos + 30]!r} in {expr!r}")
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


def names(expr: str) -> Names:
    toks = tokens(expr)
    result = Names()
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1][1] if i + 1 < len(toks) else ""
        if kind == "id" and text in GROUPING:
            into = result.dropped if text == "without" else result.grouping
            i += 1
            if i < len(toks) and toks[i][1] == "(":
                i += 1
                while i < len(toks) and toks[i][1] != ")":
                    if toks[i][0] == "id":
                        into.add(toks[i][1])
                    i += 1
            i += 1
            continue
        if kind == "id" and text not in KEYWORDS and nxt != "(":
            labels = result.metrics.setdefault(text, set())
            i += 1
            if nxt == "{":
                i = _matchers(toks, i, labels)
            continue
        if text == "{":  # a selector without a metric name
            i = _matchers(toks, i, result.metrics.setdefault("", set()))
            continue
        i += 1
    return result


def _matchers(toks: list[tuple[str, str]], i: int, labels: set[str]) -> int:
    """Consume ``{name op "value", ...}`` starting at the ``{``; returns the index after ``}``."""
    i += 1
    while i < len(toks) and toks[i][1] != "}":
        if toks[i][0] == "id" and i + 1 < len(toks) and toks[i + 1][1] in ("=", "!=", "=~", "!~"):
            labels.add(toks[i][1])
        i += 1
    return i + 1

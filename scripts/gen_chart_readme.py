#!/usr/bin/env python3
"""Generate charts/certpolicy-operator/README.md from the chart's values.schema.json descriptions
and values.yaml defaults: the schema already has to describe every value (it refuses unknown
ones), so the README is written from it rather than a second time by hand.

Usage: python scripts/gen_chart_readme.py [--check]   (--check: exit 1 when the README is out of date)
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from generated import write_or_check

REPO = Path(__file__).resolve().parents[1]
CHART = REPO / "charts" / "certpolicy-operator"
OUT = CHART / "README.md"

HEADER = """# certpolicy-operator Helm chart

Generated from `values.schema.json` and `values.yaml` by `scripts/gen_chart_readme.py`; do not
edit by hand (`tests/unit/packaging/test_chart_readme.py` fails when it is stale).

{description}

```sh
helm install certpolicy-operator charts/certpolicy-operator \\
  --namespace certpolicy-system --create-namespace
helm test certpolicy-operator --namespace certpolicy-system
```

`values.schema.json` refuses unknown keys, wrong types and enums. Installing, upgrading (the CRD
is a template: `crds.keep` leaves it on uninstall) and each alert are described in
[docs/operations.md](../../docs/operations.md), "Installing with Helm".

## Values

| value | type | default | description |
| --- | --- | --- | --- |
"""


def _type(schema: dict[str, Any]) -> str:
    t = schema.get("type", "")
    if isinstance(t, list):
        return " or ".join(t)
    if t == "array":
        items = schema.get("items") or {}
        return f"[]{_type(items) or 'any'}"
    if "enum" in schema:
        return " \\| ".join(f"`{e}`" if e != "" else '`""`' for e in schema["enum"])
    return t or "any"


def _default(value: Any) -> str:
    if value is None:
        return "`null`"
    if value == "":
        return '`""`'
    text = json.dumps(value, separators=(", ", ": "))
    return f"`{text}`" if len(text) <= 60 else "see values.yaml"


def rows(schema: dict[str, Any], defaults: Any, path: str = "") -> Iterator[tuple[str, str, str, str]]:
    """One row per value: objects whose keys the schema lists are walked into, except maps of
    per-name settings (prometheusRule.alerts), which are one row."""
    for name, sub in (schema.get("properties") or {}).items():
        full = f"{path}{name}"
        default = defaults.get(name) if isinstance(defaults, dict) else None
        nested = sub.get("properties")
        if nested and sub.get("additionalProperties") is False and name != "alerts":
            yield from rows(sub, default, f"{full}.")
            continue
        desc = " ".join((sub.get("description") or "").split()).replace("|", "\\|")
        yield full, _type(sub), _default(default), desc


def render() -> str:
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    out = [HEADER.format(description=" ".join(chart["description"].split()))]
    out += [f"| `{p}` | {t} | {d} | {desc} |\n" for p, t, d, desc in rows(schema, defaults)]
    return "".join(out)


def missing_descriptions() -> list[str]:
    """Values the README would show without a description."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    return [p for p, _t, _d, desc in rows(schema, defaults) if not desc]


def main() -> int:
    return write_or_check(OUT, render(), "gen_chart_readme.py")


if __name__ == "__main__":
    sys.exit(main())

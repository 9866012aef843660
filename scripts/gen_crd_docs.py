#!/usr/bin/env python3
"""Generate docs/crd-reference.md from the CRD's schema (the one source of truth).

Usage: python scripts/gen_crd_docs.py [--check]   (--check: exit 1 when the file is out of date)
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

from generated import write_or_check

REPO = Path(__file__).resolve().parents[1]
CRD = REPO / "crds" / "certificatepolicies.certpolicy.io.yaml"
OUT = REPO / "docs" / "crd-reference.md"


def _type(schema: dict) -> str:
    t = schema.get("type", "")
    if t == "array":
        return f"[]{_type(schema.get('items') or {})}"
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return "object (free-form)"
    return t or "any"


def _rows(schema: dict, path: str):
    desc = " ".join((schema.get("description") or "").split())
    extra = []
    if "default" in schema:
        extra.append(f"default `{json.dumps(schema['default'])}`")
    enum = schema.get("enum") or (schema.get("items") or {}).get("enum")
    if enum:
        extra.append("one of " + ", ".join(f"`{e}`" for e in enum))
    for key in ("minimum", "maximum", "maxItems", "maxLength", "pattern"):
        if key in schema:
            extra.append(f"{key} `{schema[key]}`")
    for rule in schema.get("x-kubernetes-validations") or ():
        extra.append(f"rule: {rule['message']}")
    if path:
        yield path, _type(schema), desc, "; ".join(extra)
    props = schema.get("properties") or (schema.get("items") or {}).get("properties") or {}
    required = set(schema.get("required") or (schema.get("items") or {}).get("required") or ())
    for name, sub in props.items():
        if not path and name in ("apiVersion", "kind", "metadata"):
            continue
        suffix = "[]" if schema.get("type") == "array" else ""
        child = f"{path}{suffix}.{name}" if path else name
        rows = list(_rows(sub, child))
        if rows and name in required:
            p, t, d, e = rows[0]
            rows[0] = (p, t + " (required)", d, e)
        yield from rows


def _cell(text: str) -> str:
    """A Markdown table cell: a literal ``|`` (the duration pattern's alternatives) is escaped as
    ``\\|``, which GitHub-flavoured Markdown renders as ``|``, also inside code spans."""
    return text.replace("|", "\\|")


def render() -> str:
    crd = yaml.safe_load(CRD.read_text())
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    lines = [
        "# CertificatePolicy reference",
        "",
        f"`{crd['spec']['group']}/{version['name']}`, kind `{crd['spec']['names']['kind']}`, "
        f"scope {crd['spec']['scope']}, short name `{crd['spec']['names']['shortNames'][0]}`.",
        "Generated from `crds/` by `scripts/gen_crd_docs.py`; do not edit by hand.",
        "",
        " ".join(schema["description"].split()),
        "",
        "| field | type | description | constraints |",
        "| --- | --- | --- | --- |",
    ]
    for path, t, desc, extra in _rows(schema, ""):
        lines.append(f"| `{path}` | {t} | {_cell(desc)} | {_cell(extra)} |")
    lines += ["", "## Printer columns", "", "| column | JSONPath |", "| --- | --- |"]
    for col in version["additionalPrinterColumns"]:
        lines.append(f"| {col['name']} | `{col['jsonPath']}` |")
    return "\n".join(lines) + "\n"


def main() -> int:
    return write_or_check(OUT, render(), "gen_crd_docs.py")


if __name__ == "__main__":
    sys.exit(main())

"""Every field of the CRD is documented: `kubectl explain` never says <no description>.

Walks the whole openAPIV3Schema (properties, array items, nested objects), so a field added
without a description fails here, naming its path.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import yaml

from paths import CRD_FILE


def fields(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, sub in (schema.get("properties") or {}).items():
        child = f"{path}.{name}" if path else name
        yield child, sub
        yield from fields(sub, child)
    items = schema.get("items")
    if isinstance(items, dict):
        yield from fields(items, f"{path}[]")


def schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD_FILE.read_text())
    (version,) = crd["spec"]["versions"]
    return version["schema"]["openAPIV3Schema"]


def test_every_field_has_a_description():
    # metadata is ObjectMeta: the API server documents it; its schema here is only `type: object`.
    undocumented = [p for p, s in fields(schema()) if p != "metadata" and not (s.get("description") or "").strip()]
    assert undocumented == [], f"fields without a description (kubectl explain shows <no description>): {undocumented}"


def test_the_walk_reaches_nested_array_fields():
    """Guards the test above: it must see fields inside arrays of objects, where they hid before."""
    paths = {p for p, _ in fields(schema())}
    assert {"spec.issuance[].validity", "spec.rotation.probes[].host", "status.conditions[].reason",
            "spec.selector.namespaceSelector.matchExpressions[].key"} <= paths


def test_probe_server_name_is_described_as_what_it_does():
    probes = schema()["properties"]["spec"]["properties"]["rotation"]["properties"]["probes"]["items"]
    text = probes["properties"]["serverName"]["description"]
    assert "SNI" in text and "not verified" in text

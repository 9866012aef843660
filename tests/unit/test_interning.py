"""One object per repeated small value (certpolicy/interning.py), and the held objects that use it:
at 100,000 Secrets every copy of a namespace, label set, EKU list or CA name in every record,
summary and baseline is megabytes."""

from __future__ import annotations

import json

import certgen
from certpolicy import interning
from certpolicy.interning import shared
from certpolicy.inventory.records import parse_secret_object
from certpolicy.pki.inspect import summarize


def _fresh(value):
    """An equal value that is a distinct object (as a JSON decoder hands out for every Secret)."""
    return json.loads(json.dumps(value))


def test_equal_values_come_back_as_one_object():
    a, b = _fresh(["serverAuth", "clientAuth"]), _fresh(["serverAuth", "clientAuth"])
    assert tuple(a) is not tuple(b)
    assert shared(tuple(a)) is shared(tuple(b)) == ("serverAuth", "clientAuth")
    s1, s2 = _fresh("bench-000"), _fresh("bench-000")
    assert s1 is not s2 and shared(s1) is shared(s2)


def test_the_table_is_bounded_and_starts_again_when_full(monkeypatch):
    """Namespaces come and go, and a hostile policy author can make label sets vary without end:
    the table never holds more than its bound (no string is interned for ever either)."""
    monkeypatch.setattr(interning, "_TABLE", {})
    monkeypatch.setattr(interning, "MAX_SHARED", 2)
    kept = [shared((i,)) for i in range(2)]
    first = (7, 7)
    assert shared(first) is first and len(interning._TABLE) == 1  # noqa: SLF001 - a new generation
    assert shared((7, 7)) is first  # shared within it
    assert shared((0,)) is not kept[0] and shared((0,)) == kept[0]  # the old generation is let go
    for i in range(1000):
        shared(f"ns-{i}")
    assert len(interning._TABLE) <= 2  # noqa: SLF001


def _secret(ca, i: int) -> dict:
    body = certgen.tls_secret(certgen.leaf(ca, f"s{i}.example.com"))
    return _fresh({"apiVersion": "v1", "kind": "Secret", "type": body["type"], "data": body["data"],
                   "metadata": {"namespace": "apps", "name": f"s{i}", "uid": f"u{i}", "resourceVersion": str(i),
                                "labels": {"app": "web", "tier": "edge"}}})


def test_records_and_summaries_of_one_namespace_and_ca_share_what_they_repeat():
    ca = certgen.root("interning root")
    a, b = (parse_secret_object(_secret(ca, i)) for i in range(2))
    assert a.namespace is b.namespace and a.type is b.type and a.labels is b.labels
    sa, sb = summarize(a.material.leaf), summarize(b.material.leaf)
    assert sa.fingerprint != sb.fingerprint
    assert sa.extended_key_usages is sb.extended_key_usages and sa.aki is sb.aki and sa.aki is not None

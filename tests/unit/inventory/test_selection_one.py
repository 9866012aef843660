"""``selected_record``: the selection of one Secret, held to ``select`` over a mixed inventory, and
the changed Secrets the inventory remembers for a policy's next pass (``take_changed_secrets``).

A changed Secret is judged and its event posted before the pass walks every selected Secret
(handlers/reconcile.py ``_changed_secrets_first``): if the two selections ever disagreed, an event
would be posted for a Secret the policy does not govern, or not early for one it does.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest
from kubernetes.client import ApiClient

from certpolicy.inventory import inventory as inventory_module
from certpolicy.inventory.interest import Reads
from certpolicy.inventory.inventory import Inventory
from certpolicy.inventory.records import SecretRecord, parse_secret_object
from certpolicy.inventory.selection import select, selected_record
from unstarted import inventory_with

OPNS = "certpolicy-system"


def _secret(ns: str, name: str, type_: str = "kubernetes.io/tls", **labels: str) -> dict[str, Any]:
    return {"type": type_, "metadata": {"namespace": ns, "name": name, "uid": f"uid-{ns}-{name}",
                                        "resourceVersion": "1", "labels": labels}, "data": {}}


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    """Never started: its stores are fed by hand. Two namespaces (one labelled team=a), TLS Secrets
    with and without app=web, an Opaque Secret with app=web (the labelled watch's), an Opaque
    Secret named by a policy, and a Pod mounting two of them."""
    inv = Inventory(ApiClient())
    inv.namespaces.upsert({"metadata": {"name": "a", "labels": {"team": "a"}, "resourceVersion": "1"}})
    inv.namespaces.upsert({"metadata": {"name": "b", "labels": {}, "resourceVersion": "1"}})
    for ns, (name, labels) in itertools.product(("a", "b"), (("web", {"app": "web"}), ("db", {"app": "db"}))):
        inv.secrets.upsert(_secret(ns, name, **labels))
    inv.named_secrets.upsert(_secret("b", "named", "Opaque"))
    labelled = {("a", "opaque-web"): parse_secret_object(_secret("a", "opaque-web", "Opaque", app="web")),
                ("b", "opaque-web"): parse_secret_object(_secret("b", "opaque-web", "Opaque", app="web"))}
    inv.labelled_records = lambda key: dict(labelled)  # type: ignore[method-assign]  # the labelled watch, as declared
    inv.pods.upsert({"metadata": {"namespace": "a", "name": "p", "uid": "p", "resourceVersion": "1"},
                     "spec": {"containers": [{"name": "c"}], "volumes": [
                         {"name": "w", "secret": {"secretName": "web"}},
                         {"name": "o", "secret": {"secretName": "opaque-web"}}]}})
    return inv


KEYS = [(ns, n) for ns in ("a", "b", "c") for n in ("web", "db", "opaque-web", "named", "absent")]
SELECTORS = [
    {},
    {"namespaceSelector": {"matchLabels": {"team": "a"}}},
    {"secretSelector": {"matchLabels": {"app": "web"}}},
    {"namespaceSelector": {"matchLabels": {"team": "a"}}, "secretSelector": {"matchLabels": {"app": "web"}}},
    {"secretSelector": {"matchExpressions": [{"key": "app", "operator": "NotIn", "values": ["web"]}]}},
    {"names": [{"namespace": "b", "name": "named"}, {"namespace": "a", "name": "db"}, {"namespace": "c", "name": "absent"}]},
    {"names": [{"namespace": "b", "name": "named"}], "secretSelector": {"matchLabels": {"app": "db"}}},
    {"mountedOnly": True},
    {"mountedOnly": True, "secretSelector": {"matchLabels": {"app": "web"}}},
]


@pytest.mark.parametrize("selector", SELECTORS, ids=lambda s: ",".join(sorted(s)) or "everything")
def test_one_secret_is_selected_exactly_when_select_selects_it(inventory: Inventory, selector: dict):
    everything: dict[tuple[str, str], SecretRecord] = {(r.namespace, r.name): r for r in select(inventory, selector).secrets}
    assert everything, "each selector here selects something"
    for key in KEYS:
        assert selected_record(inventory, selector, key) is everything.get(key), key




def test_the_changed_secrets_a_policy_is_woken_for_are_taken_once():
    team_a = Reads.of({"selector": {"secretSelector": {"matchLabels": {"team": "a"}}}}, OPNS)
    team_b = Reads.of({"selector": {"secretSelector": {"matchLabels": {"team": "b"}}}}, OPNS)
    inv, woken = inventory_with({"a": team_a, "b": team_b})
    inv.secrets.upsert(_secret("apps", "web", team="a"))
    inv.secrets.upsert(_secret("apps", "api", team="a"))
    inv.namespaces.upsert({"metadata": {"name": "apps", "labels": {}, "resourceVersion": "1"}})  # not a Secret
    assert woken[:2] == [["a"], ["a"]]
    assert inv.take_changed_secrets("a") == {("apps", "web"), ("apps", "api")}
    assert inv.take_changed_secrets("a") == frozenset()  # taken: the next pass starts afresh
    assert inv.take_changed_secrets("b") == frozenset()


def test_more_changed_secrets_than_the_bound_are_none_and_a_forgotten_policy_keeps_none(monkeypatch):
    monkeypatch.setattr(inventory_module, "MAX_CHANGED_SECRETS", 3)
    reads = Reads.of({"selector": {"secretSelector": {"matchLabels": {"team": "a"}}}}, OPNS)
    inv, _ = inventory_with({"a": reads})
    for i in range(5):
        inv.secrets.upsert(_secret("apps", f"s{i}", team="a"))
    assert inv.take_changed_secrets("a") is None  # too many: the pass walks them all, as before
    inv.secrets.upsert(_secret("apps", "late", team="a"))
    inv.forget("a")
    assert inv.take_changed_secrets("a") == frozenset()

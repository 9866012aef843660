"""The table of wake-up sources (inventory/wakes.py): the inventory builds every store and watch
from it and routes every change through its map functions, so a new source is one entry."""

from __future__ import annotations

import pytest

from certpolicy.inventory import inventory as inventory_module
from certpolicy.inventory import wakes
from certpolicy.inventory.interest import Reads
from certpolicy.inventory.recordstore import Change
from certpolicy.kube.watched import Watched
from unstarted import inventory_with

OPNS = "certpolicy-system"


def _tls(ns: str, name: str, **labels: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"namespace": ns, "name": name, "uid": f"uid-{name}", "resourceVersion": "1",
                         "labels": labels}, "data": {}}




def test_every_source_is_named_once_and_every_store_is_routed():
    assert len({w.source for w in wakes.WAKES}) == len(wakes.WAKES)
    inv, _ = inventory_with({})
    routed = [inv.secrets, inv.pods, inv.namespaces, inv.named_secrets, inv.password_secrets,
              *inv.bundle_sources.values(), *inv.bundle_targets.values()]
    for store in routed:
        assert any(getattr(listener, "func", None) == inv._route for listener in store.listeners), store.kind  # noqa: SLF001
    assert [w.name for w in inv.watchers] == [wakes.TLS_SECRETS, wakes.PODS, wakes.NAMESPACES]


def test_a_store_change_wakes_the_policies_its_map_function_names():
    team_a = Reads.of({"selector": {"secretSelector": {"matchLabels": {"team": "a"}}}}, OPNS)
    team_b = Reads.of({"selector": {"secretSelector": {"matchLabels": {"team": "b"}}}}, OPNS)
    inv, woken = inventory_with({"a": team_a, "b": team_b})
    inv.secrets.upsert(_tls("apps", "web", team="a"))
    assert woken == [["a"]]


def test_an_unknown_source_wakes_every_policy():
    reads = Reads.of({"selector": {"secretSelector": {"matchLabels": {"team": "a"}}}}, OPNS)
    seen = wakes.Seen("not-in-the-table", lambda ns: None, lambda key: None)
    assert wakes.concerns(reads, Change("Thing", ("ns", "x"), None, None), seen)


def test_a_new_source_is_one_entry_and_its_map_function(monkeypatch: pytest.MonkeyPatch):
    """The recipe of docs/architecture.md, followed for a made-up source: nothing in the
    inventory changes, yet the source gets its store, its watch and its wake-ups."""

    def names_a_secret_the_policy_owns(reads: Reads, change: Change, seen: wakes.Seen) -> bool:
        return reads.owns_secret(change.key)

    entry = wakes.Wake("example-configmaps",
                       wakes.Always(Watched("example-configmaps", "/api/v1/configmaps"), "ConfigMap",
                                    lambda obj: obj["metadata"]["name"]),
                       names_a_secret_the_policy_owns)
    monkeypatch.setattr(inventory_module, "WAKES", (*wakes.WAKES, entry))
    monkeypatch.setattr(wakes, "BY_SOURCE", {**wakes.BY_SOURCE, entry.source: entry})
    owner = Reads.of({"selector": {"names": [{"namespace": "apps", "name": "web"}]}}, OPNS)
    other = Reads.of({"selector": {"names": [{"namespace": "apps", "name": "db"}]}}, OPNS)
    inv, woken = inventory_with({"owner": owner, "other": other})
    assert "example-configmaps" in [w.name for w in inv.watchers]
    inv.stores["example-configmaps"].upsert({"metadata": {"namespace": "apps", "name": "web", "uid": "u",
                                                          "resourceVersion": "1"}})
    assert woken == [["owner"]]

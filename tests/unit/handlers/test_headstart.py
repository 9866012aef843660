"""Which policies ``certpolicy run``'s head start judges before kopf is loaded (handlers/headstart.py;
the process itself: tests/integration/test_head_start.py)."""

from __future__ import annotations

from certpolicy.handlers.deletion import FINALIZER
from certpolicy.handlers.headstart import eligible


def test_only_policies_kopf_has_taken_on_and_not_being_deleted_are_eligible():
    def item(name: str | None, finalizers=(), deleting: bool = False) -> dict:
        meta: dict = {"finalizers": list(finalizers)}
        if name is not None:
            meta["name"] = name
        if deleting:
            meta["deletionTimestamp"] = "2026-12-05T00:00:00Z"
        return {"metadata": meta}

    items = [item("b", [FINALIZER]), item("a", ["other/finalizer", FINALIZER]), item("new"),
             item("other", ["other/finalizer"]), item("going", [FINALIZER], deleting=True),
             item(None, [FINALIZER]), {"metadata": None}, {}]
    assert eligible(items) == ["a", "b"]

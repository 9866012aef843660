"""NamedObjects' relist (the metadata watch's ``replace``): it replaces the stores of purposes that
track names in every namespace, and never a store of records read key by key.

Why: a relist once emptied the named-Secrets store (``spec.selector.names``) because it replaced
every purpose's store with the by-name matches, which a by-key purpose never has; a policy then
read ``SecretNotFound`` for a Secret that exists (tests/integration/test_watch_bounds.py found it).
"""

from __future__ import annotations

from certpolicy.inventory.named import NamedObjects
from certpolicy.inventory.recordstore import RecordStore


def meta(namespace: str, name: str, rv: str = "1") -> dict:
    return {"metadata": {"namespace": namespace, "name": name, "resourceVersion": rv}}


def test_a_relist_keeps_records_read_by_key_and_replaces_those_tracked_by_name() -> None:
    named = NamedObjects(raw=None, watched=None)  # type: ignore[arg-type]  # no API call on this path
    named._closed = True  # a closed instance starts no watch: the relist is driven by hand below
    by_key = named.purpose("secret", RecordStore("Secret", lambda o: o["metadata"]["name"]))
    by_name = named.purpose("password", RecordStore("Secret", lambda o: o["metadata"]["resourceVersion"]))
    by_key.upsert(meta("ns", "named-2"))  # what a read by key (``_fetch``) leaves in its store
    named.acquire_names("password", ["pw"])
    by_name.upsert(meta("a", "pw", "5"))

    named.replace([meta("b", "pw", "7"), meta("ns", "other")])

    assert by_key.get(("ns", "named-2")) == "named-2"
    assert by_name.snapshot() == {("b", "pw"): "7"}

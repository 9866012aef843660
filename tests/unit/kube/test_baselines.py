"""The renewal baseline store's bookkeeping (kube/baselines.py) without an API server: keys,
shards, what becomes dirty, the size cap. Reads and writes are proven on a real API server
(tests/integration/test_renewal_guard.py, test_admission_policy.py)."""

from __future__ import annotations

import dataclasses
import re

import pytest

import certgen
from certpolicy.kube import baselines
from certpolicy.kube.baselines import (
    LEGACY_SHARDS,
    SHARDS,
    BaselineShards,
    _Shard,
    compact,
    entry_key,
    shard_bytes,
    shard_name,
    shard_of,
)
from certpolicy.kube.ownership import Owner
from certpolicy.policy.renewal import baseline_of

OWNER = Owner("payments-mtls", "5d1c0b0e-0000-4000-8000-000000000001")
KEY_CHARS = re.compile(r"^[-._a-zA-Z0-9]+$")


@pytest.fixture(scope="module")
def base():
    return baseline_of(certgen.leaf(certgen.root("store root"), "a.example.com").cert, None)


def test_keys_and_names_are_valid_and_stable():
    assert entry_key("ns1", "web.tls") == "ns1.web.tls"
    long = entry_key("ns1", "x" * 253)
    assert len(long) <= 253 and KEY_CHARS.match(long) and long != entry_key("ns1", "y" * 253)
    assert shard_of("ns1", "a") == shard_of("ns1", "a") and 0 <= shard_of("ns1", "a") < SHARDS
    assert len({shard_of("ns", f"s{i}") for i in range(1000)}) == SHARDS  # spread over all shards
    name = shard_name(OWNER, 3)
    assert name.startswith("renewal-baseline-payments-mtls-") and name.endswith("-03") and len(name) <= 253
    assert shard_name(Owner(OWNER.name, "another-uid"), 3) != name  # a re-created policy starts afresh
    assert not shard_name(Owner("a" * 39 + ".b" * 20, "u"), 0).startswith("renewal-baseline-" + "a" * 39 + ".-")


def test_put_get_retain_clear_mark_only_changed_shards(base):
    store = BaselineShards(OWNER, "certpolicy-system")
    assert store.put("ns1", "a", base) and store.put("ns1", "b", base)
    assert store.get("ns1", "a") == base and store.get("ns1", "zzz") is None
    assert store.dirty == {shard_of("ns1", "a"), shard_of("ns1", "b")}
    store.dirty.clear()
    assert store.put("ns1", "a", base) and not store.dirty  # the same entry: nothing to write
    assert store.retain([("ns1", "a")]) == 1 and store.dirty == {shard_of("ns1", "b")}
    assert store.get("ns1", "b") is None and store.size == 1
    store.dirty.clear()
    store.clear()
    assert store.size == 0 and store.dirty == {shard_of("ns1", "a")}


def test_damaged_entry_is_counted_not_read(base):
    store = BaselineShards(OWNER, "ns")
    store.shards[shard_of("ns1", "a")] = _Shard("7", {entry_key("ns1", "a"): "[1,\"short\"]"})
    assert store.get("ns1", "a") is None and store.unreadable == 1
    assert store.damaged == ["ns1/a"]  # named in RenewalBaselineUnreadable's message


def test_a_full_shard_takes_no_new_entry(base, monkeypatch):
    monkeypatch.setattr(baselines, "MAX_SHARD_BYTES", 2 * (len(base.to_compact()) + 20))
    store = BaselineShards(OWNER, "ns")
    same_shard = [f"s{i}" for i in range(400) if shard_of("ns1", f"s{i}") == 0][:3]
    assert store.put("ns1", same_shard[0], base) and store.put("ns1", same_shard[1], base)
    assert not store.put("ns1", same_shard[2], base)
    assert store.get("ns1", same_shard[2]) is None
    # replacing an entry of the same size still fits
    assert store.put("ns1", same_shard[0], dataclasses.replace(base, sha256="b" * 64))


def test_an_entry_of_the_16_shard_layout_is_found_and_moved(base):
    """Before 64 shards there were 16: an upgrade must not forget a baseline (the guard would take
    the current leaf afresh and compare a renewal with nothing)."""
    name = next(f"s{i}" for i in range(400) if shard_of("ns1", f"s{i}") >= LEGACY_SHARDS)
    index, key = shard_of("ns1", name), entry_key("ns1", name)
    store = BaselineShards(OWNER, "ns")
    store.shards[index % LEGACY_SHARDS] = _Shard("7", {key: base.to_compact()})
    assert store.get("ns1", name) == base
    assert key in store.shards[index].entries and key not in store.shards[index % LEGACY_SHARDS].entries
    assert store.dirty == {index, index % LEGACY_SHARDS}
    assert store.retain([("ns1", name)]) == 0 and store.get("ns1", name) == base


def test_a_legacy_entry_that_cannot_move_stays_found(base, monkeypatch):
    monkeypatch.setattr(baselines, "MAX_SHARD_BYTES", 1)
    name = next(f"s{i}" for i in range(400) if shard_of("ns1", f"s{i}") >= LEGACY_SHARDS)
    index, key = shard_of("ns1", name), entry_key("ns1", name)
    store = BaselineShards(OWNER, "ns")
    store.shards[index % LEGACY_SHARDS] = _Shard("7", {key: base.to_compact()})
    assert store.get("ns1", name) == base and store.retain([("ns1", name)]) == 0
    assert key in store.shards[index % LEGACY_SHARDS].entries


def test_retain_of_an_unchanged_selection_hashes_no_name(base, monkeypatch):
    store = BaselineShards(OWNER, "ns")
    live = [("ns1", f"s{i}") for i in range(50)]
    for ns, name in live:
        store.put(ns, name, base)
    assert store.retain(live) == 0
    calls = []
    monkeypatch.setattr(baselines, "shard_of", lambda *a: calls.append(a) or 0)
    assert store.retain(list(live)) == 0 and calls == []
    monkeypatch.undo()
    assert store.retain(live[1:]) == 1 and store.get(*live[0]) is None and store.size == 49


def test_an_entry_is_held_as_its_text_or_as_its_baseline_never_both(base):
    """At 100,000 selected Secrets a policy holds 100,000 baselines: once an entry is parsed its
    text is dropped (~300 bytes each) and written again from the baseline, byte for byte."""
    index, key = shard_of("ns1", "a"), entry_key("ns1", "a")
    text = base.to_compact()
    store = BaselineShards(OWNER, "ns")
    store.shards[index] = _Shard("7", {key: text})
    size = store.shards[index].bytes()
    got = store.get("ns1", "a")
    assert got == base and store.shards[index].entries[key] is got
    assert store.shards[index].bytes() == size == shard_bytes(store.shards[index].entries)
    assert {k: compact(v) for k, v in store.shards[index].entries.items()} == {key: text}  # what save writes
    # the same baseline put again: nothing to write; another one: held as the baseline alone too
    # (a first pass over 100,000 new Secrets held both forms until the shards were written)
    assert store.put("ns1", "a", base) and not store.dirty
    other = dataclasses.replace(base, sha256="c" * 64)
    assert store.put("ns1", "a", other) and store.dirty == {index}
    assert store.shards[index].entries[key] is store.get("ns1", "a") == other
    assert store.shards[index].bytes() == shard_bytes(store.shards[index].entries)
    assert compact(store.shards[index].entries[key]) == other.to_compact()

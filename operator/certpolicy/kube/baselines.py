"""Where the renewal guard keeps its baselines: ConfigMaps in the operator's namespace.

Why ConfigMaps there: the baseline must outlive a restart and a failover to the standby replica,
so it cannot live in memory; it must never be written into the user's Secret (the operator does
not write objects it did not create), and a new CRD or a status field sized by the number of
Secrets would not stay small. The operator's namespace already holds its own state (CA Secrets,
the Lease), and the admission policy lets its ServiceAccount write ConfigMaps there only when they
carry this role's labels.

Layout. Each policy's baselines are spread over at most :data:`SHARDS` ConfigMaps named
``renewal-baseline-<policy>-<hash of its UID>-<shard>`` (a policy re-created under the same name
starts afresh), labelled ``certpolicy.io/managed-by=<policy>`` and
``certpolicy.io/role=renewal-baseline``, with an ownerReference to the policy (the garbage collector
removes them with it). A Secret's shard is a hash of ``namespace/name``; its data key is
``<namespace>.<name>`` (a namespace has no dot; a hash of the name when the key would exceed 253
characters) and its value :meth:`LeafBaseline.to_compact`. At 10,000 Secrets that is about 290
bytes per entry and under 60 KiB per shard (``benchmarks/renewal_baseline.py``); a shard that
would pass :data:`MAX_SHARD_BYTES` takes no new entry, and the policy reports it. 64 shards hold
about 140,000 Secrets per policy; there were 16 (about 35,000) until a policy selecting 100,000
Secrets was measured: an entry written then is found in shard ``its shard % 16`` (64 is a multiple
of 16, so that is where the old hash put it) and moved to its shard on first read.

Reads and writes. A pass works on the policy's copy in memory (:class:`BaselineShards`), read with
one labelled list when the process has none (start, failover, after a conflict). Only the shards
whose entries changed are written, one request each, with the resourceVersion that was read
(409: the copy is dropped and re-read next pass); a shard left empty is deleted. Every request
goes through ``kube/managed.py`` and the write gate: a standby writes nothing.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiException

from certpolicy import API_VERSION, KIND
from certpolicy.kube.managed import delete_managed_configmap, write_managed_configmap
from certpolicy.kube.ownership import MANAGED_BY, ROLE_BASELINE, ROLE_LABEL, Owner
from certpolicy.kube.rawapi import RawClient
from certpolicy.policy.renewal import LeafBaseline

log = logging.getLogger(__name__)

SHARDS = 64
#: The shard count before 64; an entry of that layout lives in shard ``shard_of(...) % LEGACY_SHARDS``.
LEGACY_SHARDS = 16
#: A shard stays well under the API server's 1 MiB object limit: beyond this, no new entry.
MAX_SHARD_BYTES = 768 * 1024
MAX_KEY = 253
LIST_LIMIT = 100  # the list is paged; at most SHARDS objects per policy exist


def entry_key(namespace: str, name: str) -> str:
    """The data key of a Secret's entry: ``namespace.name`` (valid ConfigMap key characters)."""
    key = f"{namespace}.{name}"
    if len(key) <= MAX_KEY:
        return key
    return f"{namespace}._{hashlib.sha256(name.encode()).hexdigest()[:40]}"  # "_": in no Secret name


def shard_of(namespace: str, name: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{namespace}/{name}".encode()).digest()[:4], "big") % SHARDS


def shard_name(owner: Owner, shard: int) -> str:
    stem = owner.name[:40].rstrip(".-")
    uid = hashlib.sha256(owner.uid.encode()).hexdigest()[:8]
    return f"renewal-baseline-{stem}-{uid}-{shard:02d}"


def compact(entry: str | LeafBaseline) -> str:
    """An entry's stored text: held as read until parsed, then as the parsed baseline alone."""
    return entry if isinstance(entry, str) else entry.to_compact()


def shard_bytes(entries: Mapping[str, str | LeafBaseline]) -> int:
    return sum(len(k) + len(compact(v).encode()) for k, v in entries.items())


class BaselinesUnavailable(Exception):
    """A shard could not be read or written; the message names it, never its content."""


@dataclass
class _Shard:
    """One ConfigMap's entries. An entry is its stored text until it is parsed, then the parsed
    baseline alone (the text is written again from it): a policy selecting 100,000 Secrets holds
    one form of each baseline, not both (~300 bytes each)."""

    resource_version: str | None  # None: not in the cluster
    entries: dict[str, str | LeafBaseline]  # data key -> compact baseline text, or the baseline parsed
    size: int = -1  # bytes of the entries' texts, kept current by the store (-1: not counted yet)

    def bytes(self) -> int:
        if self.size < 0:
            self.size = shard_bytes(self.entries)
        return self.size

    def set(self, key: str, text: str | None) -> None:
        """Add, replace (``text``) or remove (None) one entry, keeping the byte count."""
        size, old = self.bytes(), self.entries.pop(key, None)
        if old is not None:
            size -= len(key) + len(compact(old).encode())
        if text is not None:
            self.entries[key] = text
            size += len(key) + len(text.encode())
        self.size = size

    def keep_parsed(self, key: str, baseline: LeafBaseline) -> None:
        """Hold ``baseline`` in place of its entry's text (the byte count stays: the text is the
        same, written again by :meth:`LeafBaseline.to_compact`)."""
        if key in self.entries:
            self.entries[key] = baseline


@dataclass
class BaselineShards:
    """One policy's baselines as last read or written; ``dirty`` shards are written by :meth:`save`."""

    owner: Owner
    namespace: str
    shards: dict[int, _Shard] = field(default_factory=dict)
    dirty: set[int] = field(default_factory=set)
    parsed: dict[str, LeafBaseline] = field(default_factory=dict)  # data key -> baseline, parsed once
    unreadable: int = 0  # entries that were not a baseline (dropped at the next write of their shard)
    damaged: list[str] = field(default_factory=list)  # their Secrets ("namespace/name"), for the report
    #: The size and hash of the selection of the last :meth:`retain`: the same selection again has
    #: nothing to drop. Not the set itself (~230 bytes per Secret, memray at 20,000); a different
    #: selection of the same size and 64-bit hash would only keep stale entries until the next change.
    retained: tuple[int, int] | None = field(default=None, repr=False)

    @classmethod
    def load(cls, raw: RawClient, owner: Owner, namespace: str) -> BaselineShards:
        """Read this policy's shards (one paged, labelled list)."""
        store = cls(owner, namespace)
        names = {shard_name(owner, i): i for i in range(SHARDS)}
        query: dict[str, Any] = {"labelSelector": f"{MANAGED_BY}={owner.name},{ROLE_LABEL}={ROLE_BASELINE}",
                                 "limit": LIST_LIMIT}
        try:
            while True:
                page = raw.get(f"/api/v1/namespaces/{namespace}/configmaps", query)
                for obj in page.get("items") or ():
                    index = names.get(obj["metadata"]["name"])
                    if index is not None:  # another UID's (a deleted policy of the same name): not ours
                        store.shards[index] = _Shard(obj["metadata"]["resourceVersion"], dict(obj.get("data") or {}))
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    break
                query["continue"] = token
        except ApiException as e:
            raise BaselinesUnavailable(f"the renewal baselines in namespace {namespace} could not be read "
                                     f"(HTTP {e.status})") from e
        return store

    def get(self, namespace: str, name: str) -> LeafBaseline | None:
        key = entry_key(namespace, name)
        hit = self.parsed.get(key)
        if hit is not None:
            return hit
        index = shard_of(namespace, name)
        shard = self.shards.get(index)
        text = shard.entries.get(key) if shard else None
        if text is None:
            text = self._migrate(key, index)
        if text is None:
            return None
        if isinstance(text, LeafBaseline):
            hit = text
        else:
            try:
                hit = LeafBaseline.from_compact(text)
            except ValueError:
                self.unreadable += 1
                self.damaged.append(f"{namespace}/{name}")
                return None
            for i in {index, index % LEGACY_SHARDS}:  # where the entry is (see _migrate)
                if (held := self.shards.get(i)) is not None:
                    held.keep_parsed(key, hit)
        self.parsed[key] = hit
        return hit

    def _migrate(self, key: str, index: int) -> str | LeafBaseline | None:
        """The entry ``key`` written under the 16-shard layout, moved to shard ``index`` (both
        shards written by the next save); None when there is none. Left where it is when the new
        shard is full: it is still found there, and ``retain`` keeps it."""
        old = self.shards.get(index % LEGACY_SHARDS) if index >= LEGACY_SHARDS else None
        text = old.entries.get(key) if old else None
        if old is None or text is None:
            return None
        text = compact(text)
        shard = self.shards.setdefault(index, _Shard(None, {}))
        if shard.bytes() + len(key) + len(text.encode()) <= MAX_SHARD_BYTES:
            old.set(key, None)
            shard.set(key, text)
            self.dirty.update((index, index % LEGACY_SHARDS))
        return text

    def put(self, namespace: str, name: str, baseline: LeafBaseline) -> bool:
        """Record ``baseline``; False when its shard is full (the entry is not kept)."""
        key, index = entry_key(namespace, name), shard_of(namespace, name)
        text = baseline.to_compact()
        shard = self.shards.setdefault(index, _Shard(None, {}))
        old = shard.entries.get(key)
        if old is not None and (old == baseline or old == text):
            shard.keep_parsed(key, baseline)
            self.parsed[key] = baseline
            return True
        if shard.bytes() + len(key) + len(text.encode()) - (len(key) + len(compact(old).encode()) if old else 0) \
                > MAX_SHARD_BYTES:
            return False
        shard.set(key, text)
        shard.keep_parsed(key, baseline)  # the baseline alone: its text is written again by save
        self.parsed[key] = baseline
        self.dirty.add(index)
        return True

    def retain(self, live: Iterable[tuple[str, str]]) -> int:
        """Drop the entries of Secrets not in ``live`` (no longer selected, or gone); returns how many.

        Every entry is of a Secret that was live when it was put (or read), so when ``live`` is the
        selection of the last call there is nothing to drop: a pass over an unchanged selection
        then costs one set comparison, not a hash of every Secret's name (at 100,000 Secrets, on
        every pass)."""
        live = frozenset(live)
        mark = (len(live), hash(live))
        if mark == self.retained:
            return 0
        self.retained = mark
        keep: dict[int, set[str]] = {}
        for ns, name in live:
            index, key = shard_of(ns, name), entry_key(ns, name)
            keep.setdefault(index, set()).add(key)
            keep.setdefault(index % LEGACY_SHARDS, set()).add(key)  # not moved yet (see _migrate)
        dropped = 0
        for index, shard in self.shards.items():
            wanted = keep.get(index, set())
            stale = [k for k in shard.entries if k not in wanted]
            for k in stale:
                shard.set(k, None)
                self.parsed.pop(k, None)
            if stale:
                dropped += len(stale)
                self.dirty.add(index)
        return dropped

    def clear(self) -> None:
        """Forget every entry (the guard was turned off): every existing shard is deleted by save."""
        self.retained = None
        for index, shard in self.shards.items():
            if shard.entries or shard.resource_version is not None:
                shard.entries.clear()
                shard.size = 0
                self.dirty.add(index)
        self.parsed.clear()

    def save(self, raw: RawClient) -> int:
        """Write the changed shards (one request each; empty ones deleted); returns how many
        requests were made. Raises BaselinesUnavailable; a 409 means the copy in memory is stale."""
        writes = 0
        for index in sorted(self.dirty):
            shard = self.shards[index]
            name = shard_name(self.owner, index)
            try:
                if not shard.entries:
                    if shard.resource_version is not None:
                        delete_managed_configmap(raw, self.namespace, name, self.owner, role=ROLE_BASELINE,
                                                 resource_version=shard.resource_version)
                        writes += 1
                    del self.shards[index]
                else:
                    result = write_managed_configmap(
                        raw, self.namespace, name, self.owner,
                        {k: compact(v) for k, v in sorted(shard.entries.items())},
                        role=ROLE_BASELINE, owner_reference=_owner_reference(self.owner),
                        expected_version=shard.resource_version)
                    shard.resource_version = result.obj["metadata"]["resourceVersion"]
                    writes += 1
            except ApiException as e:
                raise BaselinesUnavailable(f"the renewal baselines could not be written to ConfigMap "
                                         f"{self.namespace}/{name} (HTTP {e.status})") from e
            self.dirty.discard(index)
        return writes

    @property
    def size(self) -> int:
        return sum(len(s.entries) for s in self.shards.values())


def _owner_reference(owner: Owner) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": KIND, "name": owner.name, "uid": owner.uid}

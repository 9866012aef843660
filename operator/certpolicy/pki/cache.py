"""The engine's caches: bounded FIFO mappings, all registered here, cleared and swept in one place.

The engine keeps parsed certificates, summaries, Secret materials and check results in memory so
that re-checking an unchanged Secret costs a dictionary lookup. Every such cache must be bounded:
the operator runs for weeks against clusters whose Secrets churn, and an unbounded cache is a slow
leak.

Eviction is first-in-first-out rather than least-recently-used: a hit then costs one dict lookup
(no reordering), which matters at hundreds of thousands of lookups a second, and an evicted entry
that is still wanted is simply recomputed once. Size each cache above its working set.

Bounds alone are not enough under churn: a replaced certificate would stay cached until tens of
thousands of newer ones pushed it out. So every module-level cache says, when it is created, how
to tell a live entry (``keep``) from what is known to be live (:class:`Live`: the fingerprints
and content digests in the inventory and trust bundles); :func:`sweep` drops the rest of every
cache at once and :func:`clear_all` empties them (benchmarks, tests). A new cache is one
``FifoCache(..., name=..., keep=...)`` line; nothing else needs to know about it.

A fixed bound is wrong for the caches that every pass looks up once per selected Secret (the
evaluations, the certificate summaries, fingerprints and check results): FIFO eviction under a
scan larger than the bound hits nothing, so a cluster one Secret larger than the bound re-verifies
every chain on every pass (at 100,000 Secrets a Secret change took 18-68 s to reach its event).
Those caches say how many entries one selected Secret needs (``per_secret``) and grow with the
working set (:func:`fit`, called by the evaluator with the size of what it is asked to judge), up
to :data:`MAX_CAPACITY`; a sweep still drops whatever is no longer live, so a larger bound is room,
not memory.
"""

from __future__ import annotations

import functools
import threading
import weakref
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

#: No cache grows beyond this many entries, however large the working set (a bound on what a
#: hostile number of Secrets can make the operator hold in its caches).
MAX_CAPACITY = 1 << 22


@dataclass(frozen=True)
class Live:
    """What is still in use: certificate fingerprints and Secret content digests."""

    fingerprints: frozenset[str] = frozenset()
    digests: frozenset[str] = frozenset()


class FifoCache(Generic[K, V]):
    """Bounded mapping, first-in-first-out eviction (see the module docstring); safe to share
    between threads. ``name`` registers it for :func:`clear_all` and :func:`sweep`; ``keep`` says
    which entries a sweep keeps (without it, a sweep leaves the cache alone); ``per_secret``, how
    many entries each Secret of the working set needs (0: ``maxsize`` is fixed; see :func:`fit`)."""

    __slots__ = ("__weakref__", "_data", "_max", "hits", "keep", "misses", "name", "per_secret")

    def __init__(self, maxsize: int, *, name: str | None = None,
                 keep: Callable[[K, V, Live], bool] | None = None, per_secret: int = 0) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._data: dict[K, V] = {}
        self._max = maxsize
        self.hits = 0
        self.misses = 0
        self.name = name
        self.keep = keep
        self.per_secret = per_secret
        if name is not None:
            with _LOCK:
                _REGISTRY.add(self)

    def get(self, key: K) -> V | None:
        value = self._data.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
        return value

    def put(self, key: K, value: V) -> None:
        # No lock: single dict operations are atomic under the GIL, and a lost race only evicts
        # one entry too many or too few.
        data = self._data
        if len(data) >= self._max and key not in data:
            try:
                del data[next(iter(data))]
            except (StopIteration, KeyError, RuntimeError):
                pass
        data[key] = value

    @property
    def maxsize(self) -> int:
        return self._max

    def reserve(self, entries: int) -> None:
        """Make room for at least ``entries`` (never below the initial bound, never above
        :data:`MAX_CAPACITY`): the working set grew past what the bound was sized for."""
        if entries > self._max:
            self._max = min(entries, MAX_CAPACITY)

    def retain(self, keep: Callable[[K, V], bool]) -> int:
        """Drop every entry for which ``keep(key, value)`` is false; returns how many were dropped."""
        drop = [k for k, v in list(self._data.items()) if not keep(k, v)]
        for k in drop:
            self._data.pop(k, None)
        return len(drop)

    def clear(self) -> None:
        self._data.clear()
        self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


_REGISTRY: weakref.WeakSet[FifoCache[Any, Any]] = weakref.WeakSet()
_LOCK = threading.Lock()


def registered() -> list[FifoCache[Any, Any]]:
    with _LOCK:
        return sorted(_REGISTRY, key=lambda c: c.name or "")


def clear_all() -> None:
    """Empty every registered cache (for benchmarks and tests: a cold start)."""
    for cache in registered():
        cache.clear()


def fit(secrets: int) -> None:
    """Size every registered cache that scales with the working set for ``secrets`` Secrets
    judged per pass (summed over the policies' batches, see ``Evaluator._fit``)."""
    for cache in registered():
        if cache.per_secret:
            cache.reserve(cache.per_secret * secrets)


def sweep(live: Live) -> int:
    """Drop, from every registered cache that has a ``keep`` rule, what ``live`` no longer holds;
    returns how many entries were dropped. Always safe: anything dropped is recomputed on demand."""
    dropped = 0
    for cache in registered():
        if cache.keep is not None:
            dropped += cache.retain(functools.partial(_kept, cache.keep, live))
    return dropped


def _kept(rule: Callable[[Any, Any, Live], bool], live: Live, key: Any, value: Any) -> bool:
    """``rule`` with ``live`` bound: what :meth:`FifoCache.retain` asks of each entry."""
    return rule(key, value, live)

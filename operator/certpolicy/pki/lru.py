"""A small bounded mapping used by every cache in the engine.

The engine keeps parsed certificates, summaries, Secret materials and evaluations in memory so that
re-checking an unchanged Secret costs a dictionary lookup. Every such cache must be bounded: the
operator runs for weeks against clusters whose Secrets churn, and an unbounded cache is a slow leak.

Eviction is first-in-first-out rather than least-recently-used: a hit then costs one dict lookup
(no reordering), which matters at hundreds of thousands of lookups a second, and an evicted entry
that is still wanted is simply recomputed once. Size each cache above its working set.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Bounded mapping (FIFO eviction, see the module docstring); safe to share between threads."""

    __slots__ = ("_data", "_max", "hits", "misses")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._data: dict[K, V] = {}
        self._max = maxsize
        self.hits = 0
        self.misses = 0

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

"""A small bounded mapping used by every cache in the engine.

The engine keeps parsed certificates, summaries, Secret materials and evaluations in memory so that
re-checking an unchanged Secret costs a dictionary lookup. Every such cache must be bounded: the
operator runs for weeks against clusters whose Secrets churn, and an unbounded cache is a slow leak.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from threading import Lock
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LRU(Generic[K, V]):
    """Least-recently-used mapping with a fixed capacity; safe to share between threads."""

    __slots__ = ("_data", "_max", "_lock", "hits", "misses")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be at least 1")
        self._data: OrderedDict[K, V] = OrderedDict()
        self._max = maxsize
        self._lock = Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        try:
            value = self._data[key]
        except KeyError:
            self.misses += 1
            return None
        self.hits += 1
        try:
            self._data.move_to_end(key)
        except KeyError:  # evicted by another thread in between; the value is still right
            pass
        return value

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self._max:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self.hits = self.misses = 0

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

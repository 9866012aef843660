"""One object for each small value that many held objects repeat.

The operator holds a record, a certificate summary, an evaluation and a renewal baseline per
selected Secret. At 100,000 Secrets, a copy of each repeated value in each of them costs tens of
megabytes: the namespace, type and labels of every Secret of a namespace, the EKU list of every
leaf of a CA, the CA's name and fingerprint in every baseline.

One bounded table, for strings and tuples alike. ``sys.intern`` is not used: on CPython 3.12 an
interned string is immortal, and namespace names come and go for as long as the operator runs.
When the table is full it starts again empty: what was handed out stays shared where it is held,
and a hostile variety of values (label sets, say) costs sharing, never memory.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TypeVar, cast

T = TypeVar("T", bound=Hashable)

#: Distinct values kept for sharing (a few hundred bytes each at most).
MAX_SHARED = 4096
_TABLE: dict[object, object] = {}


def shared(value: T) -> T:
    """``value``, or an equal object already handed out (the same one for every equal value)."""
    hit = _TABLE.get(value)
    if hit is not None:
        return cast(T, hit)  # equal to value, so of its type
    if len(_TABLE) >= MAX_SHARED:
        _TABLE.clear()  # a new generation
    _TABLE[value] = value
    return value

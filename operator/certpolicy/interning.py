"""One object for each small value that many held objects repeat.

The operator holds a record, a certificate summary, an evaluation and a renewal baseline per
selected Secret. At 100,000 Secrets, a copy of each repeated value in each of them costs tens of
megabytes: the namespace, type and labels of every Secret of a namespace, the EKU list of every
leaf of a CA, the CA's name and fingerprint in every baseline. Strings go through
:func:`sys.intern` (an interned string is freed with its last user). Other values (tuples) go
through a bounded table: a hostile variety of label sets is merely not shared once the table is
full, and never grows it.
"""

from __future__ import annotations

import sys
from collections.abc import Hashable
from typing import TypeVar, cast

T = TypeVar("T", bound=Hashable)

#: Distinct non-string values kept for sharing (a few hundred bytes each at most).
MAX_SHARED = 4096
_TABLE: dict[object, object] = {}


def shared(value: T) -> T:
    """``value``, or an equal object already handed out (the same one for every equal value)."""
    if type(value) is str:
        return cast(T, sys.intern(cast(str, value)))
    hit = _TABLE.get(value)
    if hit is not None:
        return cast(T, hit)  # equal to value, so of its type
    if len(_TABLE) < MAX_SHARED:
        _TABLE[value] = value
    return value

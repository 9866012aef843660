"""The write gate: whether this process may write to the API server at this instant.

One concept, one home. Every write the operator makes goes through one of two HTTP stacks: the
``kubernetes`` client's (``RawClient``: status, events, bundles, leaves, CAs, rotations) and
kopf's aiohttp session (finalizers on CertificatePolicies). Both ask this gate before they send a
POST, PUT, PATCH or DELETE, and a closed gate raises :class:`NotLeader` instead of sending it.

Without leader election (one replica, ``--no-leader-elect``, the operator run in-process by the
tests) the gate is always open. With it, the gate is open only until a deadline on the monotonic
clock that the Lease elector moves forward on every successful renewal (renewal start +
renewDeadline). The deadline is checked at the instant of each write, not by a thread that has to
notice: a leader frozen by SIGSTOP or cut off from the API server for longer than renewDeadline
finds its gate closed the moment it runs again, before its elector has even looked at the Lease.
Lease writes themselves are not gated (the elector's own ``RawClient(gated=False)``).
"""

from __future__ import annotations

import threading
import time

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class NotLeader(RuntimeError):
    """A write refused because this replica does not hold the leader Lease (any more)."""


class WriteGate:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._elected = False  # False: no leader election, always open
        self._until: float = 0.0  # monotonic deadline while elected

    def require_lease(self) -> None:
        """Leader election is on: closed until :meth:`open_until` is called by the elector."""
        with self._lock:
            self._elected, self._until = True, 0.0

    def open_until(self, deadline: float) -> None:
        """Writes allowed until ``deadline`` (``time.monotonic()``); never moved backwards."""
        with self._lock:
            self._until = max(self._until, deadline)

    def close(self) -> None:
        with self._lock:
            self._until = 0.0

    def is_open(self) -> bool:
        with self._lock:
            return not self._elected or time.monotonic() < self._until

    def check(self, method: str, what: str) -> None:
        """Raise :class:`NotLeader` when ``method`` writes and the gate is closed."""
        if method.upper() in WRITE_METHODS and not self.is_open():
            raise NotLeader(f"not the leader: refused {method.upper()} {what}")


#: The process's gate (one process, one Lease).
WRITE_GATE = WriteGate()

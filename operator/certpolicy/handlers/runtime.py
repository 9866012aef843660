"""The operator's process-wide state, kept in kopf's ``memo``: inventory, clients, wake-ups.

Policy loops are asyncio tasks (kopf daemons); the inventory's watches are threads. A change in
the inventory sets the wake-up event of the policy loops it concerns (the inventory routes it by
each policy's declared ``Reads``) from the watch thread through ``loop.call_soon_threadsafe``;
loops coalesce bursts (a relist of 10,000 Secrets is one pass).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client import ApiClient

from certpolicy.conditions import Condition
from certpolicy.handlers.echoes import LastPass
from certpolicy.handlers.rotation_memory import RotationMemory
from certpolicy.inventory.inventory import Inventory
from certpolicy.kube.baselines import BaselineShards
from certpolicy.kube.events import EventRecorder
from certpolicy.kube.rawapi import RawClient
from certpolicy.pki.cache import FifoCache
from certpolicy.policy.evaluate import Evaluator, retain_caches

log = logging.getLogger("certpolicy.operator")
#: Password-read stores remembered per policy: 4 x handlers.truststores.MAX_TRUSTSTORES judged per pass.
MAX_STORE_READS = 2000
#: Passes that run at once: kopf's handler threads (handlers/settings.py), and the head start's.
PASS_WORKERS = 8
#: How long the first pass waits for the inventory's initial LIST before judging what has arrived.
INVENTORY_SYNC_TIMEOUT = 300.0
SWEEP_INTERVAL = 20.0  # seconds between sweeps of the engine's caches (bounds growth under churn)


@dataclass
class PolicyMemory:
    """What one policy loop remembers between passes (in memory only; derived again after a restart)."""

    signatures: dict[str, tuple[str, ...]] = field(default_factory=dict)  # secret uid -> last reported reasons
    #: "kind/namespace/name" of a trust store or caBundle holder -> its last reported reasons
    store_signatures: dict[str, tuple[str, ...]] = field(default_factory=dict)
    subpath_reported: set[tuple[str, str, str]] = field(default_factory=set)
    last_status_write: float | None = None  # monotonic; None: not yet in this process
    limiter: Any = None  # issuance RateLimiter, per policy
    last_ca_sweep: float | None = None  # monotonic: last look for expired CA Secrets to delete
    #: (policy UID, generation) whose spec.ca.adopt sweep is done (handlers/adopt.py)
    adopt_swept: tuple[str, int | None] | None = None
    rotation: RotationMemory = field(default_factory=RotationMemory)
    #: Stores re-read with a passwordSecretRef, by (kind, namespace, name, key, password Secret, key):
    #: ((store resourceVersion, password resourceVersion), the parsed entry). Certificates only.
    #: A FifoCache like every engine cache: bounded, and emptied by ``pki.cache.clear_all``.
    store_reads: FifoCache[tuple, tuple] = field(
        default_factory=lambda: FifoCache(MAX_STORE_READS, name="store-reads"))
    #: The renewal guard's baselines (kube.baselines.BaselineShards), read once per process.
    baselines: BaselineShards | None = None
    #: What the last pass read and the status it decided on: its own write's echo wakes nothing.
    last_pass: LastPass | None = None


@dataclass
class Runtime:
    api_client: ApiClient
    raw: RawClient
    inventory: Inventory
    recorder: EventRecorder
    evaluator: Evaluator
    #: kopf's event loop, where the policy loops wait; None until kopf runs (``certpolicy run``'s
    #: head start passes before kopf is loaded: no loop waits yet, so there is nothing to wake)
    loop: asyncio.AbstractEventLoop | None
    metrics_port: int | None = None
    owns_inventory: bool = True  # False: the caller started it and stops it (certpolicy run)
    wakeups: dict[str, asyncio.Event] = field(default_factory=dict)
    memories: dict[str, PolicyMemory] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    last_sweep: float | None = None  # monotonic
    #: the webhook's Enforced verdicts by policy (``Webhook.enforced``); None: no webhook runs here
    enforcement: Callable[[str], Condition | None] | None = None
    #: one lock per policy, held by its pass and by its deletion clean-up (see :meth:`exclusive`)
    pass_locks: dict[str, threading.Lock] = field(default_factory=dict)
    #: monotonic time it was made: the first pass waits for the inventory's sync at most
    #: INVENTORY_SYNC_TIMEOUT from then, whoever made it (kopf's start-up or the head start)
    created: float = field(default_factory=time.monotonic)

    def sync_wait_left(self) -> float:
        return max(0.0, INVENTORY_SYNC_TIMEOUT - (time.monotonic() - self.created))

    def sweep_caches(self, min_interval: float = SWEEP_INTERVAL) -> int | None:
        """Drop cached engine state about Secrets that are gone or changed, at most once per
        ``min_interval`` seconds (called after evaluation passes; a sweep over 10,000 Secrets
        takes 60-130 ms). Returns the number of entries dropped, None when it was not time."""
        now = time.monotonic()
        with self.lock:
            if self.last_sweep is None:  # nothing is stale yet at start-up: keep it off that path
                self.last_sweep = now
                return None
            if now - self.last_sweep < min_interval:
                return None
            self.last_sweep = now
        live = [r.material for r in self.inventory.secrets.snapshot().values()]
        live += [r.material for r in self.inventory.named_secrets.snapshot().values()]
        dropped = retain_caches(live, [self.evaluator])
        log.debug("cache sweep: %d live Secrets, %d stale entries dropped", len(live), dropped)
        return dropped

    @contextlib.contextmanager
    def exclusive(self, policy: str, timeout: float = -1) -> Iterator[bool]:
        """Hold the policy's pass lock while the block runs; yields whether it was acquired
        within ``timeout`` seconds (-1: wait as long as it takes).

        Why: kopf stops a deleted policy's daemon by cancelling its task, but a pass already
        running in a worker thread goes on, and it may write the bundle targets after the
        ``deletionPolicy: Delete`` clean-up has taken the policy's CAs out of them. The clean-up
        takes this lock first, so it starts only once the pass in flight has finished. A pass that
        starts afterwards reads the policy as being deleted and writes nothing."""
        with self.lock:
            lock = self.pass_locks.setdefault(policy, threading.Lock())
        acquired = lock.acquire(timeout=timeout)
        try:
            yield acquired
        finally:
            if acquired:
                lock.release()

    def wakeup(self, policy: str) -> asyncio.Event:
        event = self.wakeups.get(policy)
        if event is None:
            event = self.wakeups[policy] = asyncio.Event()
        return event

    def memory(self, policy: str) -> PolicyMemory:
        with self.lock:
            return self.memories.setdefault(policy, PolicyMemory())

    def forget(self, policy: str) -> None:
        """The policy's loop ended: drop its memory and release what the inventory held for it."""
        self.wakeups.pop(policy, None)
        with self.lock:
            self.memories.pop(policy, None)
            lock = self.pass_locks.get(policy)
            if lock is not None and not lock.locked():  # a clean-up holding it keeps it
                del self.pass_locks[policy]
        self.inventory.forget(policy)
        self.evaluator.forget_batch(policy)

    def policy_changed(self, policy: str, body: dict[str, Any] | None) -> None:
        """kopf heard a change of the policy (``body``; None: it is gone): wake its loop unless
        the change is only the echo of the last pass's own status write (handlers/echoes.py)."""
        with self.lock:
            memory = self.memories.get(policy)
        last = memory.last_pass if memory is not None else None
        if body is not None and last is not None and last.echoed_by(body):
            return
        self.wake(policy)

    def wake(self, policy: str) -> None:
        event = self.wakeups.get(policy)
        if event is not None:
            event.set()

    def wake_many(self, policies: list[str]) -> None:
        for policy in policies:
            self.wake(policy)

    def wake_threadsafe(self, policies: list[str]) -> None:
        """From a watch thread: wake these policies' loops."""
        loop = self.loop
        if loop is not None:
            loop.call_soon_threadsafe(self.wake_many, policies)


def new_runtime(api_client: ApiClient, inventory: Inventory, webhook: Any = None, *,
                loop: asyncio.AbstractEventLoop | None = None, owns_inventory: bool = True) -> Runtime:
    """The process-wide state, wired to what wakes the policy loops: the inventory's changes and,
    when a webhook runs here (``certpolicy.webhook.upkeep.Webhook``), its Enforced verdicts.
    One place for kopf's start-up handler and for ``certpolicy run``'s head start."""
    raw = RawClient(api_client)
    runtime = Runtime(api_client=api_client, raw=raw, inventory=inventory, recorder=EventRecorder(raw),
                      evaluator=Evaluator(), loop=loop, owns_inventory=owns_inventory)
    inventory.wake_with(runtime.wake_threadsafe)
    if webhook is not None:
        runtime.enforcement = webhook.enforced
        webhook.wake_with(runtime.wake_threadsafe)  # a changed Enforced verdict wakes its policy
    return runtime

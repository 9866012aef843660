"""``certpolicy run``'s head start: each policy's first pass before kopf is loaded.

Why: kopf, aiohttp and the handlers' registration take ~0.5 s of CPU to import, and on a small
cluster that was a third of the time from process start to a complete status (issue 28: 500
Secrets, 1.3 s). A pass needs none of kopf: it reads the inventory and writes through the same
gated client. So once the inventory has synced and this replica holds the Lease, each policy's
first pass runs here, before kopf is imported. kopf then starts with the runtime built here (its
event memory, engine caches and renewal baselines), and each daemon's first pass re-checks at
warm-cache cost whatever changed meanwhile: a change during the head start is never lost, only
judged once kopf runs.

Which policies: those that carry kopf's finalizer and are not being deleted, i.e. those kopf has
taken on before (a restart, an upgrade, a failover). A policy kopf has never seen gets its
finalizer before its first pass, so that deleting it always finds the clean-up in place; it waits
for kopf, as before. A pass that fails here is logged and left to the policy's loop, which runs it
again at once; the failure is reported as the loop reports one (``report_failure``: Degraded and
Compliant Unknown/ReconcileFailed, with a Warning event), not only logged.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from kubernetes.client import ApiClient, ApiException

from certpolicy.handlers.deletion import FINALIZER
from certpolicy.handlers.reconcile import error_line, policy_pass, report_failure
from certpolicy.handlers.runtime import INVENTORY_SYNC_TIMEOUT, PASS_WORKERS, Runtime, new_runtime
from certpolicy.inventory.inventory import Inventory
from certpolicy.kube.policyobjects import policies_metadata
from certpolicy.kube.writegate import NotLeader

log = logging.getLogger("certpolicy.operator")
#: At most this many policies get a head start (the rest wait for kopf, as before).
MAX_POLICIES = 500
#: How long the head start waits for the Lease once the inventory has synced: the elector asked
#: for it when the LIST began, so a free Lease is held by then; a Lease another replica holds
#: is not waited for (kopf is loaded meanwhile, and the standby waits as before).
LEASE_WAIT = 1.0
#: kopf is imported after this many seconds of head start at most (passes still running go on).
HEAD_START_WAIT = 10.0


def eligible(items: list[dict[str, Any]]) -> list[str]:
    """The policies kopf has taken on (its finalizer) that are not being deleted, by name."""
    names = []
    for item in items:
        meta = item.get("metadata") or {}
        if FINALIZER in (meta.get("finalizers") or ()) and not meta.get("deletionTimestamp") and meta.get("name"):
            names.append(meta["name"])
    return sorted(names)


def head_start(api_client: ApiClient, inventory: Inventory, webhook: Any, stop: threading.Event,
               leading: Callable[[float], bool] | None) -> Runtime:
    """Build the runtime kopf will use and, when some policy is eligible, wait for the inventory's
    sync (``Runtime.sync_wait_left``, or until ``stop``) and run their first passes if this replica
    may write: ``leading(timeout)`` says whether it holds the Lease (None: no leader election)."""
    runtime = new_runtime(api_client, inventory, webhook, owns_inventory=False)
    started = time.monotonic()
    # The policies first (one small LIST): with none to judge, kopf is imported at once, while the
    # inventory's LIST runs, as it was before there was a head start (a first install).
    try:
        items, capped = policies_metadata(runtime.raw, MAX_POLICIES)
    except (ApiException, OSError) as e:
        log.warning("head start: cannot list CertificatePolicies (%s); their loops make the first passes",
                    error_line(e))
        return runtime
    names = eligible(items)
    if not names:
        log.info("head start: no policy an operator has taken on yet; their loops make the first passes")
        return runtime
    while not inventory.wait_synced(0.2):
        if stop.is_set():
            return runtime
        if runtime.sync_wait_left() <= 0:
            log.warning("head start: the inventory has not synced after %.0fs; the policies' loops make the "
                        "first passes", INVENTORY_SYNC_TIMEOUT)
            return runtime
    if stop.is_set():
        return runtime
    if leading is not None and not leading(LEASE_WAIT):
        log.info("head start: not the leader; the policies' loops make their first passes once it is")
        return runtime
    synced = time.monotonic()
    # A thread per pass, as kopf's loops have: a large or slow policy delays no other one. kopf
    # is imported after HEAD_START_WAIT at most; a pass still running then goes on, and its
    # loop's first pass waits for it (the pass lock, Runtime.exclusive).
    pool = ThreadPoolExecutor(max_workers=PASS_WORKERS, thread_name_prefix="head-start")
    futures = [pool.submit(_first_pass, runtime, name) for name in names]
    pool.shutdown(wait=False)
    deadline = synced + HEAD_START_WAIT
    pending = set(futures)
    while pending and not stop.is_set() and time.monotonic() < deadline:
        _, pending = wait(pending, timeout=min(0.2, max(0.0, deadline - time.monotonic())))
    for future in pending:
        future.cancel()  # not started yet: its loop makes the first pass
    passed = sum(1 for f in futures if f.done() and not f.cancelled() and f.result())
    running = sum(1 for f in futures if not f.done())
    log.info("head start: first pass of %d of %d policies in %.2fs (inventory synced %.2fs after the head start "
             "began), before kopf%s%s", passed, len(names), time.monotonic() - synced, synced - started,
             f"; {running} still running, their loops wait for them" if running else "",
             f"; only the first {MAX_POLICIES} policies listed" if capped else "")
    return runtime


def _first_pass(runtime: Runtime, name: str) -> bool:
    runtime.inventory.revive(name)
    try:
        policy_pass(runtime, name)
    except NotLeader:
        log.info("head start: policy %s: the Lease was lost; the next leader's loop makes the pass", name)
        return False
    except Exception as e:  # noqa: BLE001 - reported like a loop's failed pass, and run again by the loop
        log.warning("head start: policy %s: the pass failed (%s); its loop retries it once kopf runs",
                    name, error_line(e))
        try:  # a condition and an event, as the loop reports it: not only this log line
            report_failure(runtime, name, e)
        except Exception as again:  # noqa: BLE001 - the loop's own first pass reports it then
            log.warning("head start: policy %s: the failure could not be reported (%s)", name, error_line(again))
        return False
    return True

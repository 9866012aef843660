"""CertificatePolicy handlers: one evaluation loop (a kopf daemon) per policy.

The loop sleeps until the next instant some certificate crosses a threshold (or a slow safety
re-sync), and wakes early when the policy or something it reads changes: a selected or named
Secret, a Pod's mounts, a namespace's labels, the trust bundle, a bundle target. What it reads is
declared once per pass (``certpolicy.inventory.interest.Reads``); a change wakes only the
policies it concerns. Watching Secrets and Pods is the inventory's job; kopf
handles only our own resource, so it never writes to user objects.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

import kopf

from certpolicy import GROUP, PLURAL, VERSION
from certpolicy.environment import ERROR_RETRY
from certpolicy.handlers.deletion import DELETE, DELETION_FAILED, delete_everything, deletion_policy
from certpolicy.handlers.problems import Problem
from certpolicy.handlers.reconcile import error_line, error_trace, policy_pass, report_failure, report_problem
from certpolicy.handlers.runtime import INVENTORY_SYNC_TIMEOUT, Runtime, new_runtime
from certpolicy.inventory.inventory import Inventory
from certpolicy.kube.client import new_api_client
from certpolicy.kube.writegate import NotLeader
from certpolicy.metrics import COLLECTOR, MetricsUnavailable, configured_addr, configured_port, serve

log = logging.getLogger("certpolicy.operator")
DEBOUNCE = 0.05


@kopf.on.startup()
async def start_runtime(memo: kopf.Memo, **_: Any) -> None:
    # `certpolicy run` starts the inventory before kopf (its LIST overlaps kopf's start-up) and
    # passes it in the memo, with the runtime its head start used (handlers/headstart.py); under
    # `kopf run` or in tests both are made here.
    metrics_port = None
    try:  # first: a taken port stops the operator at once instead of after the inventory's sync
        port = configured_port()
        if port >= 0:
            metrics_port = serve(port, configured_addr())
    except MetricsUnavailable as e:
        raise kopf.PermanentError(str(e)) from None
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime is not None:  # certpolicy run's head start built it
        runtime.loop = asyncio.get_running_loop()  # the policy loops wait here from now on
        inventory = runtime.inventory
    else:
        api_client = getattr(memo, "api_client", None) or new_api_client()
        given = getattr(memo, "inventory", None)
        inventory = given or Inventory(api_client)
        # memo.webhook: certpolicy run's; None under kopf run or with --webhook-port -1
        runtime = new_runtime(api_client, inventory, getattr(memo, "webhook", None),
                              loop=asyncio.get_running_loop(), owns_inventory=given is None)
    inventory.start()  # idempotent: a no-op when `certpolicy run` started it already
    synced = await asyncio.to_thread(inventory.wait_synced, runtime.sync_wait_left())
    if not synced:
        log.warning("inventory not fully synced after %.0fs; policies are evaluated as data arrives",
                    INVENTORY_SYNC_TIMEOUT)
    COLLECTOR.inventory = inventory
    runtime.metrics_port = metrics_port
    memo.runtime = runtime
    log.info("inventory synced: %d TLS Secrets, %d Pods with references, %d namespaces",
             len(inventory.secrets), len(inventory.pods), len(inventory.namespaces))


@kopf.on.cleanup()
async def stop_runtime(memo: kopf.Memo, **_: Any) -> None:
    runtime: Runtime | None = getattr(memo, "runtime", None)
    webhook = getattr(memo, "webhook", None)
    if webhook is not None:
        webhook.wake_with(None)  # this event loop closes; the next kopf run sets its own
    if runtime is not None:
        if runtime.owns_inventory:  # one passed in (certpolicy run) outlives kopf: a standby keeps it warm
            await asyncio.to_thread(runtime.inventory.stop)


@kopf.on.probe(id="watches")
def watches_alive(memo: kopf.Memo, **_: Any) -> str:
    """Liveness: fails when an inventory watch died or went silent (kopf itself may look fine)."""
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime is None:
        return "starting"
    ok, message = runtime.inventory.health()
    if not ok:
        raise kopf.PermanentError(message)
    return message


@kopf.on.event(GROUP, VERSION, PLURAL)
def policy_changed(name: str, type: str | None, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:  # noqa: A002
    """A change of the policy wakes its loop, except the echo of the loop's own status write
    (``Runtime.policy_changed``): a Secret change costs one pass, not two."""
    runtime: Runtime | None = getattr(memo, "runtime", None)
    if runtime is not None:
        runtime.policy_changed(name, None if type == "DELETED" else dict(body))


#: Seconds between two attempts of a failed clean-up. kopf's own delay for an unexpected exception
#: is ``settings.execution.default_backoff`` (60 s); every failure here is raised as a
#: ``TemporaryError`` with this delay instead, and the handler's ``backoff`` says the same, so the
#: log, the condition and docs/operations.md agree.
DELETION_RETRY = 30


@kopf.on.delete(GROUP, VERSION, PLURAL, when=lambda spec, **_: deletion_policy(spec) == DELETE, backoff=DELETION_RETRY)
async def delete_policy(name: str, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """``deletionPolicy: Delete`` only: remove the policy's CAs from every bundle, then its CA
    Secrets; retried until done (kopf's finalizer holds the deletion meanwhile). A failed attempt,
    whatever raised, is ``Degraded=True/DeletionFailed`` on the policy with a Warning event, never
    only a log line. ``Retain`` policies leave everything in place; their finalizer goes as soon as
    their loop stops (see handlers/deletion.py)."""
    runtime: Runtime = memo.runtime
    try:
        failures = await asyncio.to_thread(_clean_up, runtime, name, dict(body))
        problem = (f"{len(failures)} bundle targets still hold this policy's CAs: {'; '.join(failures[:3])}"
                   if failures else None)
        key = failures[:3]
    except NotLeader:
        raise  # kopf is stopping; the next leader runs the clean-up
    except Exception as e:  # noqa: BLE001 - reported on the policy, then retried like any failure
        log.error("cleaning up after policy %s failed: %s", name, error_trace(e))
        problem, key = f"the clean-up failed ({error_line(e)})", [error_line(e)[:100]]
    if problem:
        message = (f"deletionPolicy Delete: {problem}; its CA keys are kept and the clean-up is retried every "
                   f"{DELETION_RETRY} s")
        await asyncio.to_thread(report_problem, runtime, name, Problem(DELETION_FAILED, message), key)
        raise kopf.TemporaryError(message, delay=DELETION_RETRY)
    COLLECTOR.forget(name)  # a failed attempt exported Degraded/DeletionFailed after the loop forgot the policy


#: How long the clean-up waits for a pass of the policy that is still running (see Runtime.exclusive);
#: past it, the clean-up runs anyway (a pass blocked that long is on a dead connection).
CLEAN_UP_WAIT = 60.0


def _clean_up(runtime: Runtime, name: str, body: dict[str, Any]) -> list[str]:
    with runtime.exclusive(name, timeout=CLEAN_UP_WAIT) as waited:
        if not waited:
            log.warning("policy %s: a pass still ran after %gs; cleaning up anyway", name, CLEAN_UP_WAIT)
        return delete_everything(runtime.raw, runtime.inventory, body)


@kopf.daemon(GROUP, VERSION, PLURAL, cancellation_timeout=10.0)
async def evaluate_policy(name: str, memo: kopf.Memo, stopped: kopf.DaemonStopped, **_: Any) -> None:
    runtime: Runtime = memo.runtime
    wake = runtime.wakeup(name)
    runtime.inventory.revive(name)
    try:
        while not stopped:
            wake.clear()
            try:
                next_at = await asyncio.to_thread(policy_pass, runtime, name)
            except NotLeader:
                # The leader Lease is lost and kopf is stopping (certpolicy run): nothing to report,
                # since every write would be refused too. Wait for kopf to stop this daemon.
                log.info("policy %s: not the leader any more; this loop writes nothing until it stops", name)
                await stopped.wait()
                return
            except Exception as e:  # noqa: BLE001 - one bad pass must not end the loop; retried
                log.error("evaluating policy %s failed; retrying in %gs: %s", name, ERROR_RETRY.seconds(),
                          error_trace(e))
                await asyncio.to_thread(report_failure, runtime, name, e)
                next_at = dt.datetime.now(dt.UTC) + ERROR_RETRY.delta()
            if next_at is None:
                return  # the policy is gone
            delay = max(0.0, (next_at - dt.datetime.now(dt.UTC)).total_seconds())
            waits = [asyncio.ensure_future(wake.wait()), asyncio.ensure_future(stopped.wait())]
            try:
                await asyncio.wait(waits, timeout=delay, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            if not stopped:
                await asyncio.sleep(DEBOUNCE)  # coalesce a burst of changes into one pass
    finally:
        runtime.forget(name)
        COLLECTOR.forget(name)

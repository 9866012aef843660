"""The ``deletionPolicy: Delete`` clean-up waits for a pass of the policy still in flight.

kopf stops a deleted policy's daemon by cancelling its task, but the pass it awaits runs in a
worker thread and goes on: it could write the bundle targets (the CA, its truststores) after the
clean-up had taken the policy's CAs out of them. CI once saw a deleted policy's JKS truststore
left in its ConfigMap (``test_false_green``'s Delete test, not reproduced in 78 runs here); such a
pass is the one writer that can run alongside the clean-up. The clean-up now holds the policy's
pass lock (``Runtime.exclusive``), so it starts only once that pass has finished.
"""

from __future__ import annotations

import asyncio
import threading
import time

from certpolicy.handlers import policy as handlers
from certpolicy.handlers import reconcile
from certpolicy.handlers.runtime import Runtime


def _runtime() -> Runtime:
    return Runtime(api_client=None, raw=None, inventory=None, recorder=None,  # type: ignore[arg-type]
                   evaluator=None, loop=asyncio.new_event_loop())  # type: ignore[arg-type]


def test_the_clean_up_starts_only_after_the_pass_in_flight_has_finished(monkeypatch):
    runtime, order = _runtime(), []
    in_pass = threading.Event()

    def slow_pass(_runtime, name):
        order.append(f"pass {name} begins")
        in_pass.set()
        time.sleep(0.3)  # the pass's own work (a bundle write), not a wait for a state
        order.append(f"pass {name} ends")

    monkeypatch.setattr(reconcile, "reconcile_policy", slow_pass)
    monkeypatch.setattr(handlers, "delete_everything", lambda _raw, _inv, body: order.append("clean-up") or [])
    passing = threading.Thread(target=reconcile.policy_pass, args=(runtime, "p"))
    passing.start()
    assert in_pass.wait(5)
    assert handlers._clean_up(runtime, "p", {}) == []  # noqa: SLF001 - what delete_policy runs in its thread
    passing.join(5)
    assert order == ["pass p begins", "pass p ends", "clean-up"]


def test_another_policy_s_pass_does_not_hold_the_clean_up(monkeypatch):
    runtime = _runtime()
    with runtime.exclusive("other") as held:
        assert held
        monkeypatch.setattr(handlers, "delete_everything", lambda *_: ["done"])
        started = time.monotonic()
        assert handlers._clean_up(runtime, "p", {}) == ["done"]  # noqa: SLF001
        assert time.monotonic() - started < 1


def test_a_pass_stuck_past_the_bound_does_not_hold_the_clean_up_for_ever(monkeypatch):
    runtime = _runtime()
    monkeypatch.setattr(handlers, "CLEAN_UP_WAIT", 0.1)
    monkeypatch.setattr(handlers, "delete_everything", lambda *_: [])
    with runtime.exclusive("p"):
        assert handlers._clean_up(runtime, "p", {}) == []  # noqa: SLF001 - ran after 0.1 s anyway

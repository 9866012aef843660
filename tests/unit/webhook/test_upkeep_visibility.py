"""Webhook upkeep failures and policies beyond the configuration's limit show in metrics, not only in a log line."""

from __future__ import annotations

import threading
import types

from certpolicy import metrics
from certpolicy.webhook import registration
from certpolicy.webhook.upkeep import Webhook


def _webhook(enforcing: list, upkeep=None) -> Webhook:
    wh = Webhook.__new__(Webhook)
    wh._left_out, wh._bundle_since, wh.operator_user, wh.namespace = [], None, None, "certpolicy-system"
    wh.server = types.SimpleNamespace(loaded=threading.Event())
    wh.server.loaded.set()
    wh.index = types.SimpleNamespace(synced=True, enforcing=lambda: enforcing)
    wh._client_config, wh.raw = None, None
    wh._live, wh._serving_cert, wh._enforced, wh._notify = None, None, {}, None
    wh._enforced_lock = threading.Lock()
    if upkeep is not None:
        wh.upkeep = upkeep
    return wh


def test_policies_beyond_the_limit_are_counted(monkeypatch):
    seen = {}
    monkeypatch.setattr(registration, "configuration", lambda policies, *a: {"webhooks": [], "n": len(policies)})
    monkeypatch.setattr(registration, "read", lambda raw: None)
    monkeypatch.setattr(registration, "apply", lambda raw, body, existing: seen.setdefault("body", body) and None)
    policies = [types.SimpleNamespace(name=f"p{i:03d}") for i in range(registration.MAX_POLICIES + 3)]
    wh = _webhook(policies)
    wh._register("bundle")
    assert metrics.WEBHOOK_POLICIES_UNREGISTERED._value.get() == 3
    assert wh._left_out == ["p064", "p065", "p066"]
    _webhook(policies[:2])._register("bundle")
    assert metrics.WEBHOOK_POLICIES_UNREGISTERED._value.get() == 0


def test_a_failing_upkeep_sets_the_metric_and_logs_no_key(caplog):
    pem = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----"
    wh = _webhook([])
    wh._stop, wh._wake, wh._rotating, wh.propagation = threading.Event(), threading.Event(), False, 30.0

    def failing() -> None:
        wh._stop.set()
        raise RuntimeError(f"could not write {pem}")

    wh.upkeep = failing
    wh._wake.set = lambda: None
    wh._wake.wait = lambda _t: None
    wh._run()
    assert metrics.WEBHOOK_UPKEEP_FAILING._value.get() == 1
    assert "PRIVATE KEY" not in caplog.text and "MIIEvQ" not in caplog.text
    assert "webhook upkeep failed" in caplog.text

    wh._stop.clear()
    wh.upkeep = lambda: wh._stop.set()
    wh._run()
    assert metrics.WEBHOOK_UPKEEP_FAILING._value.get() == 0

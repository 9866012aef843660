"""The inventory's liveness answer: how long a watch may stay silent."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import kubernetes

from certpolicy.inventory.inventory import MIN_SILENCE_MARGIN, WATCH_SILENCE_LIMIT_ENV, Inventory


def _inventory(monkeypatch, silent_for: float, watch_timeout: int) -> Inventory:
    inv = Inventory(kubernetes.client.ApiClient(kubernetes.client.Configuration()), watch_timeout=watch_timeout)
    alive = threading.Thread(target=lambda: None)
    monkeypatch.setattr(alive, "is_alive", lambda: True)
    watcher = SimpleNamespace(name="pods", stopped=False, _thread=alive, last_activity=time.monotonic() - silent_for)
    monkeypatch.setattr(inv, "all_watchers", lambda: [watcher])
    return inv


def test_a_silence_limit_below_the_watch_period_is_raised_to_it(monkeypatch):
    """A quiet cluster sends nothing for a whole watch period: a 3 s limit under a 240 s watch
    timeout would fail /healthz (and restart the Pod) on every quiet minute."""
    monkeypatch.setenv(WATCH_SILENCE_LIMIT_ENV, "3")
    assert _inventory(monkeypatch, silent_for=60, watch_timeout=240).health() == (True, "ok")
    ok, why = _inventory(monkeypatch, silent_for=240 + MIN_SILENCE_MARGIN + 5, watch_timeout=240).health()
    assert not ok and "watch of pods silent" in why


def test_a_limit_above_the_watch_period_is_kept(monkeypatch):
    monkeypatch.setenv(WATCH_SILENCE_LIMIT_ENV, "5")
    assert _inventory(monkeypatch, silent_for=4, watch_timeout=2).health() == (True, "ok")
    assert not _inventory(monkeypatch, silent_for=6, watch_timeout=2).health()[0]

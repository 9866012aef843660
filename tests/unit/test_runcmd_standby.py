"""``certpolicy run``'s standby wait when the Lease was lost before kopf ran.

The head start (handlers/headstart.py) runs between taking the Lease and starting kopf, for as long
as the first passes take (seconds at 100,000 Secrets). An elector that loses the Lease meanwhile
stays lost, so waiting on it would keep the replica a standby for ever, writing nothing and saying
nothing. ``until_leader`` asks again with the elector's next term. The elector here is a stand-in
(no API is involved: the real elector's ``next_term`` is tested against the API server in
tests/integration/test_leader_election.py).
"""

from __future__ import annotations

import threading

from certpolicy.runcmd import _Standby


class _Elector:
    def __init__(self, leads: bool, lost: bool, successor: _Elector | None = None) -> None:
        self.leading, self.lost = threading.Event(), threading.Event()
        if leads:
            self.leading.set()
        if lost:
            self.lost.set()
        self.successor, self.started, self.stopped = successor, False, False
        self.on_observed = None

    def wait_leading(self, timeout: float) -> bool:
        return self.leading.wait(timeout)

    def next_term(self) -> _Elector:
        assert self.successor is not None, "asked for a next term it should not need"
        return self.successor

    def start(self) -> _Elector:
        self.started = True
        return self

    def stop(self, release: bool) -> None:
        self.stopped = True


class _Health:
    def __init__(self) -> None:
        self.stopped = False

    def clear(self) -> None:
        pass

    def stop(self) -> None:
        self.stopped = True


def test_a_lease_lost_before_kopf_runs_is_asked_for_again():
    successor = _Elector(leads=True, lost=False)
    standby = _Standby(_Elector(leads=False, lost=True, successor=successor), _Health())  # type: ignore[arg-type]
    stop = threading.Event()
    threading.Timer(5.0, stop.set).start()  # without a next term it waits until stopped: None
    got = standby.until_leader(stop)
    stop.set()
    assert got is successor and successor.started and standby.health.stopped


def test_a_standby_that_never_led_keeps_waiting_on_its_elector_until_stopped():
    stop = threading.Event()
    elector = _Elector(leads=False, lost=False)
    standby = _Standby(elector, _Health())  # type: ignore[arg-type]
    threading.Timer(0.5, stop.set).start()
    assert standby.until_leader(stop) is None and elector.stopped  # no next term asked for


def test_the_standby_health_says_leader_once_the_lease_is_held_and_standby_again_when_lost():
    """Between taking the Lease and kopf serving /healthz, the replica runs the head start's
    passes: its /healthz says so instead of "standby" (and its own renewals are no holder to wait for)."""
    import json
    import urllib.request

    from certpolicy.localcluster.cluster import free_port
    from certpolicy.standby import StandbyHealth

    class Healthy:
        def health(self, _max_silence):
            return True, "ok"

    url = f"http://127.0.0.1:{free_port()}/healthz"
    health = StandbyHealth(url, Healthy(), "kube-system/certpolicy-operator").start()  # type: ignore[arg-type]
    try:
        def get() -> dict:
            with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
                return json.loads(resp.read())

        health.observe("other-replica", "")
        assert get()["role"] == "standby" and "other-replica" in get()["reason"]
        health.leading()
        health.observe("this-replica", "")  # its own renewal
        got = get()
        assert got["role"] == "leader" and "first passes before kopf" in got["reason"], got
        health.lost()  # what runcmd's on_lost does
        health.observe("other-replica", "")
        assert get()["role"] == "standby" and "other-replica" in get()["reason"]
    finally:
        health.stop()

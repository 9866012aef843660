"""The webhook's port opens when a policy first enforces, not at start-up (webhook/upkeep.py).

Until then no entry can send the API server to it, so an operator with no enforcing policy makes
its first verdicts without importing aiohttp (~0.1 s of a 500-Secret start). The configuration is
kept current all the same: entries a previous run left are removed without a server.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import types

from certpolicy.webhook import registration, serving
from certpolicy.webhook.upkeep import Webhook


class _Server:
    def __init__(self) -> None:
        self.loaded = threading.Event()
        self.certificates: list[bytes] = []
        self.bound_port = 8443

    def load_certificate(self, cert_pem: bytes, key_pem: bytes) -> None:
        self.certificates.append(cert_pem)
        self.loaded.set()


def _webhook(enforcing: list) -> Webhook:
    wh = Webhook.__new__(Webhook)
    wh.namespace, wh.operator_user, wh._serving_version, wh._serving_cert = "certpolicy-system", None, None, None
    wh._left_out, wh._bundle_since, wh._live = [], None, None
    wh.server = _Server()
    wh.index = types.SimpleNamespace(synced=True, enforcing=lambda: enforcing)
    wh.inventory = types.SimpleNamespace(secrets={})
    wh.raw = None
    wh.endpoint = types.SimpleNamespace(service=None, hosts=lambda _ns: ("127.0.0.1",), port=8443)
    return wh


def test_no_enforcing_policy_loads_no_serving_certificate(monkeypatch):
    reads = []
    monkeypatch.setattr(serving, "load", lambda raw, ns: reads.append(ns))
    wh = _webhook([])
    wh._load_serving()
    assert reads == [] and not wh.server.loaded.is_set()


def test_the_first_enforcing_policy_opens_the_port(monkeypatch, tmp_path):
    import certgen

    ca = certgen.root("webhook test CA")
    issued = certgen.leaf(ca, "127.0.0.1")
    current = types.SimpleNamespace(cert_pem=certgen.pem(issued), key_pem=b"key", resource_version="7")
    monkeypatch.setattr(serving, "load", lambda raw, ns: current)
    wh = _webhook([types.SimpleNamespace(name="deny-all")])
    wh._load_serving()
    assert wh.server.certificates == [current.cert_pem]
    assert wh._serving_version == "7"


def test_no_enforcing_policy_still_clears_entries_a_previous_run_left(monkeypatch):
    stale = {"metadata": {"name": registration.CONFIG_NAME}, "webhooks": [{"name": "gone.secret.certpolicy.io"}]}
    written = []
    monkeypatch.setattr(registration, "read", lambda raw: stale)
    monkeypatch.setattr(registration, "apply", lambda raw, body, existing: written.append(body) or body)
    wh = _webhook([])
    wh._register("bundle")
    assert [w["webhooks"] for w in written] == [[]]


def test_entries_wait_for_the_open_port(monkeypatch):
    written = []
    monkeypatch.setattr(registration, "read", lambda raw: None)
    monkeypatch.setattr(registration, "apply", lambda raw, body, existing: written.append(body) or body)
    wh = _webhook([types.SimpleNamespace(name="deny-all")])
    wh._register("bundle")
    assert written == []  # an entry before the port is open would send the API server nowhere


def test_the_webhook_modules_do_not_import_aiohttp():
    code = ("import sys, certpolicy.webhook.upkeep, certpolicy.webhook.registration; "
            "sys.exit(1 if 'aiohttp' in sys.modules else 0)")
    proc = subprocess.run([sys.executable, "-c", code], env=dict(os.environ), capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:] or "aiohttp was imported"


def test_a_port_that_cannot_be_opened_is_tried_again_and_never_counts_as_open():
    """``loaded`` says the port is open: the upkeep writes entries only then, and ``Enforced`` is
    judged from them. A listen that failed (the port held by another program) used to leave it set,
    so the next upkeep registered entries for a port this process does not serve, and reported the
    policy enforced."""
    import socket

    import certgen
    from certpolicy.webhook.server import WebhookServer

    leaf = certgen.leaf(certgen.root("webhook test CA"), "127.0.0.1")
    blocker = socket.socket()  # no SO_REUSEPORT: the server cannot share the port
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    port = blocker.getsockname()[1]
    server = WebhookServer("127.0.0.1", port, lambda *_: None).start()
    try:
        try:
            server.load_certificate(certgen.pem(leaf), leaf.key_pem())
        except OSError:
            pass
        assert not server.loaded.is_set()
        blocker.close()
        server.load_certificate(certgen.pem(leaf), leaf.key_pem())
        assert server.loaded.is_set() and server.bound_port == port
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    finally:
        blocker.close()
        server.stop()

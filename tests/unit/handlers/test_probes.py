"""Rotation probes: the allow-list, and what a handshake proves (real loopback TLS servers)."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
import tempfile
import threading
from pathlib import Path

import pytest

import certgen
from certpolicy.handlers.castore import CASecret
from certpolicy.handlers.probes import AllowList, canary_handshake, served_by
from certpolicy.pki.fingerprint import certificate_fingerprint
from certpolicy.pki.issue import create_ca
from certpolicy.rotation import Probe


def test_default_allow_list_is_the_cluster_service_names(monkeypatch):
    monkeypatch.delenv("CERTPOLICY_PROBE_ALLOW", raising=False)
    monkeypatch.setenv("CERTPOLICY_CLUSTER_DOMAIN", "corp.local")
    allow = AllowList.from_env()
    assert allow.allows("partner.hl7.svc") and allow.allows("partner.hl7.svc.corp.local")
    for host in ("partner.example.com", "10.0.0.1", "169.254.169.254", "svc", "localhost", "evil.svc.example.com"):
        assert not allow.allows(host), host


def test_patterns_and_cidrs():
    allow = AllowList.parse("*.partner.example.com, gw.example.org, 10.1.0.0/16, fd00::/8")
    assert allow.allows("a.partner.example.com") and allow.allows("a.b.partner.example.com")
    assert not allow.allows("partner.example.com")
    assert allow.allows("GW.example.org.") and not allow.allows("x.gw.example.org")
    assert allow.allows("10.1.2.3") and not allow.allows("10.2.0.1")
    assert allow.allows("fd00::1") and not allow.allows("::1")


@pytest.fixture(scope="module")
def ca() -> CASecret:
    return CASecret("ca", create_ca("probe test CA", validity=dt.timedelta(days=1)))


class Server:
    """A loopback TLS server; ``require`` None: no client certificate asked, else the CA it trusts."""

    def __init__(self, require: bytes | None, handshake: bool = True, serve: tuple[certgen.Issued, ...] = ()):
        """``serve``: the leaf and the intermediates sent with it (default: a leaf from a CA of its own)."""
        serve = serve or (certgen.leaf(certgen.root("server CA"), "localhost", dns_names=["localhost"]),)
        self.dir = tempfile.TemporaryDirectory()
        Path(self.dir.name, "c.pem").write_bytes(b"".join(c.pem for c in serve))
        Path(self.dir.name, "k.pem").write_bytes(serve[0].key_pem())
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.load_cert_chain(str(Path(self.dir.name, "c.pem")), str(Path(self.dir.name, "k.pem")))
        if require is not None:
            self.ctx.verify_mode = ssl.CERT_REQUIRED
            self.ctx.load_verify_locations(cadata=require.decode())
        self.handshake = handshake
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.handshake:
                threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                tls.settimeout(3)
                tls.recv(1)
        except (ssl.SSLError, OSError):
            pass

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()
        self.dir.cleanup()


@pytest.fixture
def loopback_allowed(monkeypatch):
    monkeypatch.setenv("CERTPOLICY_PROBE_ALLOW", "127.0.0.1/32")


def probe(port: int, timeout: float = 3) -> Probe:
    return Probe("127.0.0.1", port, timeout=dt.timedelta(seconds=timeout))


def test_a_server_that_trusts_the_ca_accepts(ca, loopback_allowed):
    server = Server(require=ca.key_pair.cert_pem)
    try:
        res = canary_handshake(probe(server.port), ca, dt.datetime.now(dt.UTC))
        assert res.accepted, res.message
    finally:
        server.close()


def test_a_server_that_never_asks_for_a_client_certificate_is_no_success(ca, loopback_allowed):
    server = Server(require=None)
    try:
        res = canary_handshake(probe(server.port), ca, dt.datetime.now(dt.UTC))
        assert not res.accepted and res.message.startswith("ProbeNoClientAuth"), res.message
    finally:
        server.close()


def test_a_server_that_trusts_another_ca_rejects(ca, loopback_allowed):
    server = Server(require=certgen.root("someone else").pem)
    try:
        res = canary_handshake(probe(server.port), ca, dt.datetime.now(dt.UTC))
        assert not res.accepted and "ProbeNoClientAuth" not in res.message, res.message
    finally:
        server.close()


def test_a_host_off_the_allow_list_is_never_connected_to(ca, monkeypatch):
    monkeypatch.delenv("CERTPOLICY_PROBE_ALLOW", raising=False)
    server = Server(require=ca.key_pair.cert_pem)
    try:
        res = canary_handshake(probe(server.port), ca, dt.datetime.now(dt.UTC))
        assert not res.accepted and res.message.startswith("ProbeNotAllowed"), res.message
        assert server.conns == []
    finally:
        server.close()


def test_a_port_that_never_answers_is_bounded_by_the_timeout(ca, loopback_allowed):
    """The probe's own timeout ends the wait for a peer that accepts TCP and never answers: the
    handshake fails with TimeoutError (not another error), no earlier than that timeout (so it was
    the timeout that fired), and the call returns (in a thread, waited for with a deadline 30 times
    the timeout: without the bound it would wait forever, as the server never closes)."""
    import time

    server = Server(require=None, handshake=False)  # accepts TCP, never says a word
    results: list = []

    def run() -> None:
        start = time.monotonic()
        res = canary_handshake(probe(server.port, timeout=1), ca, dt.datetime.now(dt.UTC))
        results.append((res, time.monotonic() - start))

    try:
        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        worker.join(30)
        assert not worker.is_alive(), "canary_handshake did not return: the probe timeout is not applied"
        ((res, elapsed),) = results
        assert not res.accepted and res.message == "connection failed: TimeoutError", res.message
        assert elapsed >= 0.95, f"returned after {elapsed:.2f}s: something other than the 1 s timeout ended it"
        assert len(server.conns) == 1  # connected: the bound held the handshake, not the connect
    finally:
        server.close()


# ---- what the endpoint serves (step 4) ---------------------------------------------------------


def test_served_by_names_the_ca_a_served_chain_depends_on():
    """A served certificate that is the CA or is signed by it; the old CA (listed first) wins; its
    validity and EKU do not matter (an expired old-CA leaf still depends on the old CA); a third
    CA's chain and unparsable bytes lead to none."""
    old, new, third = certgen.root("old CA"), certgen.root("new CA"), certgen.root("partner CA")
    cas = [old.cert, new.cert]
    fp = certificate_fingerprint
    assert served_by([certgen.leaf(new).der], cas) == fp(new.cert)
    assert served_by([certgen.leaf(old).der], cas) == fp(old.cert)
    expired = certgen.leaf(old, not_before=certgen.utcnow() - dt.timedelta(days=9),
                           not_after=certgen.utcnow() - dt.timedelta(days=1), eku=("clientAuth",))
    assert served_by([expired.der], cas) == fp(old.cert)
    inter = certgen.intermediate(old)
    assert served_by([certgen.leaf(inter).der, inter.der], cas) == fp(old.cert)
    assert served_by([certgen.leaf(new).der, old.der], cas) == fp(old.cert)  # touches the old CA: old
    assert served_by([certgen.leaf(third).der], cas) is None
    assert served_by([b"not a certificate"], cas) is None and served_by([], cas) is None


def test_a_partner_serving_its_own_ca_is_reported_as_another_ca(ca, loopback_allowed):
    old = certgen.root("old CA")
    partner = certgen.leaf(certgen.root("partner CA"), "localhost", dns_names=["localhost"])
    server = Server(require=ca.key_pair.cert_pem, serve=(partner,))
    try:
        res = canary_handshake(probe(server.port), ca, dt.datetime.now(dt.UTC), [old.cert, ca.key_pair.cert])
        assert res.accepted and res.served_ca is None and res.served_other, res
        assert "serves a chain to another CA" in res.message
    finally:
        server.close()


def test_a_server_serving_an_old_ca_chain_through_an_intermediate_is_reported_as_old(ca, loopback_allowed):
    old = certgen.root("old CA")
    inter = certgen.intermediate(old)
    leaf = certgen.leaf(inter, "localhost", dns_names=["localhost"])
    server = Server(require=ca.key_pair.cert_pem, serve=(leaf, inter))
    try:
        res = canary_handshake(probe(server.port), ca, dt.datetime.now(dt.UTC), [old.cert, ca.key_pair.cert])
        assert res.served_ca == certificate_fingerprint(old.cert) and not res.served_other, res
    finally:
        server.close()

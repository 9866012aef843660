"""The chain a TLS server sent, both ways: the handshake's Certificate message (Python < 3.13, this
interpreter) and the public ``SSLSocket.get_unverified_chain`` (3.13+, another interpreter when
one is installed). Real loopback TLS servers sending a leaf and its intermediate."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

import certgen
from certpolicy.handlers import peerchain
from certpolicy.handlers.peerchain import HandshakeCertificates, certificates_in, peer_chain


class ChainServer:
    """Serves ``leaf`` + ``intermediates`` on loopback at one TLS version until closed."""

    def __init__(self, chain: tuple[certgen.Issued, ...], version: ssl.TLSVersion):
        self.dir = tempfile.TemporaryDirectory()
        Path(self.dir.name, "c.pem").write_bytes(b"".join(c.pem for c in chain))
        Path(self.dir.name, "k.pem").write_bytes(chain[0].key_pem())
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ctx.minimum_version = self.ctx.maximum_version = version
        self.ctx.load_cert_chain(str(Path(self.dir.name, "c.pem")), str(Path(self.dir.name, "k.pem")))
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            try:
                with self.ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.settimeout(3)
                    tls.recv(1)
            except (ssl.SSLError, OSError):
                pass

    def close(self) -> None:
        self.sock.close()
        self.dir.cleanup()


@pytest.fixture(scope="module")
def served() -> tuple[certgen.Issued, ...]:
    inter = certgen.intermediate(certgen.root("peerchain root"))
    return certgen.leaf(inter, "localhost", dns_names=["localhost"]), inter


def _client() -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_the_handshake_certificate_message_gives_leaf_and_intermediate(served, version, monkeypatch):
    """The path of Python 3.11/3.12 (forced off the public method when this Python has it)."""
    monkeypatch.setattr(peerchain, "public_chain_api", lambda: False)
    server = ChainServer(served, version)
    try:
        ctx, rec = _client(), HandshakeCertificates()
        ctx._msg_callback = lambda _conn, *args: rec.seen(*args)  # type: ignore[attr-defined]  # noqa: SLF001
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock, ctx.wrap_socket(sock) as tls:
            assert tls.version() == {ssl.TLSVersion.TLSv1_2: "TLSv1.2", ssl.TLSVersion.TLSv1_3: "TLSv1.3"}[version]
            assert peer_chain(tls, rec) == [served[0].der, served[1].der]
            # Nothing recorded, or a recorded message that does not start with the public leaf:
            # only the leaf (from the public getpeercert) is used.
            assert peer_chain(tls) == [served[0].der]
            rec.chain = [served[1].der]
            assert peer_chain(tls, rec) == [served[0].der]
    finally:
        server.close()


def test_a_malformed_certificate_message_gives_nothing():
    cert = certgen.leaf(certgen.root("r")).der
    n3 = len(cert).to_bytes(3, "big")
    tls12 = b"\x0b\x00\x00\x00" + (len(cert) + 3).to_bytes(3, "big") + n3 + cert
    assert certificates_in(tls12, tls13=False) == [cert]
    tls13 = b"\x0b\x00\x00\x00" + b"\x00" + (len(cert) + 5).to_bytes(3, "big") + n3 + cert + b"\x00\x00"
    assert certificates_in(tls13, tls13=True) == [cert]
    for bad in (b"", b"\x0b\x00\x00\x00", tls12[:-1], tls12[:10], b"\x0b\x00\x00\x00\x00\x00\x03\x00\x00\x00",
                b"\x0b\x00\x00\x00\xff\xff\xff"):
        assert certificates_in(bad, tls13=False) == [], bad
    assert certificates_in(tls13[:-1], tls13=True) == []
    assert certificates_in(b"\x0b\x00\x00\x00\x05", tls13=True) == []
    many = b"".join(n3 + cert for _ in range(peerchain.MAX_CERTIFICATES + 5))
    capped = certificates_in(b"\x0b\x00\x00\x00" + len(many).to_bytes(3, "big") + many, tls13=False)
    assert len(capped) == peerchain.MAX_CERTIFICATES


def _python_with_public_chain_api() -> str | None:
    """An interpreter with ``ssl.SSLSocket.get_unverified_chain`` (3.13+): this one, or another
    installed one (only the standard library is needed)."""
    if sys.version_info >= (3, 13):
        return sys.executable
    candidates = [shutil.which(f"python3.{m}") for m in range(13, 20)]
    candidates += sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[3-9]*/bin/python3")))
    for exe in filter(None, candidates):
        try:
            ok = subprocess.run([exe, "-c", "import ssl,sys; sys.exit(not hasattr(ssl.SSLSocket, 'get_unverified_chain'))"],
                                capture_output=True, timeout=30).returncode == 0
        except (OSError, subprocess.TimeoutExpired):
            continue
        if ok:
            return exe
    return None


_CLIENT_313 = """
import importlib.util, socket, ssl, sys
spec = importlib.util.spec_from_file_location("peerchain", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
assert mod.public_chain_api()
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
with socket.create_connection(("127.0.0.1", int(sys.argv[2])), timeout=5) as s, ctx.wrap_socket(s) as tls:
    print(" ".join(c.hex() for c in mod.peer_chain(tls)))
"""


def test_the_public_get_unverified_chain_gives_leaf_and_intermediate(served):
    """The path of Python 3.13+: the module run by such an interpreter against a real server."""
    exe = _python_with_public_chain_api()
    if exe is None:
        pytest.skip("no Python 3.13+ interpreter installed to run the public-API path")
    server = ChainServer(served, ssl.TLSVersion.TLSv1_3)
    try:
        out = subprocess.run([exe, "-c", _CLIENT_313, peerchain.__file__, str(server.port)],
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        assert out.stdout.split() == [served[0].der.hex(), served[1].der.hex()]
    finally:
        server.close()

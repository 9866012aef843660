"""An mTLS workload as a process, for rotation tests: what the rotation's promise is about.

It serves TLS on ``--listen`` with its leaf (``--secret``) and requires a client certificate that
chains to its trust bundle (``--configmap``, key ``ca.crt``); every 100 ms it connects to
``--peer`` presenting the same leaf and verifying the peer against the same bundle, and counts
the handshakes that work and those that fail.

It does not hold API objects: like a program reading kubelet-synced files, it re-reads the Secret
and the ConfigMap from the API every ``--period`` seconds (starting ``--phase`` seconds late, so
two workloads are out of phase) and *uses* what it read only ``--lag`` seconds later. So at any
instant it presents the leaf and trusts the bundle the API held between ``lag`` and
``lag + period`` seconds before.

Counts go to the JSON file ``--status`` (rewritten twice a second): ``ok``, ``fail``, the last
failures (time and TLS reason, never certificate data) and ``loads`` (contents applied).

Usage: python mtls_workload.py --namespace NS --secret S --configmap C --listen P --peer P
       --lag 1.0 --period 0.5 --phase 0 --status FILE
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import ssl
import sys
import tempfile
import threading
import time
from pathlib import Path

from kubernetes import client, config


class Workload:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        config.load_kube_config()
        self.core = client.CoreV1Api()
        self.dir = tempfile.TemporaryDirectory(prefix="mtls-workload-")
        self.pending: list[tuple[float, bytes, bytes, str]] = []
        self.current: tuple[bytes, bytes, str] | None = None
        self.server_ctx: ssl.SSLContext | None = None
        self.client_ctx: ssl.SSLContext | None = None
        self.lock = threading.Lock()
        self.ok = self.fail = self.loads = 0
        self.errors: list[str] = []
        self.stop = threading.Event()

    # ---- reading the API, with a lag ------------------------------------------------------------
    def fetch(self) -> None:
        time.sleep(self.args.phase)
        while not self.stop.is_set():
            try:
                secret = self.core.read_namespaced_secret(self.args.secret, self.args.namespace)
                cm = self.core.read_namespaced_config_map(self.args.configmap, self.args.namespace)
                item = (time.monotonic(), base64.b64decode(secret.data["tls.crt"]),
                        base64.b64decode(secret.data["tls.key"]), (cm.data or {}).get("ca.crt", ""))
                with self.lock:
                    self.pending.append(item)
            except Exception as e:  # noqa: BLE001 - not there yet, or the API is busy: try again
                print(f"fetch failed: {type(e).__name__}", file=sys.stderr)
            self.stop.wait(self.args.period)

    def apply(self) -> None:
        """Use the newest content read at least ``lag`` seconds ago."""
        now = time.monotonic()
        with self.lock:
            ready = [p for p in self.pending if p[0] <= now - self.args.lag]
            if not ready:
                return
            self.pending = [p for p in self.pending if p[0] > now - self.args.lag]
        _, cert, key, bundle = ready[-1]
        if self.current == (cert, key, bundle) or not bundle.strip():
            return
        d = Path(self.dir.name)
        n = self.loads
        (d / f"c{n}.pem").write_bytes(cert)
        (d / f"k{n}.pem").touch(mode=0o600)
        (d / f"k{n}.pem").write_bytes(key)
        server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server.load_cert_chain(d / f"c{n}.pem", d / f"k{n}.pem")
        server.verify_mode = ssl.CERT_REQUIRED
        server.load_verify_locations(cadata=bundle)
        peer = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        peer.check_hostname = False  # names are the policy's business; trust is what is measured
        peer.load_cert_chain(d / f"c{n}.pem", d / f"k{n}.pem")
        peer.load_verify_locations(cadata=bundle)
        (d / f"k{n}.pem").unlink()
        self.server_ctx, self.client_ctx, self.current = server, peer, (cert, key, bundle)
        self.loads += 1

    # ---- serving and connecting -----------------------------------------------------------------
    def serve(self, sock: socket.socket) -> None:
        sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                conn, _ = sock.accept()
            except TimeoutError:
                continue
            threading.Thread(target=self.answer, args=(conn,), daemon=True).start()

    def answer(self, conn: socket.socket) -> None:
        ctx = self.server_ctx
        try:
            conn.settimeout(5)
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"ok")
                tls.recv(1)
        except (OSError, ssl.SSLError):
            pass  # the client counts it

    def handshake(self) -> None:
        ctx = self.client_ctx
        if ctx is None:
            return
        try:
            with socket.create_connection(("127.0.0.1", self.args.peer), timeout=5) as sock, \
                    ctx.wrap_socket(sock) as tls:
                if tls.recv(2) != b"ok":  # TLS 1.3: a rejected client certificate shows up here
                    raise ssl.SSLError("connection closed after the handshake")
            self.ok += 1
        except ConnectionRefusedError:
            return  # the peer is not listening yet: no handshake happened
        except (OSError, ssl.SSLError) as e:
            self.fail += 1
            reason = getattr(e, "reason", None) or type(e).__name__
            self.errors = (self.errors + [f"{time.time():.3f} {reason}"])[-20:]

    def write_status(self) -> None:
        tmp = Path(self.args.status + ".tmp")
        tmp.write_text(json.dumps({"ok": self.ok, "fail": self.fail, "errors": self.errors, "loads": self.loads}))
        os.replace(tmp, self.args.status)

    def run(self) -> None:
        threading.Thread(target=self.fetch, daemon=True).start()
        last_status = 0.0
        listening = False
        try:
            while not self.stop.is_set():
                self.apply()
                if not listening and self.server_ctx is not None:  # listen once there is something to serve
                    sock = socket.create_server(("127.0.0.1", self.args.listen))
                    threading.Thread(target=self.serve, args=(sock,), daemon=True).start()
                    listening = True
                self.handshake()
                if time.monotonic() - last_status > 0.5:
                    self.write_status()
                    last_status = time.monotonic()
                time.sleep(0.1)
        finally:
            self.write_status()


def main() -> None:
    ap = argparse.ArgumentParser()
    for name in ("namespace", "secret", "configmap", "status"):
        ap.add_argument(f"--{name}", required=True)
    for name in ("listen", "peer"):
        ap.add_argument(f"--{name}", type=int, required=True)
    for name in ("lag", "period", "phase"):
        ap.add_argument(f"--{name}", type=float, default=0.0)
    w = Workload(ap.parse_args())
    import signal

    signal.signal(signal.SIGTERM, lambda *_: w.stop.set())
    w.run()


if __name__ == "__main__":
    main()

"""An mTLS peer that runs in a Pod of the e2e tests (standard library only: the image has python3).

``server``: accepts mTLS on 8443 (the client below) and 8444 (the operator's rotation probe,
counted apart so its expected refusals before the bundle syncs are not mixed in).
``client``: connects to the server Service every 0.2 s, verifies it as ``server.e2e.test``, sends
``ping`` and expects ``pong``.

Both present the leaf mounted at /tls (a Secret volume) and trust the bundle mounted at /ca (a
ConfigMap volume), and reload both when the kubelet swaps a volume's ``..data`` link — what a
well-behaved workload does. Every second each prints one JSON line of counts and fingerprints;
the test reads them with ``kubectl logs``.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import ssl
import sys
import threading
import time

TLS_DIR, CA_DIR = "/tls", "/ca"
SERVER_NAME = "server.e2e.test"


def _fingerprint_pem_file(path: str) -> str:
    der = ssl.PEM_cert_to_DER_cert(open(path).read())
    return hashlib.sha256(der).hexdigest()[:16]


def _bundle_fingerprints(path: str) -> list[str]:
    text = open(path).read()
    pems = [p + "-----END CERTIFICATE-----\n" for p in text.split("-----END CERTIFICATE-----") if "BEGIN" in p]
    return sorted(hashlib.sha256(ssl.PEM_cert_to_DER_cert(p.strip() + "\n")).hexdigest()[:16] for p in pems)


class Material:
    """The leaf and bundle as last loaded; one consistent snapshot of each volume."""

    def __init__(self, purpose: ssl.Purpose):
        self.purpose, self.version, self.ctx = purpose, None, None
        self.leaf, self.bundle, self.reloads = "", [], -1
        self.lock = threading.Lock()

    def context(self) -> ssl.SSLContext:
        with self.lock:
            version = (os.path.realpath(f"{TLS_DIR}/..data"), os.path.realpath(f"{CA_DIR}/..data"))
            if version != self.version:
                tls, ca = version
                try:
                    server = self.purpose is ssl.Purpose.CLIENT_AUTH
                    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER if server else ssl.PROTOCOL_TLS_CLIENT)
                    ctx.load_cert_chain(f"{tls}/tls.crt", f"{tls}/tls.key")
                    ctx.load_verify_locations(f"{ca}/ca.crt")
                    ctx.verify_mode = ssl.CERT_REQUIRED
                    self.leaf, self.bundle = _fingerprint_pem_file(f"{tls}/tls.crt"), _bundle_fingerprints(f"{ca}/ca.crt")
                except (OSError, ssl.SSLError) as e:  # a swap in progress: keep the old one, retry next time
                    print(json.dumps({"event": "reload-failed", "error": str(e)}), flush=True)
                    if self.ctx is None:
                        raise
                    return self.ctx
                self.ctx, self.version = ctx, version
                self.reloads += 1
                print(json.dumps({"event": "loaded", "leaf": self.leaf, "bundle": self.bundle}), flush=True)
            return self.ctx


class Counts:
    def __init__(self):
        self.ok, self.failed, self.peer, self.last_error = 0, 0, "", ""
        self.startup_failures = 0  # before the first success: the Service not yet routed, not an outage
        self.lock = threading.Lock()

    def success(self, peer_der: bytes | None) -> None:
        with self.lock:
            self.ok += 1
            if peer_der:
                self.peer = hashlib.sha256(peer_der).hexdigest()[:16]

    def failure(self, error: BaseException) -> None:
        with self.lock:
            if self.ok == 0:
                self.startup_failures += 1
            else:
                self.failed += 1
            self.last_error = f"{type(error).__name__}: {error}"[:300]
        print(json.dumps({"event": "handshake-failed", "error": self.last_error}), flush=True)

    def snapshot(self) -> dict:
        with self.lock:
            return {"ok": self.ok, "failed": self.failed, "startupFailures": self.startup_failures,
                    "peer": self.peer, "lastError": self.last_error}


def serve(port: int, material: Material, counts: Counts) -> None:
    listener = socket.create_server(("0.0.0.0", port), backlog=64)
    while True:
        conn, _ = listener.accept()
        conn.settimeout(5)
        try:
            with material.context().wrap_socket(conn, server_side=True) as tls:
                if tls.recv(4) == b"ping":
                    tls.sendall(b"pong")
                counts.success(tls.getpeercert(binary_form=True))
        except (OSError, ssl.SSLError) as e:
            counts.failure(e)
            conn.close()


def connect_forever(host: str, port: int, material: Material, counts: Counts) -> None:
    while True:
        try:
            with socket.create_connection((host, port), timeout=5) as sock:
                with material.context().wrap_socket(sock, server_hostname=SERVER_NAME) as tls:
                    tls.sendall(b"ping")
                    if tls.recv(4) != b"pong":
                        raise ssl.SSLError("no pong: the server closed the connection")
                    counts.success(tls.getpeercert(binary_form=True))
        except (OSError, ssl.SSLError) as e:
            counts.failure(e)
        time.sleep(0.2)


def main() -> None:
    role = sys.argv[1]
    if role == "server":
        material = Material(ssl.Purpose.CLIENT_AUTH)
        material.context()
        workload, probes = Counts(), Counts()
        threading.Thread(target=serve, args=(8443, material, workload), daemon=True).start()
        threading.Thread(target=serve, args=(8444, material, probes), daemon=True).start()
        report = lambda: {"workload": workload.snapshot(), "probes": probes.snapshot()}  # noqa: E731
    else:
        material = Material(ssl.Purpose.SERVER_AUTH)
        material.context()
        counts = Counts()
        host = os.environ["MTLS_SERVER_SERVICE_HOST"]
        threading.Thread(target=connect_forever, args=(host, 8443, material, counts), daemon=True).start()
        report = lambda: {"workload": counts.snapshot()}  # noqa: E731
    while True:
        time.sleep(1)
        material.context()  # reload even when no connection comes
        print(json.dumps({"event": "counts", "role": role, "leaf": material.leaf, "bundle": material.bundle,
                          "reloads": material.reloads, **report()}), flush=True)


if __name__ == "__main__":
    main()

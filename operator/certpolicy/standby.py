"""What a standby replica serves while it waits for the leader Lease: its health endpoint.

kopf (and its liveness endpoint) runs only in the leader, so a standby answers the same URL
itself, from its inventory's health: a standby whose watches died is as useless as a dead leader
(it would take over blind), and a healthy one must be Ready, or a PodDisruptionBudget with
``minAvailable: 1`` could never let the leader's node drain and a rolling update would stall on
the new Pod. The server is closed before kopf binds the same address on taking over.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

from certpolicy.inventory.inventory import Inventory


class StandbyHealth:
    def __init__(self, liveness_url: str, inventory: Inventory, lease: str) -> None:
        url = urlparse(liveness_url)
        self.path = url.path or "/"
        self.inventory, self.lease = inventory, lease
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?", 1)[0] != outer.path:
                    self.send_error(404)
                    return
                ok, message = outer.inventory.health(None)
                body = json.dumps({"role": "standby", "lease": outer.lease, "watches": message}).encode()
                self.send_response(200 if ok else 500)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args) -> None:  # probes every 10 s: not worth a log line each
                pass

        self.server = ThreadingHTTPServer((url.hostname or "0.0.0.0", url.port or 80), Handler)  # noqa: S104
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="standby-health", daemon=True)

    def start(self) -> StandbyHealth:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

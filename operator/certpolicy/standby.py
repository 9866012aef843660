"""What a standby replica serves while it waits for the leader Lease: its health endpoint.

kopf (and its liveness endpoint) runs only in the leader, so a standby answers the same URL
itself, from its inventory's health: a standby whose watches died is as useless as a dead leader
(it would take over blind), and a healthy one must be Ready, or a PodDisruptionBudget with
``minAvailable: 1`` could never let the leader's node drain and a rolling update would stall on
the new Pod. The server is closed before kopf binds the same address on taking over.

It also says why it waits: when the cluster's one Lease (``kube.lease``) is held by a replica of
another install (another namespace), this install stays standby for as long as that one runs;
the log, ``/healthz`` (``reason``) and ``certpolicy_standby_other_install_leads`` say so.
"""

from __future__ import annotations

import json
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

from certpolicy.inventory.inventory import Inventory

log = logging.getLogger("certpolicy.operator")


def waiting_reason(holder: str, install: str, own_namespace: str) -> str:
    """Why a standby waits, from the Lease's holder and the namespace of its install."""
    if not holder:
        return "the Lease is free: taking it"
    if install and install != own_namespace:
        return (f"another certpolicy-operator install (namespace {install}, replica {holder}) leads this "
                f"cluster; one install per cluster: this one ({own_namespace}) stays standby until it stops")
    return f"replica {holder} of this install leads; taking over if it stops renewing the Lease"


class StandbyHealth:
    def __init__(self, liveness_url: str, inventory: Inventory, lease: str, own_namespace: str = "") -> None:
        url = urlparse(liveness_url)
        self.path = url.path or "/"
        self.inventory, self.lease, self.own_namespace = inventory, lease, own_namespace
        self.holder, self.holder_install, self.reason = "", "", "the Lease not read yet"
        self.role = "standby"
        #: What /healthz shows, replaced as one tuple (role, holder, holderInstall, reason): a probe
        #: never reads a new holder beside the old reason (the fields were set one by one).
        self._view = (self.role, self.holder, self.holder_install, self.reason)
        self._other = False
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path.split("?", 1)[0] != outer.path:
                    self.send_error(404)
                    return
                ok, message = outer.inventory.health(None)
                role, holder, holder_install, reason = outer._view
                body = json.dumps({"role": role, "lease": outer.lease, "holder": holder,
                                   "holderInstall": holder_install, "reason": reason,
                                   "watches": message}).encode()
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

    def observe(self, holder: str, install: str) -> None:
        """The elector read another Lease record: log why this replica waits (once per change)
        and set certpolicy_standby_other_install_leads."""
        from certpolicy import metrics

        if self.role == "leader":
            return  # its own renewals: nothing to wait for (the elector's on_lost makes it a standby again)
        reason = waiting_reason(holder, install, self.own_namespace)
        other = bool(holder) and bool(install) and install != self.own_namespace
        if self._other and self.holder_install != install:
            metrics.OTHER_INSTALL.remove(self.holder_install)
        self._other = other
        if other:
            metrics.OTHER_INSTALL.labels(holder_namespace=install).set(1)
        self.holder, self.holder_install = holder, install
        if reason != self.reason:
            (log.warning if other else log.info)("standby: %s", reason)
        self.reason = reason
        self._publish()

    def leading(self) -> None:
        """The Lease is held: until kopf serves this address, the replica runs its first passes
        (``handlers/headstart.py``) and says so rather than "standby"."""
        self.role, self.reason = "leader", "the Lease is held; first passes before kopf starts"
        self._publish()

    def lost(self) -> None:
        """The Lease was lost before kopf ran: a standby again, waiting as before."""
        self.role, self.reason = "standby", "the Lease was lost before kopf started; asking for it again"
        self._publish()

    def _publish(self) -> None:
        self._view = (self.role, self.holder, self.holder_install, self.reason)

    def clear(self) -> None:
        """Leading now (or stopping): nothing to report as a standby."""
        from certpolicy import metrics

        if self._other and self.holder_install:
            metrics.OTHER_INSTALL.remove(self.holder_install)
        self._other = False

    def start(self) -> StandbyHealth:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)

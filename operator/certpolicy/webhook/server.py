"""The HTTPS endpoint the API server calls: aiohttp on an event loop of its own, in a thread.

Why aiohttp and not kopf's admission support: kopf serves webhooks only while kopf runs, which is
in the leader alone, and registers one configuration per operator with no per-policy selectors;
here every replica (the standby too) answers from the moment its inventory is warm, and the
registration carries each enforcing policy's own selectors. aiohttp is kopf's own HTTP stack
(already installed), keeps the API server's connections alive between calls, and serves TLS from
an ``ssl.SSLContext`` whose certificate is replaced in place when the serving Secret changes.

aiohttp is imported when the port first opens, which is when a policy first enforces (the upkeep
loads the serving certificate only then): ~0.1 s of CPU that the start of an operator with no
enforcing policy spends on its first verdicts instead (kopf imports aiohttp later anyway).

``reuse_port``: replicas on one host (``certpolicy run`` twice on a laptop, the failover test)
listen on the same port, and the kernel hands each connection to one of them, as a Service
would; when one dies, the other takes every new connection.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from certpolicy import metrics
from certpolicy.kube.rawapi import redact
from certpolicy.policy.admission import ALLOW, Verdict
from certpolicy.webhook.review import MAX_REVIEW_BYTES, BadReview, Request, parse_review, response

if TYPE_CHECKING:
    from aiohttp import web

log = logging.getLogger(__name__)
SECRET_PATH = "/validate/secret/"
BUNDLE_PATH = "/validate/bundle/"
#: After the serving certificate changes, answers close their connection for this long (seconds).
RECONNECT_WINDOW = 120.0

Decide = Callable[[str, str, Request], Verdict]  # (what: "secret"|"bundle", policy, request) -> Verdict


class WebhookServer:
    def __init__(self, address: str, port: int, decide: Decide) -> None:
        self.address, self.port, self.decide = address, port, decide
        self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl.minimum_version = ssl.TLSVersion.TLSv1_2
        self.loaded = threading.Event()  # a serving certificate is loaded: the port is open
        self.bound_port: int | None = None
        self.decisions = 0
        self._loop = asyncio.new_event_loop()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, name="webhook-server", daemon=True)
        self._close_until = 0.0

    # ---- certificate ----------------------------------------------------------------------------
    def load_certificate(self, cert_pem: bytes, key_pem: bytes) -> None:
        """Serve this certificate from the next handshake on (connections open keep theirs). The
        key passes through a private temporary file, removed at once: ``load_cert_chain`` reads
        files only."""
        with tempfile.TemporaryDirectory(prefix="certpolicy-webhook-") as tmp:
            path = os.path.join(tmp, "tls.pem")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key_pem + b"\n" + cert_pem)
            self.ssl.load_cert_chain(path)
        if not self.loaded.is_set():
            import aiohttp.web  # noqa: F401  (imported here, not in _listen: the 10 s are for the listen alone)

            asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(10)
            # Only now: the upkeep registers entries once the port is open. A listen that raised
            # (the port held by another program) leaves it unset and is tried at the next load.
            self.loaded.set()
        else:
            # Kept-alive connections would go on with the old certificate indefinitely. For a while,
            # every answer says "Connection: close", so the API server's next call on each one
            # handshakes with this certificate. (Closing idle connections from this side instead
            # races with a call the API server is sending on them: that call would fail.)
            self._close_until = time.monotonic() + RECONNECT_WINDOW

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self) -> WebhookServer:
        self._thread.start()
        return self

    async def _listen(self) -> None:
        from aiohttp import web

        app = web.Application(client_max_size=MAX_REVIEW_BYTES)
        app.router.add_post(SECRET_PATH + "{policy}", self._handle("secret"))
        app.router.add_post(BUNDLE_PATH + "{policy}", self._handle("bundle"))
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.address, self.port, ssl_context=self.ssl, reuse_port=True, backlog=128)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        server = site._server  # noqa: SLF001 - aiohttp exposes the bound port only there
        sockets = getattr(server, "sockets", None) or ()
        self.bound_port = sockets[0].getsockname()[1] if sockets else self.port
        log.info("admission webhook on https://%s:%d", self.address, self.bound_port)

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # ---- requests -------------------------------------------------------------------------------
    def _handle(self, what: str):
        from aiohttp import web

        async def handler(request: web.Request) -> web.Response:
            started = time.perf_counter()
            try:
                review = parse_review(await request.read())
            except BadReview as e:
                return web.json_response({"error": str(e)}, status=400)
            except web.HTTPRequestEntityTooLarge:
                return web.json_response({"error": "request too large"}, status=413)
            policy = request.match_info["policy"]
            try:
                verdict = self.decide(what, policy, review)
            except Exception as e:  # noqa: BLE001 - a bug must not block the cluster: allowed, logged, counted
                # The exception may quote the object it was judging (a Secret's data): its text redacted,
                # and the traceback's frames (code lines, never the message) at DEBUG.
                metrics.WEBHOOK_DECISION_ERRORS.inc()
                log.error("admission decision failed for CertificatePolicy %s on %s (allowed unjudged): %s", policy,
                          review.where, redact(f"{type(e).__name__}: {e}"))
                log.debug("admission decision failure at:\n%s", "".join(traceback.format_tb(e.__traceback__)))
                verdict = ALLOW
            self.decisions += 1
            if not verdict.allowed or verdict.warnings:
                log.info("CertificatePolicy %s: %s %s %s (%s, %.1f ms)", policy, review.operation, review.where,
                         "refused" if not verdict.allowed else "admitted with warnings", verdict.reason or what,
                         (time.perf_counter() - started) * 1000)
            answer = web.json_response(response(review.uid, verdict))
            if time.monotonic() < self._close_until:
                answer.force_close()
            return answer
        return handler

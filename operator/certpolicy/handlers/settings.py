"""Operator-wide kopf settings, applied at start-up whether run by ``certpolicy run`` or kopf's CLI."""

from __future__ import annotations

import dataclasses
import logging
import os

import aiohttp
import kopf

from certpolicy.handlers.deletion import FINALIZER
from certpolicy.handlers.runtime import PASS_WORKERS
from certpolicy.kube.client import user_agent
from certpolicy.kube.writegate import WRITE_GATE

ANNOTATION_PREFIX = "certpolicy.io"


class QuietEventHandlerSuccess(logging.Filter):
    """Drops kopf's "Handler 'policy_changed' succeeded." line.

    That handler only wakes the policy's evaluation loop; it runs on every watch event of every
    policy (our own status writes included), so the line repeated ~100 times without saying which
    policy or what changed. The evaluation itself logs one line per change instead
    (``certpolicy.reconcile``: "policy X: ..."). kopf has no setting for its success lines.
    """

    MESSAGE = "Handler 'policy_changed' succeeded."

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != self.MESSAGE


_QUIET = QuietEventHandlerSuccess()


def quiet_client_loggers() -> None:
    """The HTTP client's per-request lines (every Lease renewal, every watch reconnect) only at
    WARNING: at DEBUG they would flood the log (``certpolicy run`` calls this before its standby
    phase, kopf's start-up below again)."""
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_) -> None:
    # kopf's progress and diff-base live in annotations on our own CertificatePolicy objects only;
    # nothing is ever stored on user Secrets or Pods (they are never handled by kopf).
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = FINALIZER
    # Events are posted deliberately, on state transitions, by our own code: kopf must not turn
    # log lines into events (they would repeat on every re-check).
    settings.posting.enabled = False
    settings.watching.server_timeout = 300
    settings.watching.client_timeout = 330
    settings.networking.request_timeout = 60
    settings.execution.max_workers = PASS_WORKERS
    if _QUIET not in logging.getLogger("kopf.objects").filters:
        logging.getLogger("kopf.objects").addFilter(_QUIET)
    quiet_client_loggers()


async def _write_gate(request: aiohttp.ClientRequest, handler):
    """kopf's writes (the finalizer on CertificatePolicies) ask the same write gate as ours."""
    WRITE_GATE.check(request.method, request.url.path)
    return await handler(request)


@kopf.on.login()
async def login(**kwargs) -> kopf.AiohttpSession | None:
    """In-cluster service account first, then the kubeconfig — kopf's own loaders, not the client's.

    (kopf's default piggy-backing on the kubernetes client fails noisily with client v37's
    configuration API before falling back; choosing the loaders explicitly avoids that.)

    kopf then talks through a session of ours, built as kopf builds its own (TLS context and
    Authorization header from the same ConnectionInfo) plus two things kopf has no setting for:
    this replica's user agent and the write gate on every request (see ``kube.writegate``).
    """
    info = kopf.login_with_service_account(**kwargs)
    if info is not None:
        # kopf assumes https://kubernetes.default.svc, which needs cluster DNS; like client-go's
        # in-cluster config (and certpolicy.kube.client), use the address the kubelet puts in the
        # environment, so the operator keeps working when DNS does not (or, on a bare node, is absent).
        host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
        if host and port:
            info = dataclasses.replace(info, server=f"https://{f'[{host}]' if ':' in host else host}:{port}")
    else:
        info = kopf.login_with_kubeconfig(**kwargs)
    if info is None:
        return None
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ssl=info.as_ssl_context()),
        headers={**info.as_http_headers(), "User-Agent": user_agent()},
        proxy=info.proxy_url, trust_env=info.trust_env, middlewares=(_write_gate,),
    )
    return kopf.AiohttpSession(aiohttp_session=session, server=info.server, default_namespace=info.default_namespace,
                               priority=info.priority, expiration=info.expiration)

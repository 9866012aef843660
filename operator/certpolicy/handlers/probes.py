"""Rotation probes: a canary mTLS handshake per endpoint, run off the evaluation workers, to allowed hosts only.

A probe connects to a host a policy author chose, presents a client certificate signed by the new
CA and reports the outcome in the policy's status. Unchecked, that is a port scanner and a way to
hold the operator's workers: six policies probing a port that accepts TCP and never answers kept
every evaluation worker busy for minutes. So:

* probes run on a pool of their own (:data:`PROBE_WORKERS` threads): an evaluation pass only
  submits them and returns; each result is handed to the rotation at the policy's next pass, which
  the finished probe triggers. The schema caps a probe's timeout at 30 s.
* a probe goes only to hosts on the operator's allow-list (``--probe-allow``, env
  ``CERTPOLICY_PROBE_ALLOW``: host patterns and CIDRs). The default is the cluster's service
  names, ``*.svc`` and ``*.svc.<cluster domain>`` (``CERTPOLICY_CLUSTER_DOMAIN``, default
  ``cluster.local``); anything else is ``ProbeNotAllowed`` and never connected to.
* a server that completes the handshake without ever asking for a client certificate proves
  nothing about its trust in the new CA: ``ProbeNoClientAuth``, never a success.
* in step 4 the same handshake also reads the chain the endpoint *serves* and reports the CA it
  depends on (``ProbeResult.served_ca``), or that it depends on neither CA of the rotation
  (``ProbeResult.served_other``: a partner serving a public CA's or its own CA's certificate, which
  removing the old CA cannot break).
"""

from __future__ import annotations

import datetime as dt
import logging
import socket
import ssl
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cryptography import x509

from certpolicy.handlers.castore import CASecret
from certpolicy.handlers.peerchain import HandshakeCertificates, peer_chain
from certpolicy.handlers.rotation_memory import RotationMemory
from certpolicy.pki.fingerprint import certificate_fingerprint, short
from certpolicy.pki.inspect import signed_by
from certpolicy.pki.issue import issue_leaf
from certpolicy.rotation import Probe, ProbeResult
from certpolicy.rotation.probeallow import AllowList

log = logging.getLogger("certpolicy.rotation")

PROBE_WORKERS = 16
#: after the handshake, how long the canary listens for a TLS 1.3 post-handshake rejection
READ_AFTER_HANDSHAKE = 1.0
_CERTIFICATE_REQUEST = 13  # TLS HandshakeType certificate_request (RFC 5246 / RFC 8446)

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def served_by(chain: Sequence[bytes], cas: Sequence[x509.Certificate]) -> str | None:
    """The fingerprint of the first CA in ``cas`` that a served chain (DER, leaf first) depends on:
    a served certificate is that CA or is signed by it. The driver lists the old CA first, so a
    chain that touches the old CA anywhere counts as the old CA's (the conservative answer: it
    holds step 4). Neither trust in nor validity of the chain is judged here: an expired old-CA
    leaf, or one without serverAuth, still depends on the old CA. None: the chain leads to none
    of ``cas`` (a third CA), or is empty or unparsable."""
    certs = _parse(chain)
    for ca in cas:
        fp = certificate_fingerprint(ca)
        if any(certificate_fingerprint(c) == fp or signed_by(c, ca) for c in certs):
            return fp
    return None


def _parse(chain: Sequence[bytes]) -> list[x509.Certificate]:
    try:
        return [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError:
        return []


def canary_handshake(probe: Probe, ca: CASecret, now: dt.datetime,
                     verify_served: Sequence[x509.Certificate] = ()) -> ProbeResult:
    """Present a short-lived client certificate signed by ``ca``; accepted only if the peer asked
    for a client certificate and then did not reject ours. With ``verify_served``, also report
    which of those CAs the endpoint's own certificate chains to.

    With TLS 1.3 a server rejects a client certificate *after* the client's handshake completes,
    so the canary also reads briefly: an alert means rejected, a timeout or data means accepted,
    and a connection closed without a word is counted as rejected (the gate must be sure).
    """
    refused = AllowList.from_env().refusal(probe.host)
    if refused is not None:
        return ProbeResult(probe.id, ca.fingerprint, False, now, refused)
    canary = issue_leaf(ca.key_pair, common_name="certpolicy-rotation-canary", usages=["clientAuth"],
                        validity=dt.timedelta(minutes=10), now=now)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the gate tests the peer's trust in our CA, not ours in the peer
    with tempfile.TemporaryDirectory(prefix="certpolicy-canary-") as d:
        cert_file, key_file = Path(d, "c.pem"), Path(d, "k.pem")
        cert_file.write_bytes(canary.cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(canary.key_pem)
        ctx.load_cert_chain(str(cert_file), str(key_file))
    asked: list[bool] = []
    sent = HandshakeCertificates()

    def watch_handshake(_conn, direction, version, content_type, msg_type, data) -> None:
        if direction == "read" and msg_type == _CERTIFICATE_REQUEST:
            asked.append(True)
        sent.seen(direction, version, content_type, msg_type, data)

    # The one way the ssl module tells whether the server sent a CertificateRequest (and, before
    # Python 3.13, which chain it sent: see certpolicy.handlers.peerchain).
    ctx._msg_callback = watch_handshake  # type: ignore[attr-defined]  # noqa: SLF001 - private, so not in typeshed (why it is used: above)
    timeout = probe.timeout.total_seconds()

    served: list[str | None] = [None]
    read: list[bool] = [False]  # the served chain was read (and parsed)

    def result(accepted: bool, message: str) -> ProbeResult:
        if verify_served:
            message += (f"; serves a leaf from CA {short(served[0])}" if served[0]
                        else "; serves a chain to another CA" if read[0] else "; served chain not read")
        return ProbeResult(probe.id, ca.fingerprint, accepted, now, message, served[0],
                           read[0] and served[0] is None)

    try:
        with socket.create_connection((probe.host, probe.port), timeout=timeout) as sock, \
                ctx.wrap_socket(sock, server_hostname=probe.server_name or probe.host) as tls:
            if verify_served:
                chain = peer_chain(tls, sent)
                read[0] = bool(_parse(chain))
                served[0] = served_by(chain, verify_served)
            tls.settimeout(min(READ_AFTER_HANDSHAKE, timeout))
            try:
                data = tls.recv(1)
            except TimeoutError:
                data = None
            if not asked:
                return result(False, "ProbeNoClientAuth: the server never asked for a client certificate, so "
                                     "it says nothing about trusting the new CA (is this the mTLS port?)")
            if data is None or data:
                return result(True, "handshake accepted")
            return result(False, "connection closed after the handshake")
    except ssl.SSLError as e:
        return result(False, f"TLS rejected: {e.reason or type(e).__name__}")
    except OSError as e:
        return result(False, f"connection failed: {type(e).__name__}")


def _executor() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=PROBE_WORKERS, thread_name_prefix="certpolicy-probe")
        return _pool


def submit_probes(probes: Sequence[Probe], ca: CASecret, memory: RotationMemory,
                  done: Callable[[], None] | None, verify_served: Sequence[x509.Certificate] = ()) -> None:
    """Run the canary handshakes on the probe pool; each result goes to ``memory`` and ``done()``
    wakes the policy, whose next pass hands the results to the rotation machine."""
    for probe in probes:
        if not memory.start(probe.id):
            continue  # still in flight from an earlier request

        def run(probe: Probe = probe) -> None:
            try:
                res = canary_handshake(probe, ca, dt.datetime.now(dt.UTC), verify_served)
            except Exception as e:  # noqa: BLE001 - a probe failure is a refusal, never a crash
                log.warning("probe %s failed: %s", probe.id, type(e).__name__)
                res = ProbeResult(probe.id, ca.fingerprint, False, dt.datetime.now(dt.UTC),
                                  f"probe failed: {type(e).__name__}")
            memory.finish(res)
            if done is not None:
                done()

        _executor().submit(run)

"""The certificate chain a TLS server sent (leaf first, DER), as the canary probe needs it.

Step 4 of a rotation asks whether a probe endpoint's served chain depends on the old CA, so it
needs the intermediates too, not only the leaf. Two ways, chosen by a feature check:

* Python 3.13 and later: the public ``ssl.SSLSocket.get_unverified_chain()``.
* Python 3.11 and 3.12 (the shipped image runs 3.11), which have no public method for it: the
  server's ``Certificate`` handshake message (RFC 5246 7.4.2, RFC 8446 4.4.2), kept by
  :class:`HandshakeCertificates` from the ssl module's handshake message callback, the same hook
  the canary already uses to see whether the server asked for a client certificate. Its first
  certificate must be the leaf the public ``getpeercert(binary_form=True)`` returns, or only that
  leaf is used.

Only the standard library is imported here, so the 3.13 path can be exercised by another
interpreter in the tests without the operator's dependencies.
"""

from __future__ import annotations

import ssl
from typing import Any

#: TLS HandshakeType certificate (RFC 5246 / RFC 8446)
CERTIFICATE = 11
#: ContentType handshake
HANDSHAKE = 22
#: a served chain longer than this is cut (no real chain is; the verifier's own limit is lower)
MAX_CERTIFICATES = 16


def public_chain_api() -> bool:
    """Whether this Python has the public ``SSLSocket.get_unverified_chain`` (3.13+)."""
    return callable(getattr(ssl.SSLSocket, "get_unverified_chain", None))


def certificates_in(message: bytes, tls13: bool) -> list[bytes]:
    """The DER certificates of one ``Certificate`` handshake message (with its 4-byte header);
    [] when it is cut short or malformed. TLS 1.3 adds a request context before the list and
    extensions after each certificate."""
    body = message[4:]
    pos = 0
    if tls13:
        if not body:
            return []
        pos = 1 + body[0]
    if pos + 3 > len(body):
        return []
    end = pos + 3 + int.from_bytes(body[pos:pos + 3], "big")
    pos += 3
    if end > len(body):
        return []
    out: list[bytes] = []
    while pos + 3 <= end and len(out) < MAX_CERTIFICATES:
        n = int.from_bytes(body[pos:pos + 3], "big")
        pos += 3
        if n == 0 or pos + n > end:
            return []
        out.append(bytes(body[pos:pos + n]))
        pos += n
        if tls13:
            if pos + 2 > end:
                return []
            pos += 2 + int.from_bytes(body[pos:pos + 2], "big")
    return out


class HandshakeCertificates:
    """Keeps the certificates of the server's ``Certificate`` message; call :meth:`seen` from the
    context's handshake message callback."""

    def __init__(self) -> None:
        self.chain: list[bytes] = []

    def seen(self, direction: str, version: Any, content_type: Any, msg_type: Any, data: bytes) -> None:
        if direction == "read" and content_type == HANDSHAKE and msg_type == CERTIFICATE and not self.chain:
            self.chain = certificates_in(data, version == ssl.TLSVersion.TLSv1_3)


def peer_chain(tls: ssl.SSLSocket, recorded: HandshakeCertificates | None = None) -> list[bytes]:
    """The certificates the server sent, leaf first (at most :data:`MAX_CERTIFICATES`)."""
    if public_chain_api():
        try:
            return [bytes(c) for c in tls.get_unverified_chain() or ()][:MAX_CERTIFICATES]  # type: ignore[attr-defined]  # Python 3.13+ (public_chain_api() checked); mypy targets 3.11
        except (ValueError, ssl.SSLError):
            return []
    leaf = tls.getpeercert(binary_form=True)
    if not leaf:
        return []
    if recorded is not None and recorded.chain and recorded.chain[0] == leaf:
        return recorded.chain
    return [leaf]

"""The one way certificates are identified everywhere: status, events, metrics, bundles, rotation.

A SHA-256 over the DER encoding, written ``sha256:<hex>``, so that two PEM renderings of the same
certificate (CRLF, headers, whitespace) are the same certificate.
"""

from __future__ import annotations

import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from certpolicy.pki.cache import FifoCache

PREFIX = "sha256:"

# The fingerprint of each certificate object the engine has seen: the loader records it when it
# hashes the DER it parses, and any other certificate is fingerprinted once. Keyed by the object's
# identity, not the object: cryptography hashes a Certificate by walking its whole parsed structure
# (~56,000 instructions for an RSA-2048 leaf under callgrind, more than SHA-256 over its DER), and
# every lookup paid that. The entry holds the certificate, so its id cannot be reused while the
# entry exists; a lookup also checks identity. An equal certificate in another object is simply
# fingerprinted once more.
_KNOWN: FifoCache[int, tuple[x509.Certificate, str]] = FifoCache(
    65536, name="fingerprints", keep=lambda _id, known, live: known[1] in live.fingerprints,
    per_secret=2)


def fingerprint(cert: x509.Certificate) -> str:
    return PREFIX + cert.fingerprint(hashes.SHA256()).hex()


def der_fingerprint(der: bytes) -> str:
    """:func:`fingerprint` of the certificate that ``der`` encodes, without parsing it (cryptography
    hashes the DER it was given)."""
    return PREFIX + hashlib.sha256(der).hexdigest()


def short(fp: str, length: int = 12) -> str:
    """A fingerprint short enough for an event message or a printer column."""
    return fp.removeprefix(PREFIX)[:length]


def known_fingerprint(cert: x509.Certificate) -> str | None:
    """The fingerprint of a certificate already seen, without re-encoding it (cheap)."""
    known = _KNOWN.get(id(cert))
    return known[1] if known is not None and known[0] is cert else None


def remember_fingerprint(known: tuple[x509.Certificate, str]) -> None:
    """Record ``(certificate, fingerprint)``; the loader passes the tuple its parse cache holds, so
    the two caches share it."""
    _KNOWN.put(id(known[0]), known)


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """:func:`fingerprint`, remembered per certificate object (re-encoding a certificate to DER
    costs more than hashing it)."""
    known = _KNOWN.get(id(cert))
    if known is not None and known[0] is cert:
        return known[1]
    fp = fingerprint(cert)
    _KNOWN.put(id(cert), (cert, fp))
    return fp

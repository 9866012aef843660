"""The one way certificates are identified everywhere: status, events, metrics, bundles, rotation.

A SHA-256 over the DER encoding, written ``sha256:<hex>``, so that two PEM renderings of the same
certificate (CRLF, headers, whitespace) are the same certificate.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from certpolicy.pki.cache import FifoCache

PREFIX = "sha256:"

# The fingerprint of each certificate object the engine has seen: the loader records it when it
# hashes the DER it parses, and any other certificate is fingerprinted once.
_KNOWN: FifoCache[x509.Certificate, str] = FifoCache(
    65536, name="fingerprints", keep=lambda _cert, fp, live: fp in live.fingerprints, per_secret=2)


def fingerprint(cert: x509.Certificate) -> str:
    return PREFIX + cert.fingerprint(hashes.SHA256()).hex()


def short(fp: str, length: int = 12) -> str:
    """A fingerprint short enough for an event message or a printer column."""
    return fp.removeprefix(PREFIX)[:length]


def known_fingerprint(cert: x509.Certificate) -> str | None:
    """The fingerprint of a certificate already seen, without re-encoding it (cheap)."""
    return _KNOWN.get(cert)


def remember_fingerprint(cert: x509.Certificate, fp: str) -> None:
    _KNOWN.put(cert, fp)


def certificate_fingerprint(cert: x509.Certificate) -> str:
    """:func:`fingerprint`, remembered per certificate object (re-encoding a certificate to DER
    costs more than hashing it)."""
    fp = _KNOWN.get(cert)
    if fp is None:
        fp = fingerprint(cert)
        _KNOWN.put(cert, fp)
    return fp

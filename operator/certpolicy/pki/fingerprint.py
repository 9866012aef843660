"""The one way certificates are identified everywhere: status, events, metrics, bundles, rotation.

A SHA-256 over the DER encoding, written ``sha256:<hex>``, so that two PEM renderings of the same
certificate (CRLF, headers, whitespace) are the same certificate.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.hazmat.primitives import hashes

PREFIX = "sha256:"


def fingerprint(cert: x509.Certificate) -> str:
    return PREFIX + cert.fingerprint(hashes.SHA256()).hex()


def short(fp: str, length: int = 12) -> str:
    """A fingerprint short enough for an event message or a printer column."""
    return fp.removeprefix(PREFIX)[:length]

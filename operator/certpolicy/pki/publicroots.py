"""The public Web PKI roots, to tell "issued by a public CA" from "issued by our private CA".

Why it matters: in 2026 public CAs stopped issuing certificates with the ``clientAuth`` EKU (Let's
Encrypt from 2026-02-11, the others by mid-2026, under the Chrome Root Program). A leaf from a
public CA that still carries ``clientAuth`` works today and loses it at its next renewal, which
silently breaks every mTLS link using it as a client certificate. The policy layer flags such
leaves when a policy requires ``clientAuth``; this module answers "does this chain lead to a public
root?".

Roots come from certifi and from the system trust store (whichever exist), loaded once, lazily,
the first time a policy asks. A cheap name test (is any certificate in the chain issued by a
name that some public root has?) runs before any signature is verified, so private chains cost a
few set lookups.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509

from certpolicy.pki.chain import TrustAnchors, verify_chain
from certpolicy.pki.fingerprint import certificate_fingerprint
from certpolicy.pki.inspect import issuer_of, subject_of
from certpolicy.pki.load import load_certificates

#: Where distributions keep their CA bundle (the first readable one is used, with certifi).
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # RHEL, Fedora
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, Alpine
)


@dataclass(frozen=True)
class PublicRoots:
    """A set of public roots with the lookups the engine needs."""

    anchors: TrustAnchors
    subjects: frozenset[x509.Name] = field(repr=False)
    sources: tuple[str, ...] = ()

    @classmethod
    def of(cls, certs: Iterable[x509.Certificate], sources: Sequence[str] = ()) -> PublicRoots:
        anchors = TrustAnchors.of(certs)
        subjects = (subject_of(c) for c in anchors.certificates)
        return cls(anchors, frozenset(n for n in subjects if n is not None), tuple(sources))

    @property
    def fingerprints(self) -> frozenset[str]:
        return self.anchors.fingerprints

    def __len__(self) -> int:
        return len(self.anchors)

    def is_public(self, cert: x509.Certificate) -> bool:
        return certificate_fingerprint(cert) in self.anchors.fingerprints

    def find_anchor(self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], now: dt.datetime) -> x509.Certificate | None:
        """The public root ``leaf`` chains to (through ``intermediates``) at ``now``, if any."""
        if not self.subjects:
            return None
        if not any(issuer_of(c) in self.subjects for c in (leaf, *intermediates)):
            return None
        result = verify_chain(leaf, intermediates, self.anchors, now)
        return result.anchor


_default: PublicRoots | None = None
_lock = threading.Lock()


def default_public_roots() -> PublicRoots:
    """certifi's roots plus the system store's, loaded once. Never raises (empty if none found)."""
    global _default
    if _default is None:
        with _lock:
            if _default is None:
                _default = _load_default()
    return _default


def _load_default() -> PublicRoots:
    certs: list[x509.Certificate] = []
    sources: list[str] = []
    paths: list[str] = []
    try:
        import certifi

        paths.append(certifi.where())
    except Exception:
        pass
    try:
        verify_paths = ssl.get_default_verify_paths()
        if verify_paths.cafile:
            paths.append(verify_paths.cafile)
    except Exception:
        pass
    for p in SYSTEM_BUNDLES:
        if os.path.exists(p):
            paths.append(p)
            break
    seen_paths: set[str] = set()
    for p in paths:
        try:
            real = str(Path(p).resolve())
            if real in seen_paths:
                continue
            seen_paths.add(real)
            loaded = load_certificates(Path(real).read_bytes())
        except OSError:
            continue
        if loaded.certificates:
            certs.extend(loaded.certificates)
            sources.append(p)
    return PublicRoots.of(certs, sources)

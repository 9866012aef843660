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
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from cryptography import x509

from certpolicy.pki.chain import TrustAnchors, verify_chain
from certpolicy.pki.fingerprint import certificate_fingerprint, der_fingerprint
from certpolicy.pki.inspect import issuer_of, subject_of
from certpolicy.pki.load import certificate_ders, load_certificates

#: Where distributions keep their CA bundle (the first readable one is used, with certifi).
SYSTEM_BUNDLES = (
    "/etc/ssl/certs/ca-certificates.crt",  # Debian, Ubuntu, Alpine
    "/etc/pki/tls/certs/ca-bundle.crt",  # RHEL, Fedora
    "/etc/ssl/ca-bundle.pem",  # openSUSE
    "/etc/ssl/cert.pem",  # macOS, Alpine
)


class PublicRoots:
    """A set of public roots with the lookups the engine needs.

    The question most evaluations ask, "is the anchor of this verified chain a public root?", needs
    only the roots' fingerprints, and those cost a SHA-256 per PEM block. Parsing the ~170 roots of
    certifi and the system store, summarising them and building their store cost ~11 ms more (20
    against 9 ms, most of the 9 importing certifi; the first pass of every operator start paid
    it, and every ``kubectl certpolicy why``), so that waits until a chain must be placed among
    them (:meth:`find_anchor`: a chain the policy's bundle does not verify). ``fingerprints`` holds every certificate read; the roots that are CAs
    are the anchors, which gives the same answer for any anchor a chain can have.
    """

    def __init__(self, fingerprints: frozenset[str], parse: Callable[[], Sequence[x509.Certificate]],
                 sources: Sequence[str] = ()) -> None:
        self.fingerprints = fingerprints
        self.sources = tuple(sources)
        self._parse = parse
        self._parsed: tuple[TrustAnchors, frozenset[x509.Name]] | None = None
        self._lock = threading.Lock()

    @classmethod
    def of(cls, certs: Iterable[x509.Certificate], sources: Sequence[str] = ()) -> PublicRoots:
        """Roots already parsed (tests, callers with their own list)."""
        anchors = TrustAnchors.of(certs)
        return cls(anchors.fingerprints, lambda: anchors.certificates, sources)

    @classmethod
    def from_bundles(cls, bundles: Sequence[tuple[str, bytes]]) -> PublicRoots:
        """Roots from CA bundle files' contents, ``(source, data)``: fingerprinted now, parsed on
        first need. A bundle the fast PEM scan cannot take (other blocks, odd encodings) is read
        by :func:`load_certificates` at once, as before."""
        fps: set[str] = set()
        sources: list[str] = []
        later: list[bytes] = []
        parsed: list[x509.Certificate] = []
        for source, raw in bundles:
            ders = certificate_ders(raw)
            if ders is not None:
                found = {der_fingerprint(der) for der in ders}
                later.append(raw)
            else:
                certs = load_certificates(raw).certificates
                found = {certificate_fingerprint(c) for c in certs}
                parsed.extend(certs)
            if found:
                fps |= found
                sources.append(source)

        def parse() -> list[x509.Certificate]:
            return [c for raw in later for c in load_certificates(raw).certificates] + parsed

        return cls(frozenset(fps), parse, sources)

    def _roots(self) -> tuple[TrustAnchors, frozenset[x509.Name]]:
        parsed = self._parsed
        if parsed is None:
            with self._lock:
                if self._parsed is None:
                    anchors = TrustAnchors.of(self._parse())
                    subjects = (subject_of(c) for c in anchors.certificates)
                    self._parsed = (anchors, frozenset(n for n in subjects if n is not None))
                    self._parse = lambda: anchors.certificates  # the files' text is not held any longer
                parsed = self._parsed
        return parsed

    @property
    def anchors(self) -> TrustAnchors:
        return self._roots()[0]

    @property
    def subjects(self) -> frozenset[x509.Name]:
        return self._roots()[1]

    def parse(self) -> PublicRoots:
        """Parse the roots now, not at the first chain to place (a benchmark keeps that out of
        what it times)."""
        self._roots()
        return self

    @property
    def parsed(self) -> bool:
        """Whether the roots have been parsed (a chain had to be placed among them)."""
        return self._parsed is not None

    def __len__(self) -> int:
        return len(self.anchors)

    def __repr__(self) -> str:
        return f"PublicRoots({len(self.fingerprints)} fingerprints, sources={self.sources!r})"

    def is_public(self, cert: x509.Certificate) -> bool:
        return certificate_fingerprint(cert) in self.fingerprints

    def find_anchor(self, leaf: x509.Certificate, intermediates: Sequence[x509.Certificate], now: dt.datetime) -> x509.Certificate | None:
        """The public root ``leaf`` chains to (through ``intermediates``) at ``now``, if any."""
        if not self.fingerprints:
            return None
        subjects = self.subjects
        if not subjects:
            return None
        if not any(issuer_of(c) in subjects for c in (leaf, *intermediates)):
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
    bundles: list[tuple[str, bytes]] = []
    for p in paths:
        try:
            real = str(Path(p).resolve())
            if real in seen_paths:
                continue
            seen_paths.add(real)
            bundles.append((p, Path(real).read_bytes()))
        except OSError:
            continue
    return PublicRoots.from_bundles(bundles)

"""Trust stores checked on their own: (requirements, a store's certificates, now) → findings.

The lesson of the HL7 outage: each trust store was replaced or left stale on its own, so each one
is judged on its own — a ConfigMap PEM bundle, a PKCS#12 or JKS truststore in a Secret, a
webhook's ``caBundle``. Two kinds of check:

* **The store itself** (:func:`check_truststore`): every CA's expiry, weak keys and signatures (the
  same rules as for a leaf's chain, at full severity: this finding is *about the store*), a
  certificate that is not a CA, the same certificate twice, and what could not be read.
* **What the store must anchor** (:func:`missing_anchors`): ``requirements.trustedBy`` names the
  stores of a leaf's peers; a store that holds nothing the leaf chains to is a
  ``TruststoreMissingAnchor`` finding *on the store*, naming the leaf. For a ``caBundle`` the peer
  is the API server and the leaf is the one the webhook's serving Secret holds.

"Anchors" follows what a Java (PKIX) or OpenSSL peer accepts: the store holds the leaf itself,
a CA of its served chain or its verified path, or a certificate that signed the top of the chain
the leaf is served with. Matching is by fingerprint, then by signature: a CA re-issued with the
same key still anchors; a same-named CA with another key does not.

Pure: no cluster, no clock of its own.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509

from certpolicy.pki.fingerprint import certificate_fingerprint, short
from certpolicy.pki.inspect import signed_by, summarize
from certpolicy.pki.load import LoadProblem
from certpolicy.pki.secretdata import SecretMaterial
from certpolicy.policy.findings import REASONS, CertRef, Finding, Role, finding
from certpolicy.policy.spec import Requirements
from certpolicy.policy.strength import check_strength
from certpolicy.policy.validity import change_instants, check_expiry


@dataclass(frozen=True)
class LeafAnchor:
    """What a peer's trust store must hold to accept one leaf."""

    secret: str  # "namespace/name" of the Secret serving the leaf (or a caBundle's serving Secret)
    leaf: str  # the leaf's display name
    acceptable: frozenset[str]  # fingerprints any one of which anchors the leaf
    top: x509.Certificate  # the last certificate of the served chain: a store CA that signed it anchors it
    anchor: str  # the anchor in words, for the message

    @classmethod
    def of(cls, secret: str, material: SecretMaterial, chain_path: Sequence[str] = (),
           bundle: Sequence[x509.Certificate] = ()) -> LeafAnchor | None:
        """From a Secret's material and, when its chain was verified, the evaluation's path
        (fingerprints leaf → anchor) and the trust bundle it was verified against (to name the
        anchor). None when the Secret has no leaf."""
        leaf = material.leaf
        if leaf is None:
            return None
        served = material.certificates
        fps = set(chain_path) | set(material.fingerprints or (certificate_fingerprint(c) for c in served))
        fps |= {certificate_fingerprint(c) for c in material.ca_certificates if _issues(c, served)}
        top = served[-1]
        if chain_path:
            anchor_fp = chain_path[-1]
            anchor = next((c for c in (*served, *material.ca_certificates, *bundle)
                           if certificate_fingerprint(c) == anchor_fp), None)
            words = (f"'{summarize(anchor).display_name}' ({short(anchor_fp)})" if anchor is not None
                     else f"the CA {short(anchor_fp)}")
        else:
            s = summarize(top)
            words = f"'{s.display_name}' ({short(s.fingerprint)})" if s.self_signed else f"a CA named '{s.issuer}'"
        return cls(secret, summarize(leaf).display_name, frozenset(fps), top, words)


def _issues(ca: x509.Certificate, chain: Sequence[x509.Certificate]) -> bool:
    """Whether ``ca`` is on the path above ``chain`` (it signed its top, or is in it)."""
    return bool(chain) and (ca in chain or signed_by(chain[-1], ca))


@dataclass(frozen=True)
class TruststoreCheck:
    """The findings on one store and the instant they may next change by time alone."""

    findings: tuple[Finding, ...]
    valid_until: dt.datetime | None


def check_truststore(
    req: Requirements,
    certificates: Sequence[x509.Certificate],
    problems: Iterable[LoadProblem],
    now: dt.datetime,
    *,
    what: str = "the trust store",
) -> TruststoreCheck:
    """Findings on one store: what could not be read, then each certificate on its own."""
    out: list[Finding] = []
    for p in problems:
        reason = p.reason if p.reason in REASONS else "MalformedCertificate"
        out.append(finding(reason, str(p)))
    if not certificates and not out:
        out.append(finding("NoCertificate", f"{what} holds no certificate: a peer using it trusts nothing"))
    counts = Counter(certificate_fingerprint(c) for c in certificates)
    upcoming: dt.datetime | None = None
    seen: set[str] = set()
    for cert in certificates:
        s = summarize(cert)
        if s.fingerprint in seen:
            continue
        seen.add(s.fingerprint)
        ref = CertRef.of(Role.BUNDLE_CA, s)
        if counts[s.fingerprint] > 1:
            out.append(finding("DuplicateCertificate", f"'{s.display_name}' appears {counts[s.fingerprint]} times in {what}", ref))
        if not s.is_ca:
            out.append(finding("NonCACertificateInBundle", f"{what} holds '{s.display_name}', which is not a CA certificate; "
                               "it anchors only itself", ref))
        out.extend(check_expiry(req, s, Role.BUNDLE_CA, now))
        out.extend(check_strength(req, s, Role.BUNDLE_CA))
        for t in change_instants(req, s):
            if t > now and (upcoming is None or t < upcoming):
                upcoming = t
    out.sort(key=Finding.sort_key)
    return TruststoreCheck(tuple(out), upcoming)


def anchors(certificates: Sequence[x509.Certificate], leaf: LeafAnchor) -> bool:
    """Whether a store holding ``certificates`` anchors ``leaf``."""
    for cert in certificates:
        if certificate_fingerprint(cert) in leaf.acceptable:
            return True
    top_issuer = leaf.top.issuer
    return any(c.subject == top_issuer and signed_by(leaf.top, c) for c in certificates)


def missing_anchors(
    certificates: Sequence[x509.Certificate],
    leaves: Iterable[LeafAnchor],
    *,
    what: str = "the trust store",
    limit: int = 20,
) -> tuple[Finding, ...]:
    """One ``TruststoreMissingAnchor`` finding per leaf the store does not anchor (at most
    ``limit``, then one that counts the rest), each naming the leaf and its anchor."""
    out: list[Finding] = []
    missed = 0
    for leaf in leaves:
        if anchors(certificates, leaf):
            continue
        missed += 1
        if len(out) < limit:
            out.append(finding("TruststoreMissingAnchor",
                               f"{what} does not hold the anchor of '{leaf.leaf}' (Secret {leaf.secret}), "
                               f"{leaf.anchor}: a peer using this store rejects that certificate"))
    if missed > limit:
        out.append(finding("TruststoreMissingAnchor", f"... and {missed - limit} more leaves {what} does not anchor"))
    return tuple(out)

"""Does a leaf chain to a trust bundle, and through which CA?

Path building and signature checks are cryptography's (:mod:`cryptography.x509.verification`);
nothing here builds paths by hand. What this module adds:

* **A private-CA profile.** cryptography's defaults are the CA/Browser Forum's Web PKI profile. They
  reject what private CAs routinely have — a root without keyUsage, a non-critical
  basicConstraints, a leaf without authorityKeyIdentifier — and a client verifier insists on
  ``clientAuth``. We start from :meth:`ExtensionPolicy.permit_all` and require only what RFC 5280
  makes load-bearing for a path: an issuer must carry basicConstraints with ``cA=TRUE`` (any
  criticality) and, if it has keyUsage, ``keyCertSign``; a leaf must not claim ``cA=TRUE``
  (presence is enforced by the extension policy, the values on the returned path — see
  :func:`private_ca_policies`).
  EKU and names are *not* checked here: the policy layer reports them precisely instead of as one
  opaque "untrusted". cryptography still enforces v3, validity at ``now``, path length, name
  constraints, signatures, and the Web PKI algorithm set (RSA ≥ 2048 for issuers, P-256/384/521,
  no SHA-1/MD5): a chain that fails those is untrusted, and :func:`verify_chain` says which.

* **Why the client verifier.** A server verifier needs a subject name and checks the leaf's SANs
  against it. A leaf may have only IP SANs, SANs we must not constrain (the policy checks names
  itself), or no SAN at all. The client verifier checks the path without a subject; with our
  extension policies it neither requires a SAN nor ``clientAuth``. So one verification per leaf
  answers "is the chain trusted?", independent of names and usages, which are checked separately.

* **Anchors are CAs only.** A non-CA certificate in a bundle is never put into the store, nor is the
  leaf itself (a certificate in the store trusts itself).

* **A diagnosis** when the verifier says no: ``UnknownRoot`` when the chain ends at a root the
  bundle does not hold (whether that root sits in ``tls.crt`` or only in the Secret's ``ca.crt``),
  naming the root's subject and fingerprint; ``IncompleteChain`` when an issuer is missing from
  both the Secret and the bundle (the usual "forgot the intermediate"); ``UntrustedChain``
  otherwise, with the verifier's reason in plain words (never the library's own wording).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.x509.verification import (
    ClientVerifier,
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from certpolicy.pki.cache import FifoCache
from certpolicy.pki.fingerprint import certificate_fingerprint
from certpolicy.pki.inspect import issuer_of, signed_by, subject_of, summarize

UNTRUSTED = "UntrustedChain"
INCOMPLETE = "IncompleteChain"
UNKNOWN_ROOT = "UnknownRoot"
MAX_CHAIN_DEPTH = 8


def private_ca_policies() -> tuple[ExtensionPolicy, ExtensionPolicy]:
    """``(ca_policy, ee_policy)`` for private PKIs; see the module docstring for the reasoning.

    The CA policy requires basicConstraints (any criticality) and lets keyUsage be absent; the
    *values* — ``cA=TRUE`` on every issuer, ``keyCertSign`` when keyUsage is present, ``cA`` not
    asserted by the leaf — are checked on the path the verifier returns (:func:`_profile_problem`)
    instead of in Python validator callbacks, which cost more than the rest of the bookkeeping.
    This can only make the answer stricter, never trust a path the callbacks would refuse.
    """
    ca = (
        ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, Criticality.AGNOSTIC, None)
        .may_be_present(x509.KeyUsage, Criticality.AGNOSTIC, None)
    )
    ee = ExtensionPolicy.permit_all()
    return ca, ee


def _profile_problem(chain: Sequence[x509.Certificate], path: Sequence[str]) -> str | None:
    """What the private-CA profile finds wrong with a path the verifier accepted, if anything."""
    if summarize(chain[0], path[0]).is_ca:
        return "the leaf is itself marked as a CA (basicConstraints cA=TRUE)"
    for c, fp in zip(chain[1:], path[1:]):
        s = summarize(c, fp)
        if not s.is_ca:
            return f"issuer '{s.display_name}' is not a CA (basicConstraints cA is FALSE)"
        if s.has_key_usage and "keyCertSign" not in s.key_usage:
            return f"issuer '{s.display_name}' has a keyUsage without keyCertSign"
    return None


_CA_POLICY, _EE_POLICY = private_ca_policies()


@dataclass(frozen=True)
class TrustAnchors:
    """A trust bundle ready for verification: its CA certificates, a prebuilt store and a digest.

    Build it once per bundle (:meth:`of` caches by content) rather than per check: the store and the
    fingerprints are then shared by every Secret verified against the bundle.
    """

    certificates: tuple[x509.Certificate, ...]  # usable anchors: CA certificates
    rejected: tuple[x509.Certificate, ...]  # in the bundle but not CAs: never trusted
    fingerprints: frozenset[str]  # of ``certificates``
    digest: str  # "sha256:" over the sorted fingerprints of everything given
    store: Store | None = field(repr=False, compare=False)

    @classmethod
    def of(cls, certs: Iterable[x509.Certificate]) -> TrustAnchors:
        # A tuple is immutable: the same tuple object (the operator passes one bundle tuple to every
        # evaluation of a pass) is looked up by identity. The content lookup below hashes every
        # certificate in it, which cryptography does by walking each one's parsed structure:
        # ~35,000 instructions per CA, paid by every evaluation (docs/benchmarks.md, issue 28).
        given = certs if type(certs) is tuple else None
        if given is not None:
            same = _ANCHORS_BY_ID.get(id(given))
            if same is not None and same[0] is given:
                return same[1]
        certs = tuple(certs)
        cached = _ANCHORS.get(certs)
        if cached is None:
            cached = cls._build(certs)
            _ANCHORS.put(certs, cached)
        if given is not None:
            _ANCHORS_BY_ID.put(id(given), (given, cached))  # holds the tuple: its id is not reused meanwhile
        return cached

    @classmethod
    def _build(cls, certs: tuple[x509.Certificate, ...]) -> TrustAnchors:
        seen: set[str] = set()
        usable: list[x509.Certificate] = []
        rejected: list[x509.Certificate] = []
        for c in certs:
            s = summarize(c)
            if s.fingerprint in seen:
                continue
            seen.add(s.fingerprint)
            (usable if s.is_ca else rejected).append(c)
        digest = "sha256:" + hashlib.sha256("\n".join(sorted(seen)).encode()).hexdigest()
        fps = frozenset(summarize(c).fingerprint for c in usable)
        return cls(tuple(usable), tuple(rejected), fps, digest, Store(usable) if usable else None)

    def __len__(self) -> int:
        return len(self.certificates)

    def fingerprint_of(self, cert: x509.Certificate) -> str:
        """The fingerprint of one of these anchors (found by identity, else by equality), without
        hashing it again."""
        fps = self._fps
        for c, fp in zip(self.certificates, fps):
            if c is cert:  # the verifier returns the store's own objects: no comparison needed
                return fp
        for c, fp in zip(self.certificates, fps):
            if c == cert:  # ~2 µs: cryptography compares the parsed structures
                return fp
        return certificate_fingerprint(cert)

    @property
    def _fps(self) -> tuple[str, ...]:
        fps = self.__dict__.get("_fps_cache")
        if fps is None:
            fps = tuple(summarize(c).fingerprint for c in self.certificates)
            object.__setattr__(self, "_fps_cache", fps)
        return fps

    def without(self, fp: str) -> TrustAnchors:
        """These anchors minus one certificate (used to keep a leaf out of its own store)."""
        return TrustAnchors.of(c for c in self.certificates if summarize(c).fingerprint != fp)


_ANCHORS: FifoCache[tuple[x509.Certificate, ...], TrustAnchors] = FifoCache(1024, name="trust-anchors")
_ANCHORS_BY_ID: FifoCache[int, tuple[tuple[x509.Certificate, ...], TrustAnchors]] = FifoCache(256, name="trust-anchors-by-identity")


@dataclass(frozen=True)
class UnknownRootInfo:
    """The root a rejected chain ends at, when the trust bundle does not hold it."""

    subject: str
    fingerprint: str  # "sha256:<hex>"
    found_in: str  # "tls.crt" (served with the chain) or "ca.crt" (only next to it)
    same_name_in_bundle: bool  # the bundle holds another certificate with this subject (re-keyed root?)


@dataclass(frozen=True)
class ChainResult:
    """The outcome of :func:`verify_chain`."""

    trusted: bool
    anchor_fingerprint: str | None
    path: tuple[str, ...]  # fingerprints, leaf first, anchor last (empty when untrusted)
    reason: str | None  # None | "UntrustedChain" | "IncompleteChain" | "UnknownRoot"
    detail: str
    certificates: tuple[x509.Certificate, ...] = field(default=(), repr=False, compare=False)
    root: UnknownRootInfo | None = None  # set with reason "UnknownRoot"

    @property
    def anchor(self) -> x509.Certificate | None:
        return self.certificates[-1] if self.trusted and self.certificates else None


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    anchors: Sequence[x509.Certificate] | TrustAnchors,
    now: dt.datetime,
    *,
    max_depth: int = MAX_CHAIN_DEPTH,
    fingerprints: Sequence[str] = (),
    described_by: Sequence[x509.Certificate] = (),
) -> ChainResult:
    """Verify ``leaf`` + ``intermediates`` against ``anchors`` at ``now`` with the private-CA profile.

    ``now`` must be aware; it is converted to UTC before it reaches the verifier. ``fingerprints``
    may give those of the leaf and the intermediates (as :class:`SecretMaterial` has them) to save
    recomputing them. ``described_by`` are certificates that never count for trust but may explain
    a failure (the Secret's ``ca.crt``: peers do not receive it, yet the root it holds is the one
    to name). Never raises on certificate content: every failure is a :class:`ChainResult` with a
    reason.
    """
    if now.tzinfo is not dt.UTC:
        now = as_utc(now)
    ta = anchors if isinstance(anchors, TrustAnchors) else TrustAnchors.of(anchors)
    known = len(fingerprints) == 1 + len(intermediates)
    leaf_fp = fingerprints[0] if known else certificate_fingerprint(leaf)
    if leaf_fp in ta.fingerprints:
        ta = ta.without(leaf_fp)
    if ta.store is None:
        return ChainResult(False, None, (), UNTRUSTED, "the trust bundle holds no CA certificate")
    inters = list(intermediates)
    try:
        chain = tuple(_verifier(ta, now, max_depth).verify(leaf, inters).chain)
    except VerificationError as e:
        return _diagnose(leaf, inters, ta, str(e), described_by)
    except Exception as e:  # e.g. UnsupportedGeneralNameType in an otherwise valid chain
        return ChainResult(False, None, (), UNTRUSTED, f"the chain could not be verified ({type(e).__name__})")
    # Name the path's certificates by what we gave the verifier: it returns the very objects it was
    # given (identity first; an equality test costs ~2 µs, cryptography compares parsed structures).
    path = [leaf_fp]
    for c in chain[1:-1]:
        i = next((i for i, k in enumerate(inters) if k is c), -1)
        if i < 0:
            i = next((i for i, k in enumerate(inters) if k == c), -1)
        path.append(fingerprints[1 + i] if known and i >= 0 else certificate_fingerprint(c))
    if len(chain) > 1:
        path.append(ta.fingerprint_of(chain[-1]))
    problem = _profile_problem(chain, path)
    if problem is not None:
        return ChainResult(False, None, (), UNTRUSTED, problem)
    return ChainResult(True, path[-1], tuple(path), None, "", chain)


_VERIFIERS: FifoCache[tuple[str, dt.datetime, int], ClientVerifier] = FifoCache(64, name="verifiers")


def _verifier(ta: TrustAnchors, now: dt.datetime, max_depth: int) -> ClientVerifier:
    """A verifier for (bundle, instant), reused: one evaluation pass checks every Secret at the
    same ``now`` against the same few bundles, and a verifier is immutable."""
    key = (ta.digest, now, max_depth)
    v = _VERIFIERS.get(key)
    if v is None:
        if ta.store is None:  # callers only verify against anchors that hold certificates
            raise ValueError("no trust anchors to verify against")
        v = (
            PolicyBuilder()
            .store(ta.store)
            .time(now)
            .max_chain_depth(max_depth)
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
            .build_client_verifier()
        )
        _VERIFIERS.put(key, v)
    return v


def as_utc(now: dt.datetime) -> dt.datetime:
    """An aware UTC datetime; a naive one is taken to be UTC already."""
    if now.tzinfo is None:
        return now.replace(tzinfo=dt.UTC)
    return now.astimezone(dt.UTC)


# --- diagnosis -----------------------------------------------------------------------------------

_FRIENDLY = (
    ("not valid at validation time", "a certificate in the chain is expired or not yet valid"),
    ("Forbidden signature algorithm", "a certificate in the chain is signed with an algorithm the verifier refuses (SHA-1, MD5 or a non-standard one)"),
    ("Forbidden public key algorithm", "a CA key uses an algorithm other than RSA, P-256, P-384 or P-521"),
    ("RSA key is too weak", "a CA's RSA key is shorter than 2048 bits"),
    ("issuer is not a CA", "an issuer is not a CA (basicConstraints cA is FALSE)"),
    ("must be asserted in a CA", "an issuer is not a CA (basicConstraints cA is FALSE)"),
    ("missing required extension", "an issuer has no basicConstraints extension, so it is not a CA"),
    ("keyCertSign", "an issuer's keyUsage does not allow certificate signing (no keyCertSign)"),
    ("leaf asserts basicConstraints", "the leaf is itself marked as a CA (basicConstraints cA=TRUE)"),
    ("path length constraint", "a CA's pathLenConstraint forbids a chain this long"),
    ("X509v3", "a certificate in the chain is not X.509 v3"),
    ("signature does not match", "a signature in the chain does not verify (wrong issuer key)"),
    ("name constraint", "a name in the leaf violates a CA's name constraints"),
    ("maximum depth", "the chain is longer than the maximum depth"),
    ("unaccounted-for critical extension", "a certificate has a critical extension the verifier does not understand"),
    ("serial", "a certificate's serial number is invalid (zero, negative or longer than 20 bytes)"),
)
_CERT_REPR = re.compile(r"\s*\(encountered processing <Certificate\(.*?\)>\)")


def _friendly(error: str) -> str:
    for needle, text in _FRIENDLY:
        if needle in error:
            return text
    cleaned = _CERT_REPR.sub("", error).removeprefix("validation failed: ")
    return cleaned[:300]


def _name(c: x509.Certificate) -> str:
    s = summarize(c)
    return f"'{s.display_name}'"


def _diagnose(leaf: x509.Certificate, inters: Sequence[x509.Certificate], ta: TrustAnchors, error: str,
              described_by: Sequence[x509.Certificate] = ()) -> ChainResult:
    """Explain a failed verification. Walks issuer links (only to *describe* the failure; trust was
    decided by the verifier) to tell a missing intermediate from an unknown root or a broken chain.
    The walk may go through ``described_by`` (``ca.crt``) to find the root the chain ends at, but
    an intermediate found only there is still missing from what peers receive."""
    interior = "no interior errors" not in error
    cur, seen = leaf, {certificate_fingerprint(leaf)}
    only_in_ca_crt: x509.Certificate | None = None  # first intermediate found in ca.crt, not tls.crt
    found_in = "tls.crt"
    for _ in range(MAX_CHAIN_DEPTH + 2):
        anchor = next((a for a in ta.certificates if signed_by(cur, a)), None)
        if anchor is not None:
            if only_in_ca_crt is not None:
                return _intermediate_only_in_ca_crt(only_in_ca_crt)
            return ChainResult(False, None, (), UNTRUSTED, f"{_name(cur)} is issued by bundle CA {_name(anchor)}, but the chain is rejected: {_friendly(error)}")
        s = summarize(cur)
        if s.self_signed:
            if cur is not leaf and s.is_ca:
                return _unknown_root(cur, ta, found_in)
            why = _friendly(error) if interior else "it is not in the trust bundle"
            return ChainResult(False, None, (), UNTRUSTED, f"the chain ends at self-signed {_name(cur)}: {why}")
        nxt = next((i for i in inters if certificate_fingerprint(i) not in seen and signed_by(cur, i)), None)
        if nxt is None:
            nxt = next((i for i in described_by if certificate_fingerprint(i) not in seen and signed_by(cur, i)), None)
            if nxt is not None:
                found_in = "ca.crt"
                if only_in_ca_crt is None and not summarize(nxt).self_signed:
                    only_in_ca_crt = nxt
        if nxt is None:
            if only_in_ca_crt is not None:
                return _intermediate_only_in_ca_crt(only_in_ca_crt)
            cur_issuer = issuer_of(cur)
            same_name = [c for c in (*ta.certificates, *inters) if cur_issuer is not None and subject_of(c) == cur_issuer and c is not cur]
            if same_name:
                return ChainResult(False, None, (), UNTRUSTED, f"{_name(cur)} names issuer '{s.issuer}', but no certificate with that name verifies its signature (CA re-keyed?)")
            if interior:
                return ChainResult(False, None, (), UNTRUSTED, _friendly(error))
            return ChainResult(
                False,
                None,
                (),
                INCOMPLETE,
                f"the issuer '{s.issuer}' of {_name(cur)} is neither in the Secret nor in the trust bundle: add the missing intermediate to the chain, or the certificate comes from a CA the bundle does not trust",
            )
        seen.add(certificate_fingerprint(nxt))
        cur = nxt
    return ChainResult(False, None, (), UNTRUSTED, _friendly(error))


def _intermediate_only_in_ca_crt(inter: x509.Certificate) -> ChainResult:
    return ChainResult(False, None, (), INCOMPLETE, f"the intermediate {_name(inter)} is in the Secret's ca.crt but not in tls.crt, and peers receive only tls.crt: add it to tls.crt after the leaf")


def _unknown_root(root: x509.Certificate, ta: TrustAnchors, found_in: str) -> ChainResult:
    """The chain ends at a self-signed CA that the bundle does not hold: say which, in words."""
    s = summarize(root)
    same_name = any(summarize(c).subject == s.subject for c in ta.certificates)
    info = UnknownRootInfo(s.subject, s.fingerprint, found_in, same_name)
    detail = f"the chain ends at the root '{s.subject}' (SHA-256 fingerprint {s.fingerprint}), which the trust bundle does not hold"
    return ChainResult(False, None, (), UNKNOWN_ROOT, detail, root=info)

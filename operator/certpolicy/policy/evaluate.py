"""(requirements, a Secret's material, trust bundle, now) → :class:`Evaluation`.

This is where the checks meet. It is pure — no cluster, no clock of its own — and total: every
input, however broken, yields an Evaluation; a check that fails unexpectedly becomes a
``CheckFailed`` finding instead of an exception.

Roles. The leaf is ``leaf``. Certificates of the verified path above it are ``intermediate``, and
the anchor is ``root`` when self-signed. Certificates the Secret itself carries (``tls.crt`` after
the leaf, ``ca.crt``) are ``intermediate`` or ``root`` by their nature. Trust-bundle CAs not on the
path are ``bundleCA``. Findings about a CA that is neither in the Secret nor on the leaf's path (a
bundle CA anchoring something else) are capped at Warning: it needs attention, but this Secret does
not break because of it.

No trust bundle. When the policy names none (``trust_bundle=None``) the chain is verified against
the Secret's own ``ca.crt`` if it has one — which catches a ``tls.crt`` that does not belong with
its ``ca.crt`` — and chain failures are then Warnings, since the CA the Secret ships says nothing
about what its peers trust. Without ``ca.crt`` either, the chain is not verified (``ChainNotVerified``,
Info).

Caching. :class:`Evaluator` keeps each Evaluation until the first instant at which the passage of
time alone could change it (:attr:`Evaluation.valid_until`): the next notBefore, notAfter, warning or
critical threshold of any certificate considered. Re-checking an unchanged Secret is then a dict
lookup.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from bisect import bisect_right
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from cryptography import x509

from certpolicy.pki import cache
from certpolicy.pki.cache import FifoCache
from certpolicy.pki.chain import ChainResult, TrustAnchors, as_utc, verify_chain
from certpolicy.pki.fingerprint import certificate_fingerprint
from certpolicy.pki.inspect import CertSummary, summarize
from certpolicy.pki.publicroots import PublicRoots, default_public_roots
from certpolicy.pki.secretdata import KeyStatus, SecretMaterial
from certpolicy.policy.findings import REASONS, CertRef, Finding, Role, Severity, finding
from certpolicy.policy.sans import check_names
from certpolicy.policy.spec import Requirements
from certpolicy.policy.strength import check_strength
from certpolicy.policy.usage import check_ca_eku, check_leaf_eku, public_ca_client_auth
from certpolicy.policy.validity import change_instants, check_expiry
from certpolicy.timestamps import rfc3339

log = logging.getLogger(__name__)
TrustBundle = Sequence[x509.Certificate] | TrustAnchors
FILE_MATERIAL = ("file", "pkcs12")  # SecretMaterial.secret_type of what `certpolicy check` read from files


class CertificateEntry(NamedTuple):
    """A certificate considered in an evaluation, with its role. (A NamedTuple: immutable like a
    frozen dataclass, and several are built per evaluation on the hot path.)"""

    role: Role
    summary: CertSummary
    on_path: bool  # in the Secret's chain or on the verified path (findings not capped)
    source: str  # "secret" | "file" (the chain: a Secret's, or a file's) | "ca.crt" | "bundle"

    @property
    def ref(self) -> CertRef:
        return CertRef.of(self.role, self.summary)

    def to_dict(self) -> dict[str, Any]:
        return {"role": self.role.value, "source": self.source, **self.summary.to_dict()}


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The verdict on one Secret under one policy at one instant."""

    findings: tuple[Finding, ...]  # worst first
    anchor_fingerprint: str | None  # the bundle CA the leaf chains to (None: untrusted/unchecked)
    certificates: tuple[CertificateEntry, ...]
    valid_until: dt.datetime | None  # next instant the result may change by time alone; None: never
    evaluated_at: dt.datetime
    valid_from: dt.datetime | None = None  # last such instant at or before evaluated_at
    chain_path: tuple[str, ...] = ()  # fingerprints leaf→anchor when trusted

    @property
    def worst_severity(self) -> Severity | None:
        return self.findings[0].severity if self.findings else None

    @property
    def compliant(self) -> bool:
        """No Warning or Critical finding (Info findings do not count)."""
        return not self.findings or self.findings[0].severity < Severity.WARNING

    @property
    def reasons(self) -> tuple[str, ...]:
        """Distinct reasons, worst first: what a status's bounded violation list shows."""
        return tuple(dict.fromkeys(f.reason for f in self.findings))

    @property
    def leaf(self) -> CertSummary | None:
        for e in self.certificates:
            if e.role is Role.LEAF:
                return e.summary
        return None

    @property
    def leaf_issuer(self) -> str | None:
        """The leaf's issuer name as the subject of the certificate that issued it on the
        verified path (chain building matches the two names exactly), None when the chain was not
        verified. That CA's summary names it once for all its leaves; reading the leaf's own
        issuer costs a re-parse of every leaf (~12 µs; 1.2 s of a first pass over 100,000)."""
        if len(self.chain_path) < 2:
            return None
        parent = self.chain_path[1]
        for e in self.certificates:
            if e.summary.fingerprint == parent:
                return e.summary.subject
        return None

    def holds_at(self, now: dt.datetime) -> bool:
        """Whether this result is still the answer at ``now`` (no threshold crossed since)."""
        return (self.valid_from is None or self.valid_from <= now) and (self.valid_until is None or now < self.valid_until)

    def to_dict(self) -> dict[str, Any]:
        worst = self.worst_severity
        return {
            "compliant": self.compliant,
            "worstSeverity": worst.label if worst else None,
            "anchorFingerprint": self.anchor_fingerprint,
            "validUntil": _iso(self.valid_until),
            "findings": [f.to_dict() for f in self.findings],
            "certificates": [e.to_dict() for e in self.certificates],
        }


def _iso(t: dt.datetime | None) -> str | None:
    return rfc3339(t) if t is not None else None


def evaluate(
    requirements: Requirements,
    material: SecretMaterial,
    trust_bundle: TrustBundle | None,
    now: dt.datetime,
    *,
    public_roots: PublicRoots | None = None,
) -> Evaluation:
    """Check ``material`` against ``requirements`` at ``now``. Never raises on certificate content.

    ``trust_bundle`` is the policy's bundle (certificates or a prebuilt :class:`TrustAnchors`), or
    None when the policy names none — see the module docstring. ``now`` should be aware (a naive
    value is taken as UTC). ``public_roots`` defaults to certifi + the system store, consulted only
    when the policy requires clientAuth.
    """
    return _Run(requirements, material, trust_bundle, as_utc(now), public_roots).run()


class _Run:
    """One evaluation; a class only to share its working state between the steps."""

    __slots__ = ("req", "material", "bundle", "now", "public_roots", "findings", "entries", "chain", "leaf_checks")

    def __init__(self, req: Requirements, material: SecretMaterial, bundle: TrustBundle | None, now: dt.datetime, public_roots: PublicRoots | None) -> None:
        self.req, self.material, self.bundle, self.now = req, material, bundle, now
        self.public_roots = public_roots
        self.findings: list[Finding] = []
        self.entries: dict[str, CertificateEntry] = {}
        self.chain: ChainResult | None = None
        self.leaf_checks: _CertChecks | None = None

    def run(self) -> Evaluation:
        m = self.material
        if m.problems or m.key_status is not KeyStatus.MATCH:
            self._guard(self._input_findings, "input")
        if m.leaf is not None:
            self._guard(self._certificates, "certificate")
        return self._result()

    def _guard(self, step: Callable[[], object], what: str) -> bool:
        try:
            step()
            return True
        except Exception as e:  # a bug must cost one finding, not the whole evaluation, and never be silent
            log.exception("internal error in the %s check (reported as a CheckFailed finding)", what)
            self.findings.append(finding("CheckFailed", f"internal error in the {what} check ({type(e).__name__})"))
            return False

    # --- steps ---

    def _input_findings(self) -> None:
        m = self.material
        for p in m.problems:
            reason = p.reason if p.reason in REASONS else "MalformedCertificate"
            self.findings.append(finding(reason, str(p)))
        status = m.key_status
        if status is KeyStatus.MATCH or (status is KeyStatus.MISSING and not (self.req.require_private_key and m.leaf is not None)):
            return
        leaf_ref = CertRef.of(Role.LEAF, summarize(m.leaf)) if m.leaf is not None else None
        if status is KeyStatus.MISMATCH:
            self.findings.append(finding("KeyMismatch", m.key_detail or "the private key does not belong to the certificate", leaf_ref))
        elif status is KeyStatus.ENCRYPTED:
            self.findings.append(finding("EncryptedKey", m.key_detail or "the private key is encrypted", leaf_ref))
        elif status is KeyStatus.UNSUPPORTED:
            self.findings.append(finding("UnsupportedKey", m.key_detail or "the private key is in an unsupported format", leaf_ref))
        elif status is KeyStatus.MALFORMED:
            self.findings.append(finding("MalformedKey", m.key_detail or "the private key cannot be parsed", leaf_ref))
        else:
            where = f" ({m.key_detail})" if m.key_detail else ""
            self.findings.append(finding("MissingPrivateKey", f"the policy requires a private key next to the certificate and there is none{where}", leaf_ref))

    def _certificates(self) -> None:
        m = self.material
        leaf = m.leaf
        assert leaf is not None
        fps = m.fingerprints if len(m.fingerprints) == 1 + len(m.intermediates) else ()
        leaf_s = summarize(leaf, fps[0] if fps else None)
        add = self._add
        own = "file" if m.secret_type in FILE_MATERIAL else "secret"  # where the chain came from
        add(leaf_s, Role.LEAF, True, own)

        anchors, chain_cap, source = self._anchors()
        if anchors is not None:
            self._guard(lambda: self._verify(leaf, leaf_s, anchors, fps, chain_cap), "chain")
        else:
            self.findings.append(finding("ChainNotVerified", "no trust bundle is configured and the Secret has no ca.crt; the chain was not verified", CertRef.of(Role.LEAF, leaf_s)))

        chain = self.chain
        trusted = chain is not None and chain.trusted
        if chain is not None and trusted:
            path, path_fps = chain.certificates, chain.path
            last = len(path) - 1
            for i in range(1, len(path)):
                s = summarize(path[i], path_fps[i])
                is_anchor = i == last
                add(s, Role.ROOT if (is_anchor and s.self_signed) else Role.INTERMEDIATE, True, source if is_anchor else own)
        for i, c in enumerate(m.intermediates):
            s = summarize(c, fps[i + 1] if fps else None)
            add(s, Role.ROOT if s.self_signed else Role.INTERMEDIATE, True, own)
        for c in m.ca_certificates:
            s = summarize(c)
            add(s, Role.ROOT if s.self_signed else Role.INTERMEDIATE, source == "ca.crt" and not trusted, "ca.crt")
        if anchors is not None and source == "bundle":
            for c in anchors.certificates:
                add(summarize(c), Role.BUNDLE_CA, False, "bundle")
            for c in anchors.rejected:
                s = summarize(c)
                self.findings.append(finding("NonCACertificateInBundle", f"trust bundle certificate '{s.display_name}' is not a CA; it is never used as a trust anchor", CertRef.of(Role.BUNDLE_CA, s)))

        self._guard(self._per_certificate, "expiry, key and signature")
        self._guard(lambda: self._leaf_checks(leaf, leaf_s), "EKU and SAN")

    def _per_certificate(self) -> None:
        req, now, out = self.req, self.now, self.findings
        for e in self.entries.values():
            p = self._checks(e)
            if not p.quiet_from <= now < p.quiet_until:
                out.extend(check_expiry(req, e.summary, e.role, now, None if e.on_path else Severity.WARNING))
            if p.strength:
                out.extend(p.strength)

    def _leaf_checks(self, leaf: x509.Certificate, s: CertSummary) -> None:
        req, out = self.req, self.findings
        out.extend(check_leaf_eku(req, s))
        out.extend(check_names(req, s))
        if s.is_ca:
            out.append(finding("LeafIsCA", f"the certificate served as leaf, '{s.display_name}', is a CA certificate", CertRef.of(Role.LEAF, s)))
        if not (self.chain and self.chain.trusted) and s.self_signed:
            out.append(finding("SelfSignedLeaf", f"leaf '{s.display_name}' is self-signed", CertRef.of(Role.LEAF, s)))
        if req.extended_key_usages:
            for e in self.entries.values():
                if e.role is not Role.LEAF and e.on_path and e.source != "ca.crt" and e.summary.has_eku:
                    out.extend(check_ca_eku(req, e.summary, e.role))
        if "clientAuth" in req.extended_key_usages:
            self._public_ca(leaf, s)

    def _anchors(self) -> tuple[TrustAnchors | None, Severity | None, str]:
        if self.bundle is not None:
            ta = self.bundle if isinstance(self.bundle, TrustAnchors) else TrustAnchors.of(self.bundle)
            return ta, None, "bundle"
        if self.material.ca_certificates:
            return TrustAnchors.of(self.material.ca_certificates), Severity.WARNING, "ca.crt"
        return None, None, ""

    def _verify(self, leaf: x509.Certificate, s: CertSummary, anchors: TrustAnchors, fps: tuple[str, ...], cap: Severity | None) -> None:
        # ca.crt never completes a chain (peers receive only tls.crt), but it may hold the root the
        # chain ends at, which the diagnosis then names.
        described_by = self.material.ca_certificates if cap is None else ()
        self.chain = result = verify_chain(leaf, self.material.intermediates, anchors, self.now, fingerprints=fps,
                                           described_by=described_by)
        if result.trusted or result.reason is None:
            return
        where = "the Secret's own ca.crt (the policy names no trust bundle)" if cap else "the policy's trust bundle"
        if result.root is not None:
            root = result.root
            found = "in tls.crt" if root.found_in == "tls.crt" else "in the Secret's ca.crt"
            same = (" The bundle holds a different certificate with the same subject: was that root re-keyed?"
                    if root.same_name_in_bundle else "")
            msg = (f"the chain of '{s.display_name}' ends at a root that {where} does not hold: "
                   f"'{root.subject}' (SHA-256 fingerprint {root.fingerprint}, found {found}). Peers that trust "
                   f"only that bundle reject this certificate: add the root to the bundle, or re-issue the "
                   f"certificate from a CA the bundle holds.{same}")
        elif result.reason == "IncompleteChain":
            msg = f"chain of '{s.display_name}' is incomplete against {where}: {result.detail}"
        else:
            msg = f"'{s.display_name}' does not chain to {where}: {result.detail}"
        self.findings.append(finding(result.reason, msg, CertRef.of(Role.LEAF, s), cap))

    def _public_ca(self, leaf: x509.Certificate, s: CertSummary) -> None:
        roots = self.public_roots if self.public_roots is not None else default_public_roots()
        chain = self.chain
        if chain is not None and chain.trusted:
            if chain.anchor_fingerprint in roots.fingerprints and chain.anchor is not None:
                self.findings.append(public_ca_client_auth(s, summarize(chain.anchor).display_name))
            return
        anchor = roots.find_anchor(leaf, self.material.intermediates, self.now)
        if anchor is not None:
            self.findings.append(public_ca_client_auth(s, summarize(anchor).display_name))

    # --- assembly ---

    def _add(self, s: CertSummary, role: Role, on_path: bool, source: str) -> None:
        fp = s.fingerprint
        if fp in self.entries:
            return
        if role is Role.LEAF:
            self.entries[fp] = CertificateEntry(role, s, on_path, source)
            return
        key = (role, fp, on_path, source)
        e = _ENTRIES.get(key)
        if e is None or e.summary is not s:
            e = CertificateEntry(role, s, on_path, source)
            _ENTRIES.put(key, e)
        self.entries[fp] = e

    def _checks(self, e: CertificateEntry) -> _CertChecks:
        """A CA's checks come from the shared cache; the leaf's are computed once per evaluation
        and not kept: the evaluation itself is cached, and a cache entry per Secret is ~270 bytes."""
        if e.role is not Role.LEAF:
            return _checks_of(self.req, e)
        if self.leaf_checks is None:
            self.leaf_checks = _cert_checks(self.req, e)
        return self.leaf_checks

    def _result(self) -> Evaluation:
        now = self.now
        upcoming: dt.datetime | None = None
        past: dt.datetime | None = None
        for e in self.entries.values():
            instants = self._checks(e).instants
            i = bisect_right(instants, now)
            if i < len(instants) and (upcoming is None or instants[i] < upcoming):
                upcoming = instants[i]
            if i and (past is None or instants[i - 1] > past):
                past = instants[i - 1]
        findings = self.findings
        if len(findings) > 1:
            findings.sort(key=Finding.sort_key)
        chain = self.chain
        trusted = chain is not None and chain.trusted
        return Evaluation(
            findings=tuple(findings),
            anchor_fingerprint=chain.anchor_fingerprint if trusted and chain else None,
            certificates=tuple(self.entries.values()),
            valid_until=upcoming,
            evaluated_at=now,
            valid_from=past,
            chain_path=chain.path if trusted and chain else (),
        )


class _CertChecks(NamedTuple):
    """The time-independent part of the per-certificate checks, computed once per certificate,
    role and requirements: most certificates in an evaluation are CAs shared by every Secret."""

    quiet_from: dt.datetime  # from notBefore ...
    quiet_until: dt.datetime  # ... until warningBefore ahead of notAfter, no expiry finding
    instants: tuple[dt.datetime, ...]  # sorted: where expiry results change
    strength: tuple[Finding, ...]


#: The checks of CA certificates (the leaf's are not kept, see ``_Run._checks``).
_CHECKS: FifoCache[tuple[Requirements, str, Role, bool], _CertChecks] = FifoCache(
    65536, name="checks", keep=lambda key, _checks, live: key[1] in live.fingerprints, per_secret=1)

#: The entries of certificates other than the leaf, one object per (role, certificate, on path,
#: source) shared by every evaluation that considers it: a CA is considered by every Secret it
#: issued, and each held evaluation used to carry its own copies (~240 bytes per Secret).
_ENTRIES: FifoCache[tuple[Role, str, bool, str], CertificateEntry] = FifoCache(
    4096, name="entries", keep=lambda key, _entry, live: key[1] in live.fingerprints, per_secret=1)


def _checks_of(req: Requirements, e: CertificateEntry) -> _CertChecks:
    key = (req, e.summary.fingerprint, e.role, e.on_path)
    c = _CHECKS.get(key)
    if c is None:
        c = _cert_checks(req, e)
        _CHECKS.put(key, c)
    return c


def _cert_checks(req: Requirements, e: CertificateEntry) -> _CertChecks:
    s = e.summary
    return _CertChecks(
        s.not_before,
        s.not_after - req.warning_before,
        tuple(sorted(change_instants(req, s))),
        tuple(check_strength(req, s, e.role, None if e.on_path else Severity.WARNING)),
    )


def retain_caches(materials: Iterable[SecretMaterial], evaluators: Iterable[Evaluator] = (),
                  anchors: Iterable[x509.Certificate] = ()) -> int:
    """Forget everything the engine's caches hold about certificates and Secrets that are no
    longer in ``materials`` (the live inventory) or ``anchors`` (trust bundles); returns how many
    entries were dropped.

    The caches are bounded, but their bound must exceed the working set (a full re-evaluation
    must hit); in a cluster whose Secrets churn, a replaced certificate would otherwise stay
    cached until tens of thousands of newer ones pushed it out — memory that grows with churn,
    not with the cluster. Everything dropped is recomputed on demand, so this is always safe.
    """
    digests: set[str] = set()
    fps: set[str] = set()
    for m in materials:
        digests.add(m.content_digest)
        fps.update(m.fingerprints)
        fps.update(certificate_fingerprint(c) for c in m.ca_certificates)
    fps.update(certificate_fingerprint(c) for c in anchors)
    dropped = cache.sweep(cache.Live(frozenset(fps), frozenset(digests)))
    for evaluator in evaluators:
        dropped += evaluator.retain(digests)
    return dropped


class Evaluator:
    """A cache in front of :func:`evaluate`, keyed by (requirements, material digest, bundle digest).

    A cached Evaluation is returned while ``now`` lies in ``[valid_from, valid_until)``: nothing that
    the key does not capture can change it before then. Bounded (the oldest entries go first,
    see :mod:`certpolicy.pki.cache`); safe to share between threads (at worst two threads evaluate the same key once each).
    """

    #: How many batches' sizes are remembered to size the caches (policies come and go; the
    #: oldest are forgotten first, and :meth:`forget_batch` drops a deleted policy's).
    MAX_BATCHES = 1024

    def __init__(self, *, max_entries: int = 65536, public_roots: PublicRoots | None = None) -> None:
        self._cache: FifoCache[tuple[Requirements, str, str], Evaluation] = FifoCache(max_entries)
        self._bundles: dict[int, tuple[object, str]] = {}
        self.public_roots = public_roots
        self._batches_lock = threading.Lock()  # policies' passes run in threads of their own
        self._batches: dict[Hashable, int] = {}

    @property
    def hits(self) -> int:
        return self._cache.hits

    @property
    def misses(self) -> int:
        return self._cache.misses

    def evaluate(self, requirements: Requirements, material: SecretMaterial, trust_bundle: TrustBundle | None, now: dt.datetime) -> Evaluation:
        if now.tzinfo is None:
            now = now.replace(tzinfo=dt.UTC)
        key = (requirements, material.content_digest, self._bundle_digest(trust_bundle))
        cached = self._cache.get(key)
        if cached is not None and (cached.valid_from is None or cached.valid_from <= now) and (cached.valid_until is None or now < cached.valid_until):
            return cached
        result = evaluate(requirements, material, trust_bundle, now, public_roots=self.public_roots)
        self._cache.put(key, result)
        return result

    def evaluate_many(self, requirements: Requirements, materials: Sequence[SecretMaterial],
                      trust_bundle: TrustBundle | None, now: dt.datetime, *, whole: bool = True,
                      batch: Hashable | None = None) -> list[Evaluation]:
        """:meth:`evaluate` for each material, in order, in the calling thread.

        Not spread over threads: that paid off while cryptography released the GIL around the
        signature check (10,000 P-256 leaves in 3.0 s inline, 2.1 s on 2 threads, then).
        cryptography 50 holds it, and 2 threads were slower than one (169-179 against 197-207 µs
        per Secret, 5,000 Secrets cold). Several policies' passes still run side by side.

        ``batch`` names whose whole selection this is (the operator passes the policy's name;
        default: the requirements): the caches are sized for the latest batch of each name, summed.
        """
        n = len(materials)
        if whole:  # a pass's whole selection sizes the caches; a few Secrets judged ahead of it do not
            self._fit(requirements if batch is None else batch, n)
        return [self.evaluate(requirements, m, trust_bundle, now) for m in materials]

    def _fit(self, batch: Hashable, n: int) -> None:
        """Size the caches for every batch judged per pass: each batch name's latest size,
        summed. A bound below that makes a FIFO cache miss on every lookup of a pass (see
        :mod:`certpolicy.pki.cache`), and each pass re-verify every chain. Named per policy, not
        per requirements: two policies with the same requirements and different selections
        (two teams' Secrets) each hold their own, and sizing for one of them thrashed both."""
        with self._batches_lock:
            batches = self._batches
            batches.pop(batch, None)
            batches[batch] = n
            while len(batches) > self.MAX_BATCHES:
                del batches[next(iter(batches))]
            total = sum(batches.values())
        self._cache.reserve(total + total // 8)
        cache.fit(total)

    def forget_batch(self, batch: Hashable) -> None:
        """The batch (a deleted policy) is judged no more: the caches need not hold it."""
        with self._batches_lock:
            self._batches.pop(batch, None)

    def retain(self, digests: set[str]) -> int:
        """Forget evaluations of Secret contents not in ``digests`` (see :func:`retain_caches`)."""
        return self._cache.retain(lambda key, _: key[1] in digests)

    def clear(self) -> None:
        self._cache.clear()
        self._bundles.clear()

    def _bundle_digest(self, bundle: TrustBundle | None) -> str:
        if bundle is None:
            return ""
        if isinstance(bundle, TrustAnchors):
            return bundle.digest
        if isinstance(bundle, tuple):
            # Tuples of certificates are immutable: remember the digest by identity (holding a
            # reference, so the id cannot be reused while remembered).
            hit = self._bundles.get(id(bundle))
            if hit is not None and hit[0] is bundle:
                return hit[1]
            digest = TrustAnchors.of(bundle).digest
            if len(self._bundles) >= 256:
                self._bundles.clear()
            self._bundles[id(bundle)] = (bundle, digest)
            return digest
        return TrustAnchors.of(bundle).digest

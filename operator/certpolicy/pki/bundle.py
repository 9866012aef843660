"""Trust bundles: sets of CA certificates merged into targets, never blindly replaced.

Modelled on trust-manager's ``pkg/bundle``, where gathering sources, building the bundle, writing
targets and encoding truststores are separate steps. This module is the *build* step and nothing
else: it is pure (no API calls), the driver reads a target, calls :func:`merge`, writes only when
``changed``, then reads the target back and checks it with :func:`contains`. The PKCS#12 encoding
lives in :mod:`certpolicy.pki.truststore`.

Why sets and not bytes: two renderings of the same certificates (CRLF, comments, another order,
another tool's line width) are the same bundle. A write happens only when the *set* of
certificates changes, so a re-run never rewrites a ConfigMap (and never restarts a pod) just
because it was formatted differently — the most common source of churn in bundle tooling.

Why merge: "a tool that replaces the whole store" is one of the outages this operator exists to
prevent. Certificates in a target that this policy did not put there (another team's CA, a public
root someone pinned) are kept, unless the target is declared ``exclusive``. The policy's own CAs
are handled by fingerprint only: the caller says which of its CAs to add and which *retired* ones
to remove. Ownership is never guessed from a subject: a foreign CA may carry the same CN.

Canonical output: certificates sorted by subject (RFC 4514 string) then fingerprint, each one
rendered by cryptography as PEM (64-column base64, ``\\n`` line ends), concatenated with nothing
between or around them. The same set always yields the same text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from certpolicy.pki.fingerprint import certificate_fingerprint, short
from certpolicy.pki.inspect import summarize
from certpolicy.pki.load import load_certificates

PemInput = bytes | str | None
#: Loader problems after which the rest of the input was not read.
TRUNCATING = frozenset({"TooManyCertificates", "InputTooLarge"})


@dataclass(frozen=True)
class Bundle:
    """The certificates of one bundle, by fingerprint, in canonical order, plus what was unreadable."""

    certificates: tuple[x509.Certificate, ...]
    fingerprints: tuple[str, ...]  # parallel to ``certificates``
    problems: tuple[str, ...] = ()
    #: True when the loader stopped early (too many certificates, or too many bytes): what was not
    #: read is unknown, so a merge written from it would drop certificates. Writers refuse.
    truncated: bool = False

    @property
    def fingerprint_set(self) -> frozenset[str]:
        return frozenset(self.fingerprints)

    def by_fingerprint(self) -> dict[str, x509.Certificate]:
        return dict(zip(self.fingerprints, self.certificates))


@dataclass(frozen=True)
class BundleMerge:
    """The outcome of merging a policy's CAs into one target.

    ``changed`` compares *sets*: when it is False the driver must not write, even if the target's
    text is not canonical (rewriting it would only churn pods). ``problems`` describe the existing
    content (garbage, duplicates, leaves) and never stop the merge.
    """

    pem: str
    fingerprints: frozenset[str]
    changed: bool
    added: tuple[str, ...]
    removed: tuple[str, ...]
    kept_foreign: tuple[str, ...]
    foreign_leaves: tuple[str, ...]
    problems: tuple[str, ...]
    #: the existing content was not read in full: the driver must not write ``pem``
    truncated: bool = False


@dataclass(frozen=True)
class Containment:
    """Read-back verification of one target: truthy only when nothing is missing or left over."""

    missing: frozenset[str]
    unexpected: frozenset[str]
    problems: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.missing and not self.unexpected

    def __bool__(self) -> bool:
        return self.ok


def _sort_key(cert: x509.Certificate) -> tuple[str, str]:
    return (summarize(cert).subject, certificate_fingerprint(cert))


def _is_empty(data: PemInput) -> bool:
    if data is None:
        return True
    return not (data.strip() if isinstance(data, (bytes, str)) else True)


def read_bundle(data: PemInput) -> Bundle:
    """The distinct certificates in ``data`` (PEM or DER, any order, any garbage around). Never raises.

    An absent or blank target is an empty bundle without problems: a target that does not exist
    yet is normal, not an error.
    """
    if _is_empty(data):
        return Bundle((), (), ())
    loaded = load_certificates(data)
    problems = [str(p) for p in loaded.problems]
    seen: dict[str, x509.Certificate] = {}
    for cert in loaded.certificates:
        fp = certificate_fingerprint(cert)
        if fp in seen:
            problems.append(f"certificate {short(fp)} ({summarize(cert).display_name}) appears more than once")
            continue
        seen[fp] = cert
    ordered = sorted(seen.values(), key=_sort_key)
    truncated = any(p.reason in TRUNCATING for p in loaded.problems)
    return Bundle(tuple(ordered), tuple(certificate_fingerprint(c) for c in ordered), tuple(problems), truncated)


def encode_bundle(certificates: Iterable[x509.Certificate]) -> str:
    """Canonical PEM text of a set of certificates (deduplicated, sorted by subject then fingerprint)."""
    distinct = {certificate_fingerprint(c): c for c in certificates}
    ordered = sorted(distinct.values(), key=_sort_key)
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in ordered)


def _describe(cert: x509.Certificate) -> str:
    return f"{short(certificate_fingerprint(cert))} ({summarize(cert).display_name})"


def merge(
    existing_pem: PemInput,
    add: Iterable[x509.Certificate],
    remove_fingerprints: Iterable[str],
    exclusive: bool = False,
) -> BundleMerge:
    """Merge the policy's CAs into a target's current content.

    Result = (existing − ``remove_fingerprints``) ∪ ``add``; with ``exclusive`` the result is
    exactly ``add``. Unreadable parts of ``existing_pem`` are reported and dropped only if the set
    changes (a write is needed anyway); valid foreign certificates are always kept when not
    exclusive. Foreign non-CA certificates are kept but flagged: removing them could break
    someone's pinning, keeping them silently would hide a mistake.

    Raises ValueError when a fingerprint is both added and removed: that is a bug in the caller's
    ownership tracking, and guessing which one wins could drop a CA that leaves still chain to.
    """
    current = read_bundle(existing_pem)
    before = current.by_fingerprint()
    to_add = {certificate_fingerprint(c): c for c in add}
    to_remove = frozenset(remove_fingerprints)
    both = to_remove & to_add.keys()
    if both:
        raise ValueError(f"certificate {', '.join(short(fp) for fp in sorted(both))} is both added and removed")

    problems = list(current.problems)
    for cert in to_add.values():
        if not summarize(cert).is_ca:
            problems.append(f"certificate {_describe(cert)} added to the bundle is not a CA certificate")

    if exclusive:
        result = dict(to_add)
    else:
        result = {fp: c for fp, c in before.items() if fp not in to_remove}
        result.update(to_add)

    added = tuple(sorted(to_add.keys() - before.keys()))
    removed = tuple(sorted(before.keys() - result.keys()))
    kept_foreign = tuple(sorted(fp for fp in result if fp not in to_add))
    foreign_leaves = tuple(fp for fp in kept_foreign if not summarize(result[fp]).is_ca)
    for fp in foreign_leaves:
        problems.append(f"certificate {_describe(result[fp])} in the bundle is not a CA certificate (kept: not ours)")

    return BundleMerge(
        pem=encode_bundle(result.values()),
        fingerprints=frozenset(result),
        changed=result.keys() != before.keys(),
        added=added,
        removed=removed,
        kept_foreign=kept_foreign,
        foreign_leaves=foreign_leaves,
        problems=tuple(problems),
        truncated=current.truncated,
    )


def contains(pem: PemInput, fingerprints: Iterable[str], absent: Iterable[str] = ()) -> Containment:
    """Whether a target read back holds every one of ``fingerprints`` and none of ``absent``.

    Each target is verified on its own, after its own write: one store updated and another
    forgotten is an outage that a single aggregate check would hide.
    """
    bundle = read_bundle(pem)
    present = bundle.fingerprint_set
    return Containment(
        missing=frozenset(fingerprints) - present,
        unexpected=frozenset(absent) & present,
        problems=bundle.problems,
    )

"""Key and signature checks, for every certificate considered (leaf, chain and bundle CAs).

The chain verifier refuses weak CA keys and SHA-1/MD5 signatures but does not look at the leaf's
key at all, and its "untrusted" does not say which certificate is weak; these checks name it.
A root's self-signature is not checked: nothing relies on it (trust in a root comes from its
presence in the bundle), and many long-lived roots are self-signed with SHA-1.
"""

from __future__ import annotations

from certpolicy.pki.inspect import CertSummary
from certpolicy.policy.findings import CertRef, Finding, Role, Severity, finding
from certpolicy.policy.spec import Requirements

_WEAK_HASHES = frozenset({"md5", "sha1"})
_INTRINSIC_HASH = frozenset({"ed25519", "ed448"})


def check_strength(req: Requirements, s: CertSummary, role: Role, cap: Severity | None = None) -> list[Finding]:
    if _fine(req, s, role):
        return []  # the common case, decided without building the certificate's name
    ref = CertRef.of(role, s)
    out: list[Finding] = []
    what = f"{role} '{s.display_name}'"
    if s.extension_error:
        out.append(finding("MalformedExtension", f"{what}: {s.extension_error}; usage and name checks are impossible", ref))
    if s.version == 1:
        out.append(finding("V1Certificate", f"{what} is an X.509 v1 certificate (no extensions possible)", ref))
    if s.key_algorithm == "RSA":
        if s.key_size is not None and s.key_size < req.minimum_rsa_bits:
            out.append(finding("WeakRSAKey", f"{what} has an RSA {s.key_size}-bit key; minimumRSABits is {req.minimum_rsa_bits}", ref))
    elif s.key_algorithm == "EC":
        if s.key_curve not in req.allowed_ec_curves:
            out.append(finding("DisallowedCurve", f"{what} uses curve {s.key_curve}; allowedECCurves is [{', '.join(req.allowed_ec_curves)}]", ref))
    else:
        out.append(finding("UnsupportedKeyAlgorithm", f"{what} has a {s.key_description} key; use RSA or EC (P-256/P-384/P-521)", ref))
    if not (s.self_signed and ref.role is not Role.LEAF):
        out.extend(_signature(req, s, ref, what))
    if cap is not None:
        out = [f if f.severity <= cap else Finding(f.reason, cap, f.message, f.cert) for f in out]
    return out


def _fine(req: Requirements, s: CertSummary, role: Role) -> bool:
    if s.extension_error or s.version == 1:
        return False
    if s.key_algorithm == "RSA":
        if s.key_size is None or s.key_size < req.minimum_rsa_bits:
            return False
    elif s.key_algorithm != "EC" or s.key_curve not in req.allowed_ec_curves:
        return False
    return s.signature_hash in req.allowed_signature_hashes or (role is not Role.LEAF and s.self_signed)


def _signature(req: Requirements, s: CertSummary, ref: CertRef, what: str) -> list[Finding]:
    h = s.signature_hash
    if h is None:
        if s.signature_algorithm.lower() in _INTRINSIC_HASH:
            return []
        return [finding("DisallowedSignatureHash", f"{what} is signed with unrecognised algorithm {s.signature_algorithm}", ref)]
    if h in req.allowed_signature_hashes:
        return []
    if h in _WEAK_HASHES:
        return [finding("WeakSignatureHash", f"{what} is signed with {h.upper()} ({s.signature_algorithm})", ref)]
    return [finding("DisallowedSignatureHash", f"{what} is signed with {h} ({s.signature_algorithm}); allowedSignatureHashes is [{', '.join(req.allowed_signature_hashes)}]", ref)]

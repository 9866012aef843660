"""What a check found: :class:`Finding`, its :class:`Severity`, and the one table of reasons.

Reasons are stable CamelCase identifiers: they appear in the policy's status, in events, in
metrics labels and in scripts that parse ``certpolicy check --output json``. Add reasons; never
rename one. :data:`REASONS` is the single source of truth — ``docs/findings.md`` lists every reason
with its severity, and a test fails when the two drift apart.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from certpolicy.pki.inspect import CertSummary


class Severity(enum.IntEnum):
    """Ordered: ``CRITICAL > WARNING > INFO``. Printed (and serialised) as ``Critical`` etc."""

    INFO = 1
    WARNING = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.capitalize()

    def __str__(self) -> str:
        return self.label

    @classmethod
    def parse(cls, text: str) -> Severity:
        return cls[text.strip().upper()]


class Role(str, enum.Enum):
    """Which part of the trust picture a certificate plays in one evaluation."""

    LEAF = "leaf"
    INTERMEDIATE = "intermediate"
    ROOT = "root"
    BUNDLE_CA = "bundleCA"

    def __str__(self) -> str:
        return self.value


_ROLE_ORDER = {Role.LEAF: 0, Role.INTERMEDIATE: 1, Role.ROOT: 2, Role.BUNDLE_CA: 3}


@dataclass(frozen=True, slots=True)
class CertRef:
    """The certificate a finding is about: enough to find it, nothing secret."""

    role: Role
    subject: str
    fingerprint: str

    @classmethod
    def of(cls, role: Role, summary: CertSummary) -> CertRef:
        """The reference to a summarised certificate (:class:`certpolicy.pki.inspect.CertSummary`)."""
        return cls(role, summary.subject, summary.fingerprint)

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role.value, "subject": self.subject, "fingerprint": self.fingerprint}


@dataclass(frozen=True, slots=True)
class ReasonInfo:
    """One row of the reasons table."""

    reason: str
    severity: Severity  # the usual severity; some reasons vary, see ``note``
    category: str
    meaning: str
    action: str
    note: str = ""


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing wrong (or worth knowing) about a Secret's certificates.

    ``message`` names the offending value — a DNS name, a date, a key size — and never key material
    or Secret bytes.
    """

    reason: str
    severity: Severity
    message: str
    cert: CertRef | None = None

    def __post_init__(self) -> None:
        if self.reason not in REASONS:
            raise ValueError(f"unknown finding reason {self.reason!r}: add it to certpolicy.policy.findings.REASONS")

    def sort_key(self) -> tuple[int, str, int, str]:
        role = _ROLE_ORDER.get(self.cert.role, 9) if self.cert else -1
        return (-int(self.severity), self.reason, role, self.message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "reason": self.reason,
            "severity": self.severity.label,
            "message": self.message,
            "cert": self.cert.to_dict() if self.cert else None,
        }


def finding(reason: str, message: str, cert: CertRef | None = None, severity: Severity | None = None) -> Finding:
    """A finding with the table's severity unless one is given."""
    return Finding(reason, severity if severity is not None else REASONS[reason].severity, message, cert)


C, W, I = Severity.CRITICAL, Severity.WARNING, Severity.INFO

_TABLE: tuple[ReasonInfo, ...] = (
    # --- extended key usage ---
    ReasonInfo("MissingServerAuth", C, "eku", "The leaf's EKU lacks serverAuth, which the policy requires.", "Re-issue the certificate with the serverAuth EKU."),
    ReasonInfo("MissingClientAuth", C, "eku", "The leaf's EKU lacks clientAuth, which the policy requires; it cannot be used as an mTLS client certificate.", "Re-issue it with clientAuth — from a private CA: public CAs stopped issuing clientAuth in 2026."),
    ReasonInfo("MissingCodeSigning", C, "eku", "The leaf's EKU lacks codeSigning, which the policy requires.", "Re-issue the certificate with the codeSigning EKU."),
    ReasonInfo("MissingEmailProtection", C, "eku", "The leaf's EKU lacks emailProtection, which the policy requires.", "Re-issue the certificate with the emailProtection EKU."),
    ReasonInfo("MissingTimeStamping", C, "eku", "The leaf's EKU lacks timeStamping, which the policy requires.", "Re-issue the certificate with the timeStamping EKU."),
    ReasonInfo("MissingOCSPSigning", C, "eku", "The leaf's EKU lacks ocspSigning, which the policy requires.", "Re-issue the certificate with the ocspSigning EKU."),
    ReasonInfo("NoExtendedKeyUsage", W, "eku", "The leaf has no EKU extension. RFC 5280 reads that as 'any usage', but strict TLS stacks and CA/B-profile verifiers reject it.", "Re-issue with an explicit EKU listing the usages the policy requires.", "Not reported when the policy requires no EKU."),
    ReasonInfo("AnyExtendedKeyUsageOnly", W, "eku", "A required usage is granted only through anyExtendedKeyUsage, which strict verifiers (and the CA/B profile) do not accept.", "Re-issue with the required usages listed explicitly."),
    ReasonInfo("IntermediateExcludesUsage", C, "eku", "A CA in the chain has an EKU extension that does not include a usage the leaf needs; many verifiers (Go, Windows, NSS) enforce EKU nesting and reject the leaf.", "Issue the leaf from a CA whose EKU includes the usage (or has no EKU)."),
    ReasonInfo("PublicCAClientAuth", W, "eku", "The leaf chains to a public Web PKI root and the policy requires clientAuth. Public CAs stopped issuing clientAuth in 2026: the next renewal will lack it and mTLS will break silently.", "Move this certificate to a private CA before its next renewal."),
    # --- subject alternative names ---
    ReasonInfo("NoSubjectAltName", C, "san", "The leaf has no subjectAltName; clients match names against SANs, not the CN.", "Re-issue with the names in the SAN extension.", "Only reported when requireSAN is true (the default)."),
    ReasonInfo("DNSNameNotAllowed", C, "san", "A DNS SAN is not covered by allowedDNSNames — for example a UAT certificate carrying a production name.", "Re-issue without the name, or extend allowedDNSNames if the name is legitimate."),
    ReasonInfo("IPAddressNotAllowed", C, "san", "An IP SAN is outside allowedIPRanges.", "Re-issue without the address, or extend allowedIPRanges."),
    ReasonInfo("MissingRequiredDNSName", C, "san", "A name in requiredDNSNames is not covered by any DNS SAN (a wildcard SAN covers exactly one label).", "Re-issue with the name in the SAN extension."),
    ReasonInfo("MissingRequiredIPAddress", C, "san", "An address in requiredIPAddresses is not among the IP SANs.", "Re-issue with the address as an IP SAN."),
    ReasonInfo("InvalidDNSName", W, "san", "A DNS SAN is not a valid host name or RFC 6125 wildcard (e.g. a partial wildcard 'f*.example.com'); clients will not match it.", "Re-issue with valid names."),
    # --- chain ---
    ReasonInfo("UntrustedChain", C, "chain", "The leaf does not chain to the trust bundle: the verifier rejected the chain (expired CA, weak algorithm, not a CA, re-keyed issuer, a self-signed leaf, ...); the message says why.", "Issue the leaf from a CA in the bundle, or add its CA to every bundle its peers use.", "Warning when checked only against the Secret's own ca.crt."),
    ReasonInfo("UnknownRoot", C, "chain", "The chain ends at a root CA that the trust bundle does not hold (the root sits in tls.crt or in the Secret's ca.crt); the message names its subject and SHA-256 fingerprint. Peers that trust only the bundle reject the certificate.", "If the root is legitimate, add it to every bundle its peers use (spec.trustBundles distributes a policy's CA); otherwise re-issue the certificate from a CA the bundle holds.", "Warning when checked only against the Secret's own ca.crt."),
    ReasonInfo("IncompleteChain", C, "chain", "An issuer is missing from tls.crt: neither the chain nor the trust bundle holds the intermediate that signed a certificate in it (an intermediate only in ca.crt does not count: peers receive only tls.crt).", "Put the full chain (leaf, then intermediates) into tls.crt.", "Warning when checked only against the Secret's own ca.crt."),
    ReasonInfo("ChainNotVerified", I, "chain", "The policy names no trust bundle and the Secret has no ca.crt, so the chain was not verified.", "Set spec.requirements.trustBundle (or pass --trust-bundle) to verify chains."),
    ReasonInfo("NonCACertificateInBundle", W, "chain", "The trust bundle holds a certificate that is not a CA; it is never used as a trust anchor.", "Remove it from the bundle — a bundle should hold CA certificates only."),
    ReasonInfo("LeafIsCA", W, "chain", "The certificate served as the leaf is a CA certificate (basicConstraints cA=TRUE).", "Serve an end-entity certificate; keep CA certificates out of tls.crt's first position."),
    ReasonInfo("SelfSignedLeaf", W, "chain", "The leaf is self-signed: nothing but a pinned copy of itself can trust it.", "Issue it from a (private) CA."),
    ReasonInfo("TruststoreMissingAnchor", C, "truststore", "A peer's trust store selected by requirements.trustedBy (or a webhook, APIService or CRD conversion caBundle) holds nothing a leaf of this policy chains to: neither the leaf, nor a CA of its chain, nor the CA that signed it. The finding is on the store and names the leaf; each store is checked on its own, because each one is replaced or left stale on its own.", "Add the leaf's CA to that store (spec.trustBundles can distribute it), or re-issue the leaf from a CA every peer trusts."),
    # --- renewal regressions (policy/renewal.py; no requirement needed) ---
    ReasonInfo("RenewalDroppedUsage", C, "renewal", 'The renewed leaf lacks an extended key usage the previous accepted leaf of the same Secret had (e.g. clientAuth, as public CAs dropped it in 2026); reported without any requirement written. The message shows before → after.', "Re-issue with the usage; if the change is intended, accept it: annotate the Secret certpolicy.io/renewal-accepted=<the new leaf's SHA-256, hex>."),
    ReasonInfo("RenewalDroppedDNSName", C, "renewal", 'A DNS name of the previous accepted leaf is covered by no DNS SAN of the renewed one: clients connecting by that name fail.', 'Re-issue with the name, or accept the change with the certpolicy.io/renewal-accepted annotation.'),
    ReasonInfo("RenewalDroppedIPAddress", C, "renewal", 'An IP SAN of the previous accepted leaf is missing from the renewed one: clients connecting by that address fail.', 'Re-issue with the address, or accept the change with the certpolicy.io/renewal-accepted annotation.'),
    ReasonInfo("RenewalWeakerKey", C, "renewal", "The renewed leaf's key is weaker than the previous one's by NIST SP 800-57 comparable strength (RSA 3072 → RSA 2048, P-384 → P-256; RSA 4096 → P-256 is not weaker).", 'Re-issue with a key at least as strong, or accept the change with the certpolicy.io/renewal-accepted annotation.'),
    ReasonInfo("RenewalChangedAnchor", C, "renewal", "The renewed leaf chains to another trust anchor than the previous one: peers that pinned or only trust the old root reject it. Not reported when both anchors are the policy's own CAs (its CA rotation moves leaves on purpose).", 'Issue from the old anchor, or distribute the new root first and then accept the change (annotation, or spec.requirements.renewal.ignore for expected anchor changes).'),
    ReasonInfo("RenewalShorterLifetime", W, "renewal", "The renewed leaf's lifetime (notAfter − notBefore) is shorter than the previous one's by more than an hour and 1 %: renewals must now run more often than they were set up for.", "Check the issuer's profile and that renewal runs well within the new lifetime; accept with the annotation, or ignore the reason in spec.requirements.renewal.ignore."),
    # --- cert-manager (policy/certmanager.py) ---
    ReasonInfo("CertificateSpecViolates", W, "cert-manager", "The cert-manager Certificate that writes this Secret asks for a leaf the policy refuses (spec.usages, spec.dnsNames, spec.privateKey, spec.duration): the current leaf may be fine, its renewal (the message names status.renewalTime) will not be. The operator watches Certificates and judges the one that writes each selected Secret (an edit re-judges it at once, before any re-issue); kubectl certpolicy why does the same with your credentials.", "Change the Certificate field the message names before the renewal."),
    # --- expiry ---
    ReasonInfo("Expired", C, "expiry", "A certificate's notAfter has passed.", "Renew it (for a CA: rotate it — see the five-step CA rotation).", "Warning for a bundle CA that anchors nothing in this Secret's chain."),
    ReasonInfo("NotYetValid", C, "expiry", "A certificate's notBefore is in the future (clock skew, or issued with a future date).", "Check the issuer's clock; re-issue with a current notBefore.", "Warning for a bundle CA that anchors nothing in this Secret's chain."),
    ReasonInfo("ExpiringSoon", W, "expiry", "A certificate expires within expiry.warningBefore (Warning) or expiry.criticalBefore (Critical).", "Renew it before it expires; for a CA, start the rotation now.", "Critical within criticalBefore; never above Warning for a bundle CA that anchors nothing here."),
    # --- keys and signatures ---
    ReasonInfo("WeakRSAKey", C, "key", "An RSA key is shorter than minimumRSABits.", "Re-issue with a longer RSA key (2048 bits or more) or an EC key.", "Warning for a bundle CA that anchors nothing here."),
    ReasonInfo("DisallowedCurve", C, "key", "An EC key uses a curve not in allowedECCurves.", "Re-issue with an allowed curve (P-256, P-384 or P-521 by default).", "Warning for a bundle CA that anchors nothing here."),
    ReasonInfo("UnsupportedKeyAlgorithm", W, "key", "A certificate key is neither RSA nor EC (Ed25519, Ed448, DSA, ...); many TLS peers and the chain verifier do not support it.", "Re-issue with an RSA or EC key."),
    ReasonInfo("WeakSignatureHash", C, "key", "A certificate is signed with SHA-1 or MD5, which are broken for signatures and refused by verifiers.", "Re-issue it with SHA-256 or better.", "Not reported for a root's self-signature, which nothing relies on."),
    ReasonInfo("DisallowedSignatureHash", C, "key", "A certificate's signature hash is not in allowedSignatureHashes.", "Re-issue with an allowed hash.", "Not reported for a root's self-signature."),
    ReasonInfo("V1Certificate", W, "key", "An X.509 v1 certificate: it cannot carry extensions (no SAN, EKU or basicConstraints) and verifiers refuse it.", "Re-issue as a v3 certificate."),
    ReasonInfo("KeyMismatch", C, "key", "The private key in the Secret does not belong to the certificate; a TLS server using the pair fails to start or to handshake.", "Write the key that was issued with the certificate (or re-issue)."),
    ReasonInfo("EncryptedKey", W, "key", "The private key is encrypted, so it could not be matched with the certificate; most consumers of kubernetes.io/tls Secrets cannot use an encrypted key.", "Store the key unencrypted in the Secret (the Secret is the protection), or check it with --password."),
    ReasonInfo("UnsupportedKey", W, "key", "The private key is in a format or algorithm that could not be checked (e.g. OpenSSH format, X25519).", "Store the key as PEM PKCS#8, PKCS#1 or SEC1."),
    ReasonInfo("MalformedKey", C, "key", "The private key data cannot be parsed, or holds no private key.", "Write a valid PEM private key."),
    ReasonInfo("KeyMaterialInCertificate", C, "key", "A private key PEM block sits in a certificate field (tls.crt, ca.crt, a chain or CA key): everyone allowed to read certificates can read the key.", "Move the key to tls.key (or out of the Secret) and treat it as exposed: re-issue the certificate with a new key."),
    ReasonInfo("MissingPrivateKey", C, "key", "The policy requires a private key next to the certificate and there is none.", "Add the key (tls.key) to the Secret, or set requirePrivateKey: false."),
    ReasonInfo("KeystoreUnreadable", W, "input", "A keystore or truststore (PKCS#12, JKS or JCEKS) could not be opened: wrong or missing password (a JKS integrity check that fails), not UTF-8 text, or damaged. The message names the reason, never the password.", "Provide the password (a sibling data key such as 'keystore.jks.password' or 'password', a passwordSecretRef, or --password), or fix the store."),
    ReasonInfo("KeystorePartlyRead", W, "input", "Part of a Java keystore could not be read: a JCEKS secret-key entry (a serialised Java object) and the entries after it, or more entries than the engine reads.", "Keep secret keys and certificates in separate stores, or convert the store to PKCS#12 (keytool -importkeystore)."),
    # --- input ---
    ReasonInfo("NoCertificate", C, "input", "No certificate was found: empty data, a missing tls.crt, or no PEM/DER certificate in it.", "Write the certificate chain (PEM) into tls.crt."),
    ReasonInfo("MalformedCertificate", C, "input", "A certificate block cannot be parsed: truncated PEM, bad base64, or DER that is not a certificate.", "Re-export the certificate; make sure the PEM was not cut or re-wrapped."),
    ReasonInfo("DoubleEncoded", C, "input", "The data holds base64 text instead of PEM: it was base64-encoded twice (a classic with 'data:' vs 'stringData:'), or the PEM lost its BEGIN/END lines.", "Store the PEM itself (base64-encoded once, as 'data' requires)."),
    ReasonInfo("MalformedSecretData", C, "input", "A Secret data value is not valid base64.", "Rewrite the Secret with a tool that encodes data correctly."),
    ReasonInfo("MalformedExtension", C, "input", "A certificate's extensions cannot be parsed (e.g. a duplicate extension); usage and name checks are impossible.", "Re-issue the certificate."),
    ReasonInfo("WrongSecretType", W, "input", "The Secret's type never holds a TLS certificate (docker config, service-account token, ...).", "Narrow the policy's secretSelector to TLS Secrets."),
    ReasonInfo("InputTooLarge", W, "input", "The data is larger than the engine reads; only its beginning was checked.", "Keep certificates and bundles in separate, reasonably sized keys."),
    ReasonInfo("TooManyCertificates", W, "input", "More certificates than the engine reads in one value; the rest were ignored.", "Split the bundle, or check it as a trust bundle rather than a chain."),
    ReasonInfo("UnexpectedPEMBlock", I, "input", "A PEM block that is not a certificate (CSR, CRL, ...) sits among the certificates; it was ignored.", "Remove it if it is not meant to be there."),
    ReasonInfo("LeafNotFirst", W, "input", "The leaf is not the first certificate in tls.crt; most TLS servers present the first certificate as their own.", "Order tls.crt as leaf, then intermediates (root optional, last)."),
    ReasonInfo("DuplicateCertificate", I, "input", "The same certificate appears more than once in the chain.", "Remove the duplicate."),
    ReasonInfo("CheckFailed", W, "input", "A check could not run because of an internal error; the other checks ran.", "Report it (with the certificate, never the key) — it is a bug."),
)

#: Every reason the engine can report, by name.
REASONS: dict[str, ReasonInfo] = {r.reason: r for r in _TABLE}
assert len(REASONS) == len(_TABLE), "duplicate reason in the table"

#: ``MissingServerAuth`` etc. by EKU name, as spelled in ``extendedKeyUsages``.
MISSING_EKU_REASON: dict[str, str] = {
    "serverAuth": "MissingServerAuth",
    "clientAuth": "MissingClientAuth",
    "codeSigning": "MissingCodeSigning",
    "emailProtection": "MissingEmailProtection",
    "timeStamping": "MissingTimeStamping",
    "ocspSigning": "MissingOCSPSigning",
}

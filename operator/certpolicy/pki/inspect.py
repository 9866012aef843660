"""What a certificate says, as one small immutable value.

:class:`CertSummary` is what the rest of the operator keeps and shows (status, events, the CLI's
JSON, the inventory) instead of the certificate: plain strings, numbers and tuples, computed once
per distinct certificate (:func:`summarize` caches by certificate, i.e. by DER, i.e. by
fingerprint), so that checking ten thousand Secrets that share one intermediate reads that
intermediate's extensions once.

Summaries are total: a certificate whose extensions cannot be parsed still gets a summary, with the
reason in :attr:`CertSummary.extension_error` and the extension-derived fields empty.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field, fields
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, PublicKeyAlgorithmOID

from certpolicy.interning import shared
from certpolicy.pki.cache import FifoCache
from certpolicy.pki.fingerprint import certificate_fingerprint
from certpolicy.pki.keys import curve_display_name
from certpolicy.timestamps import rfc3339

#: EKU names as RFC 5280 spells them; the keys of ``spec.requirements.extendedKeyUsages``.
EKU_BY_NAME: dict[str, x509.ObjectIdentifier] = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timeStamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocspSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
}
ANY_EKU = "anyExtendedKeyUsage"
_EKU_NAMES: dict[x509.ObjectIdentifier, str] = {
    **{oid: n for n, oid in EKU_BY_NAME.items()},
    ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: ANY_EKU,
    ExtendedKeyUsageOID.SMARTCARD_LOGON: "smartcardLogon",
    ExtendedKeyUsageOID.KERBEROS_PKINIT_KDC: "kerberosPKINITKDC",
    ExtendedKeyUsageOID.IPSEC_IKE: "ipsecIKE",
    ExtendedKeyUsageOID.CERTIFICATE_TRANSPARENCY: "certificateTransparency",
}

_KEY_USAGE_FIELDS = (
    ("digital_signature", "digitalSignature"),
    ("content_commitment", "contentCommitment"),
    ("key_encipherment", "keyEncipherment"),
    ("data_encipherment", "dataEncipherment"),
    ("key_agreement", "keyAgreement"),
    ("key_cert_sign", "keyCertSign"),
    ("crl_sign", "cRLSign"),
)


@dataclass(frozen=True, eq=False, slots=True)
class CertSummary:
    """A certificate's public facts, JSON-friendly. Times are aware UTC.

    Equal (and hashed) by fingerprint. ``subject``, ``issuer``, ``common_name``, ``self_issued``
    and ``self_signed`` are computed on first use: turning a DER name into Python objects and a
    string costs more than every check together, and most evaluations of a compliant leaf never
    print its name.

    Slotted: the inventory keeps one summary per selected leaf (100,000 and more); without an
    instance dict one takes ~600 bytes less (docs/benchmarks.md, "Memory per Secret").
    """

    fingerprint: str
    not_before: dt.datetime
    not_after: dt.datetime
    version: int  # 1 or 3
    is_ca: bool
    has_basic_constraints: bool
    basic_constraints_critical: bool
    path_length: int | None
    has_key_usage: bool
    key_usage: tuple[str, ...]
    has_eku: bool
    extended_key_usages: tuple[str, ...]
    has_san: bool
    dns_names: tuple[str, ...]
    ip_addresses: tuple[str, ...]
    uris: tuple[str, ...]
    emails: tuple[str, ...]
    key_algorithm: str  # RSA | EC | Ed25519 | Ed448 | DSA | dotted OID
    key_size: int | None
    key_curve: str | None  # P-256 | P-384 | P-521 | secp256k1 | ...
    signature_algorithm: str
    signature_hash: str | None  # sha256 | sha1 | md5 | ... ; None for Ed25519/Ed448 or unknown
    ski: str | None
    aki: str | None
    extension_error: str | None = None
    certificate: x509.Certificate | None = field(default=None, repr=False)
    # The lazily computed facts: unset slots until first asked for (reading one raises
    # AttributeError), then set once through object.__setattr__ (the dataclass is frozen for
    # everyone else). Left unset rather than given a default, so that building a summary costs
    # no more than its 26 fields. Names are read from a throwaway copy: cryptography keeps a
    # decoded Name on the certificate (~0.8 KB of Python objects; 16 MiB at 20,000 Secrets, where
    # the renewal baseline asks every leaf's issuer), and only the string is needed.
    _subject: str = field(init=False, repr=False)
    _issuer: str = field(init=False, repr=False)
    _common_name: str | None = field(init=False, repr=False)
    _self_issued: bool = field(init=False, repr=False)
    _self_signed: bool = field(init=False, repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CertSummary) and other.fingerprint == self.fingerprint

    @property
    def serial(self) -> str:
        """Lowercase hex, read from the certificate when asked: only a report prints it, and a
        string per held leaf was ~80 bytes (8 MiB at 100,000 Secrets)."""
        try:
            return format(self.certificate.serial_number, "x")  # type: ignore[union-attr]  # None: "?"
        except Exception:
            return "?"

    def __hash__(self) -> int:
        return hash(self.fingerprint)

    @property
    def subject(self) -> str:
        try:
            return self._subject
        except AttributeError:
            pass
        name = subject_of(throwaway_copy(self.certificate)) if self.certificate is not None else None
        v = _rfc4514(name) if name is not None else "(unparsable name)"
        object.__setattr__(self, "_subject", v)
        return v

    @property
    def issuer(self) -> str:
        try:
            return self._issuer
        except AttributeError:
            pass
        name = issuer_of(throwaway_copy(self.certificate)) if self.certificate is not None else None
        v = shared(_rfc4514(name)) if name is not None else "(unparsable name)"  # one per CA, not per leaf
        object.__setattr__(self, "_issuer", v)
        return v

    @property
    def common_name(self) -> str | None:
        try:
            return self._common_name
        except AttributeError:
            pass
        name = subject_of(throwaway_copy(self.certificate)) if self.certificate is not None else None
        v = _common_name(name) if name is not None else None
        object.__setattr__(self, "_common_name", v)
        return v

    @property
    def self_issued(self) -> bool:
        """Subject equals issuer."""
        try:
            return self._self_issued
        except AttributeError:
            pass
        v = self.certificate is not None and self.subject == self.issuer
        object.__setattr__(self, "_self_issued", v)
        return v

    @property
    def self_signed(self) -> bool:
        """Self-issued, and its own key verifies its signature."""
        try:
            return self._self_signed
        except AttributeError:
            pass
        if self.ski is not None and self.aki is not None and self.ski != self.aki:
            v = False  # signed by another key: no need to look at names (the common leaf case)
        else:
            v = self.self_issued and self.certificate is not None and signed_by(self.certificate, self.certificate)
        object.__setattr__(self, "_self_signed", v)
        return v

    @property
    def key_description(self) -> str:
        if self.key_algorithm == "EC":
            return f"EC {self.key_curve}"
        if self.key_size:
            return f"{self.key_algorithm} {self.key_size}"
        return self.key_algorithm

    @property
    def display_name(self) -> str:
        """The CN when there is one (what people recognise), else the full subject."""
        return self.common_name or self.subject or "(empty subject)"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form with camelCase keys, as the CLI and status print it."""
        return {
            "fingerprint": self.fingerprint,
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial,
            "notBefore": rfc3339(self.not_before),
            "notAfter": rfc3339(self.not_after),
            "version": self.version,
            "isCA": self.is_ca,
            "keyUsage": list(self.key_usage),
            "extendedKeyUsages": list(self.extended_key_usages) if self.has_eku else None,
            "dnsNames": list(self.dns_names),
            "ipAddresses": list(self.ip_addresses),
            "key": self.key_description,
            "signatureAlgorithm": self.signature_algorithm,
            "selfSigned": self.self_signed,
            "subjectKeyId": self.ski,
            "authorityKeyId": self.aki,
        }


#: The slot setters of CertSummary's constructor fields, in their order.
_SUMMARY_SLOTS = tuple(getattr(CertSummary, f.name).__set__ for f in fields(CertSummary) if f.init)
_new_summary = object.__new__
_SUMMARIES: FifoCache[str, CertSummary] = FifoCache(
    65536, name="summaries", keep=lambda fp, _summary, live: fp in live.fingerprints, per_secret=2)
_DER = Encoding.DER


def summarize(cert: x509.Certificate, fingerprint: str | None = None, *, public_key: CertificatePublicKeyTypes | None = None,
              copy: x509.Certificate | None = None) -> CertSummary:
    """The summary of ``cert``, computed once per distinct certificate (cached by fingerprint;
    pass ``fingerprint`` when it is known, which saves hashing the certificate, and the
    certificate's public key and :func:`throwaway_copy` if the caller has them: building an EC key
    object and re-parsing are not free). Never raises."""
    fp = fingerprint or certificate_fingerprint(cert)
    s = _SUMMARIES.get(fp)
    if s is None:
        s = _summarize(cert, fp, public_key, copy)
        _SUMMARIES.put(fp, s)
    return s


def _summarize(cert: x509.Certificate, fp: str, public_key: CertificatePublicKeyTypes | None = None,
               copy: x509.Certificate | None = None) -> CertSummary:
    try:
        version = 1 if cert.version == x509.Version.v1 else 3
    except Exception:
        version = 0
    copy = copy or throwaway_copy(cert)  # the extensions and the key are read from it, not from cert
    key_algorithm, key_size, key_curve = _key_facts(copy, public_key)
    sig_name, sig_hash = _signature_facts(cert)

    is_ca = has_bc = bc_critical = has_ku = has_eku = has_san = False
    path_length: int | None = None
    ku: tuple[str, ...] = ()
    ekus: tuple[str, ...] = ()
    dns: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    uris: tuple[str, ...] = ()
    emails: tuple[str, ...] = ()
    ski: str | None = None
    aki: str | None = None
    error: str | None = None
    try:
        # Dispatch on the exact type: isinstance() against cryptography's ABCs costs more than the
        # rest of this loop.
        for ext in copy.extensions:
            v = ext.value
            t = type(v)
            if t is x509.BasicConstraints:
                has_bc, bc_critical, is_ca, path_length = True, ext.critical, v.ca, v.path_length
            elif t is x509.KeyUsage:
                has_ku = True
                ku = _key_usage_names(v)
            elif t is x509.ExtendedKeyUsage:
                has_eku = True
                ekus = shared(tuple([_EKU_NAMES.get(o) or o.dotted_string for o in v]))  # one per CA's leaves
            elif t is x509.SubjectAlternativeName:
                has_san = True
                for gn in v:
                    g = type(gn)
                    if g is x509.DNSName:
                        dns += (gn.value,)
                    elif g is x509.IPAddress:
                        ips += (str(gn.value),)
                    elif g is x509.UniformResourceIdentifier:
                        uris += (gn.value,)
                    elif g is x509.RFC822Name:
                        emails += (gn.value,)
            elif t is x509.SubjectKeyIdentifier:
                ski = v.digest.hex()
            elif t is x509.AuthorityKeyIdentifier:
                aki = shared(v.key_identifier.hex()) if v.key_identifier is not None else None
    except Exception as e:
        error = _extension_error(e)

    # The generated __init__ of a frozen dataclass sets each field through object.__setattr__
    # (~6 µs for 26); on this hot path the slots are filled through their descriptors (~3 µs).
    summary = _new_summary(CertSummary)
    for setter, value in zip(_SUMMARY_SLOTS, (
            fp, cert.not_valid_before_utc, cert.not_valid_after_utc, version, is_ca, has_bc, bc_critical,
            path_length, has_ku, ku, has_eku, ekus, has_san, dns, ips, uris, emails, key_algorithm, key_size,
            key_curve, sig_name, sig_hash, ski, aki, error, cert)):
        setter(summary, value)
    return summary


def signed_by(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether ``issuer``'s key verifies ``child``'s signature (and the names link up).

    cryptography's ``verify_directly_issued_by`` refuses SHA-1 and MD5 signatures outright; to
    *recognise* such certificates (an old self-signed root, a SHA-1 leaf under a known CA) the
    signature is then checked with the public-key primitives. This never decides trust: the chain
    verifier does, and it rejects those algorithms.

    The answer depends on the two certificates' bytes only, so it is cached by their fingerprints
    (:data:`_SIGNATURES`): ``requirements.trustedBy`` asks it for every leaf against every store CA
    of the same name on every pass (~150 µs each for RSA), and a re-check must cost no signature.
    """
    child_issuer, issuer_subject = issuer_of(child), subject_of(issuer)
    if child_issuer is None or issuer_subject is None or child_issuer != issuer_subject:
        return False
    key = (certificate_fingerprint(child), certificate_fingerprint(issuer))
    ok = _SIGNATURES.get(key)
    if ok is None:
        ok = _signature_verifies(child, issuer)
        _SIGNATURES.put(key, ok)
    return ok


#: (child fingerprint, issuer fingerprint) → whether the issuer's key verifies the child's signature.
#: Only pairs whose names link up are checked and cached (the others cost no signature).
#: Grows with the working set like the other per-Secret caches (``per_secret``): a trustedBy pass
#: asks about every selected leaf, and a FIFO scan larger than the bound would hit nothing.
_SIGNATURES: FifoCache[tuple[str, str], bool] = FifoCache(
    65536, name="signatures", keep=lambda key, _ok, live: key[0] in live.fingerprints, per_secret=1)


def _signature_verifies(child: x509.Certificate, issuer: x509.Certificate) -> bool:
    """The signature check of :func:`signed_by`, uncached."""
    try:
        child.verify_directly_issued_by(issuer)
        return True
    except ValueError:
        pass
    except Exception:
        return False
    try:
        key = issuer.public_key()
        params = child.signature_algorithm_parameters
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(child.signature, child.tbs_certificate_bytes, params, child.signature_hash_algorithm)  # type: ignore[arg-type]  # params: the RSA padding of this signature; typed as the union of every algorithm's
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(child.signature, child.tbs_certificate_bytes, params)  # type: ignore[arg-type]  # params: ECDSA(hash) for an EC signature; typed as the union
        else:
            return False
        return True
    except Exception:
        return False


def subject_of(cert: x509.Certificate) -> x509.Name | None:
    """``cert.subject``, or None when it cannot be decoded: cryptography decodes names lazily and
    raises ValueError on a malformed one (an invalid string type, say) — long after the
    certificate itself was accepted."""
    try:
        return cert.subject
    except Exception:
        return None


def issuer_of(cert: x509.Certificate) -> x509.Name | None:
    """``cert.issuer``, or None when it cannot be decoded (see :func:`subject_of`)."""
    try:
        return cert.issuer
    except Exception:
        return None


def throwaway_copy(cert: x509.Certificate) -> x509.Certificate:
    """A copy of ``cert`` to read the parts from that cryptography caches on the certificate object
    for its lifetime once decoded: the extensions (~2.7 KB of Python objects), the public key
    (~1.5 KB for P-256; 30 MiB at 20,000 Secrets, measured with memray) and the names (~0.8 KB). The inventory keeps every
    selected leaf alive and its summary already holds what this engine reads from those parts, so a
    re-parse (~10 µs) is cheaper than the memory at 10,000+ Secrets. A CA's key, used for every
    leaf it signed, is worth caching: ``signed_by`` asks the issuer itself. ``cert`` itself when its
    DER does not parse again: reading it then raises the decoding error the caller reports."""
    try:
        return x509.load_der_x509_certificate(cert.public_bytes(_DER))
    except ValueError:
        return cert


def _rfc4514(name: x509.Name) -> str:
    try:
        return name.rfc4514_string()
    except Exception:
        return "(unprintable name)"


def _common_name(name: x509.Name) -> str | None:
    try:
        attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    except Exception:
        return None
    if not attrs:
        return None
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def _key_usage_names(ku: x509.KeyUsage) -> tuple[str, ...]:
    names = [label for attr, label in _KEY_USAGE_FIELDS if getattr(ku, attr)]
    if ku.key_agreement:  # encipher_only/decipher_only raise unless keyAgreement is set
        if ku.encipher_only:
            names.append("encipherOnly")
        if ku.decipher_only:
            names.append("decipherOnly")
    return tuple(names)


def _key_facts(cert: x509.Certificate, key: CertificatePublicKeyTypes | None = None) -> tuple[str, int | None, str | None]:
    try:
        if key is None:
            key = cert.public_key()
    except Exception:
        try:
            oid = cert.public_key_algorithm_oid
            return (getattr(oid, "_name", None) or oid.dotted_string), None, None
        except Exception:
            return "unknown", None, None
    if isinstance(key, rsa.RSAPublicKey):
        return "RSA", key.key_size, None
    if isinstance(key, ec.EllipticCurvePublicKey):
        return "EC", key.curve.key_size, curve_display_name(key.curve.name)
    if isinstance(key, ed25519.Ed25519PublicKey):
        return "Ed25519", 256, None
    if isinstance(key, ed448.Ed448PublicKey):
        return "Ed448", 456, None
    if isinstance(key, dsa.DSAPublicKey):
        return "DSA", key.key_size, None
    try:
        oid = cert.public_key_algorithm_oid
        if oid == PublicKeyAlgorithmOID.X25519:
            return "X25519", 256, None
        return (getattr(oid, "_name", None) or oid.dotted_string), None, None
    except Exception:
        return type(key).__name__, None, None


def _signature_facts(cert: x509.Certificate) -> tuple[str, str | None]:
    try:
        oid = cert.signature_algorithm_oid
        name = getattr(oid, "_name", None) or oid.dotted_string
        if name == "Unknown OID":
            name = oid.dotted_string
    except Exception:
        name = "unknown"
    try:
        h = cert.signature_hash_algorithm
        return name, (h.name if h is not None else None)
    except Exception:
        return name, None


def _extension_error(e: Exception) -> str:
    if isinstance(e, x509.DuplicateExtension):
        return f"duplicate extension {e.oid.dotted_string}"
    return f"extensions cannot be parsed ({type(e).__name__})"

"""Reading certificates, private keys and PKCS#12 keystores from whatever bytes people store.

Real Secrets and files hold PEM with comments or shell output around it, CRLF line ends, OpenSSL
``TRUSTED CERTIFICATE`` blocks, bare DER, concatenated DER, PKCS#7 bundles, PEM that was base64-encoded
a second time, truncated pastes and plain garbage. Every function here **never raises** on bad input:
it returns what it could read plus a list of problems, each with a stable reason, so that one broken
Secret becomes one clear finding and nothing else fails.

Work is bounded: at most :data:`MAX_INPUT_BYTES` of input are looked at and at most
:data:`MAX_CERTIFICATES` certificates are parsed; PEM markers are found with one linear scan and
paired afterwards, so a megabyte of ``-----BEGIN`` lines cannot make the scan quadratic.

Each distinct certificate is parsed once: the DER of every block is hashed (SHA-256, which *is* the
certificate's fingerprint, see :mod:`certpolicy.pki.fingerprint`) and looked up in a bounded cache
before cryptography parses it. Re-reading an unchanged Secret therefore costs a base64 decode and a
hash per certificate.

Nothing in this module puts key material or Secret bytes into a message, repr or exception.
"""

from __future__ import annotations

import binascii
import hashlib
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeAlias, TypeGuard

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from cryptography.utils import CryptographyDeprecationWarning

from certpolicy.pki.cache import FifoCache
from certpolicy.pki.fingerprint import PREFIX, certificate_fingerprint, remember_fingerprint
from certpolicy.pki.keys import describe_key

# A zero or negative serial is a fact about someone's certificate (several public roots have one),
# not a programming error here; the engine reads such certificates and must not spam the log.
warnings.filterwarnings("ignore", message="Parsed a serial number which wasn't positive", category=CryptographyDeprecationWarning)
# Likewise BER-encoded keystores: the loader reports what it cannot read as problems.
warnings.filterwarnings("ignore", message="PKCS#12 bundle could not be parsed as DER", category=UserWarning)

#: Bytes of one input that are looked at. The API server caps a Secret at 1 MiB; files may be
#: CA bundles (certifi's is ~300 KB), so leave room without letting a stray disk image through.
MAX_INPUT_BYTES = 4 * 1024 * 1024
#: Certificates parsed from one input. A system trust store holds ~150-300 and a ConfigMap (1 MiB)
#: at most ~2,300 small EC certificates, so this is never reached by a real bundle; above it the
#: loader reports TooManyCertificates and bundle writers refuse to write (see pki.bundle), so a
#: certificate is never dropped silently.
MAX_CERTIFICATES = 10_000
#: Problems recorded for one input; the rest are counted, not listed.
MAX_PROBLEMS = 20

PrivateKey: TypeAlias = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | dsa.DSAPrivateKey
)

CERT_LABELS = frozenset({"CERTIFICATE", "X509 CERTIFICATE", "X.509 CERTIFICATE"})
TRUSTED_LABEL = "TRUSTED CERTIFICATE"
PKCS7_LABELS = frozenset({"PKCS7", "PKCS #7 SIGNED DATA", "CMS"})
KEY_LABELS = frozenset(
    {
        "PRIVATE KEY",
        "RSA PRIVATE KEY",
        "EC PRIVATE KEY",
        "DSA PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
    }
)
# Blocks that legitimately sit next to certificates and are not worth a word.
QUIET_LABELS = KEY_LABELS | {"EC PARAMETERS", "DH PARAMETERS", "PUBLIC KEY", "RSA PUBLIC KEY"}

_MARKER = re.compile(rb"-----(BEGIN|END) ([^\r\n-]{0,64}(?:-[^\r\n-]{1,64}){0,3})-----")
_WHITESPACE = b" \t\r\n\v\f"
_B64_TEXT = re.compile(rb"[A-Za-z0-9+/=\s]+")


class LoadProblem(str):
    """A problem met while loading: a ``str`` (the human message, so it prints and joins like one)
    that also carries a stable CamelCase ``reason`` and the ``source`` it came from (a Secret data
    key or a file name, set by the caller)."""

    reason: str
    source: str
    message: str

    def __new__(cls, reason: str, message: str, source: str = "") -> LoadProblem:
        text = f"{source}: {message}" if source else message
        obj = super().__new__(cls, text)
        obj.reason = reason
        obj.source = source
        obj.message = message
        return obj

    def with_source(self, source: str) -> LoadProblem:
        return LoadProblem(self.reason, self.message, source)

    def __repr__(self) -> str:
        return f"LoadProblem({self.reason!r}, {str(self)!r})"


@dataclass(frozen=True)
class CertificateLoad:
    """What :func:`load_certificates` found, in input order, and what it could not read."""

    certificates: tuple[x509.Certificate, ...]
    problems: tuple[LoadProblem, ...] = ()
    #: ``sha256:`` fingerprints of ``certificates``, in the same order (free: the DER was hashed).
    fingerprints: tuple[str, ...] = ()

    @property
    def reasons(self) -> tuple[str, ...]:
        return tuple(p.reason for p in self.problems)


@dataclass(frozen=True)
class KeyLoad:
    """A private key, or why there is none. Transient: callers compare it and drop it; the key is
    kept out of ``repr`` and equality, and nothing derived from it is ever logged."""

    key: PrivateKey | None = field(default=None, repr=False, compare=False)
    #: None, or one of ``NoPrivateKey``, ``EncryptedKey``, ``UnsupportedKey``, ``MalformedKey``.
    problem: str | None = None
    detail: str = ""
    encrypted: bool = False

    @property
    def ok(self) -> bool:
        return self.key is not None


@dataclass(frozen=True)
class Pkcs12Load:
    """The contents of a PKCS#12 keystore. Transient, like :class:`KeyLoad`."""

    certificate: x509.Certificate | None = None
    additional_certificates: tuple[x509.Certificate, ...] = ()
    key: PrivateKey | None = field(default=None, repr=False, compare=False)
    #: None, or ``KeystoreUnreadable`` / ``EncryptedKey`` / ``NoCertificate`` / ``InputTooLarge``.
    problem: str | None = None
    detail: str = ""


# --- the parse cache -----------------------------------------------------------------------------

_PARSED: FifoCache[bytes, tuple[x509.Certificate, str]] = FifoCache(
    65536, name="parsed-certificates", keep=lambda _digest, hit, live: hit[1] in live.fingerprints)


def parse_der(der: bytes) -> tuple[x509.Certificate, str]:
    """Parse one DER certificate through the cache: ``(certificate, fingerprint)``.
    Raises ValueError when it is not a certificate."""
    digest = hashlib.sha256(der).digest()
    hit = _PARSED.get(digest)
    if hit is None:
        cert = x509.load_der_x509_certificate(der)
        hit = (cert, PREFIX + digest.hex())  # what der_fingerprint(der) says, from the digest at hand
        _PARSED.put(digest, hit)
        remember_fingerprint(hit)
    return hit


def parse_der_certificate(der: bytes) -> x509.Certificate:
    """Parse one DER certificate through the cache. Raises ValueError when it is not one."""
    return parse_der(der)[0]


# --- PEM scanning --------------------------------------------------------------------------------


class PemBlock(NamedTuple):
    label: str
    start: int  # offset of "-----BEGIN"
    end: int  # offset just past the END marker
    body_start: int
    body_end: int


def _as_bytes(data: object) -> bytes | None:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8", "replace")
    return None


def pem_blocks(data: bytes, problems: list[LoadProblem] | None = None) -> Iterator[PemBlock]:
    """The well-formed BEGIN/END pairs in ``data``, in order; unpaired markers become problems.

    Markers are found by one regex scan and paired here, which keeps the work linear however many
    unterminated BEGIN lines the input has.
    """
    open_label: str | None = None
    open_start = open_body = 0
    for m in _MARKER.finditer(data):
        kind, label = m.group(1), m.group(2).decode("ascii", "replace").strip().upper()
        if kind == b"BEGIN":
            if open_label is not None and problems is not None:
                problems.append(LoadProblem("MalformedCertificate", f"PEM block '{open_label}' has no END line (truncated?)"))
            open_label, open_start, open_body = label, m.start(), m.end()
        elif open_label is None:
            if problems is not None:
                problems.append(LoadProblem("MalformedCertificate", f"PEM END line for '{label}' without a BEGIN line"))
        elif label != open_label:
            if problems is not None:
                problems.append(LoadProblem("MalformedCertificate", f"PEM block BEGIN '{open_label}' ends with END '{label}'"))
            open_label = None
        else:
            yield PemBlock(open_label, open_start, m.end(), open_body, m.start())
            open_label = None
    if open_label is not None and problems is not None:
        problems.append(LoadProblem("MalformedCertificate", f"PEM block '{open_label}' has no END line (truncated?)"))


def pem_body(data: bytes, block: PemBlock) -> bytes:
    """Decode a block's base64 body (RFC 7468: whitespace anywhere, RFC 1421 headers skipped).

    Raises ValueError when the body is not valid base64.
    """
    body = data[block.body_start : block.body_end]
    if b":" in body:  # "Proc-Type: ..." style headers, ended by a blank line
        lines = body.splitlines()
        i = 0
        while i < len(lines) and (b":" in lines[i] or not lines[i].strip()):
            i += 1
        body = b"".join(lines[i:])
    compact = body.translate(None, _WHITESPACE)
    if not compact:
        raise ValueError("empty PEM body")
    try:
        return binascii.a2b_base64(compact, strict_mode=True)
    except binascii.Error as e:
        raise ValueError("PEM body is not valid base64") from e


def _der_element_length(der: bytes, pos: int = 0) -> int:
    """Total length of the DER TLV at ``pos`` (tag, length, content), or -1 if it does not fit.

    Only used to split concatenated DER and to cut OpenSSL's trailing trust data off a
    ``TRUSTED CERTIFICATE``: the certificate itself is always parsed by cryptography.
    """
    n = len(der)
    if pos + 2 > n or der[pos] != 0x30:
        return -1
    first = der[pos + 1]
    if first < 0x80:
        total = 2 + first
    else:
        nbytes = first & 0x7F
        if nbytes == 0 or nbytes > 4 or pos + 2 + nbytes > n:
            return -1
        total = 2 + nbytes + int.from_bytes(der[pos + 2 : pos + 2 + nbytes], "big")
    return total if pos + total <= n else -1


# --- certificates --------------------------------------------------------------------------------


class _Collector:
    """Accumulates certificates and problems under the input's caps."""

    def __init__(self) -> None:
        self.certs: list[x509.Certificate] = []
        self.fps: list[str] = []
        self.problems: list[LoadProblem] = []
        self.dropped_problems = 0
        self.full = False

    def problem(self, reason: str, message: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(LoadProblem(reason, message))
        else:
            self.dropped_problems += 1

    def add(self, cert: x509.Certificate, fp: str | None = None) -> bool:
        if len(self.certs) >= MAX_CERTIFICATES:
            if not self.full:
                self.problem("TooManyCertificates", f"more than {MAX_CERTIFICATES} certificates; the rest were not read")
                self.full = True
            return False
        if fp is None:
            fp = certificate_fingerprint(cert)
        self.certs.append(cert)
        self.fps.append(fp)
        return True

    def add_der(self, der: bytes, what: str) -> None:
        try:
            cert, fp = parse_der(der)
        except Exception:  # cryptography raises ValueError; be safe against anything else
            self.problem("MalformedCertificate", f"{what} is not a valid X.509 certificate")
            return
        self.add(cert, fp)

    def result(self) -> CertificateLoad:
        if self.dropped_problems:
            self.problems.append(LoadProblem(self.problems[-1].reason, f"... and {self.dropped_problems} more problems like the above"))
        return CertificateLoad(tuple(self.certs), tuple(self.problems), tuple(self.fps))


def load_certificates(data: object) -> CertificateLoad:
    """Every certificate in ``data`` (PEM, DER, concatenated DER or PKCS#7), in order. Never raises."""
    raw = _as_bytes(data)
    if raw is not None and len(raw) <= MAX_INPUT_BYTES:
        fast = _load_pem_fast(raw)
        if fast is not None:
            return fast
    out = _Collector()
    if raw is None:
        out.problem("NoCertificate", f"expected bytes, got {type(data).__name__}")
        return out.result()
    try:
        _load_into(raw, out, depth=0)
    except Exception as e:  # pragma: no cover - last line of defence; the paths above catch their own
        out.problem("MalformedCertificate", f"could not be read ({type(e).__name__})")
    return out.result()


def _load_into(raw: bytes, out: _Collector, depth: int) -> None:
    truncated = len(raw) > MAX_INPUT_BYTES
    if truncated:
        out.problem("InputTooLarge", f"input is {len(raw)} bytes; only the first {MAX_INPUT_BYTES} were read")
        raw = raw[:MAX_INPUT_BYTES]
    if not raw.strip():
        out.problem("NoCertificate", "empty")
        return
    if b"-----BEGIN" in raw or b"-----END" in raw:
        _load_pem(raw, out, truncated)
    elif raw[:1] == b"\x30":
        _load_der(raw, out)
    elif depth == 0 and _looks_like_base64(raw):
        _load_double_encoded(raw, out)
    else:
        out.problem("NoCertificate", "no PEM block or DER certificate found")
        return
    if not out.certs and not out.problems:
        out.problem("NoCertificate", "no certificate found (only other PEM blocks)")


# Well-formed certificate blocks: BEGIN and END CERTIFICATE markers around a body of base64 text
# and whitespace only. Anything else (headers, other labels, damage) takes the careful scanner.
_BEGIN_CERT = b"-----BEGIN CERTIFICATE-----"
_END_CERT = b"-----END CERTIFICATE-----"
#: What a body on the fast path may hold; ``translate`` deletes these and anything left over sends
#: the input to the careful scanner. (A regex over the same class cost ~50,000 instructions per
#: leaf + intermediate, ~2 % of a Secret's evaluation: docs/benchmarks.md, issue 28.)
_BODY_CHARS = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=" + _WHITESPACE


def _fast_body(body: bytes) -> bytes | None:
    """The DER of one fast-path body, or None when the body holds anything but base64 text and
    whitespace. Line breaks removed, strict base64 settles it for a well-formed body (bytes.replace
    and a strict decode cost a third of a ``translate`` over every byte); anything else — other
    whitespace, odd padding, a stray character — is judged as before: characters checked, lenient
    decode."""
    compact = body.replace(b"\n", b"")
    if b"\r" in compact:
        compact = compact.replace(b"\r", b"")
    try:
        return binascii.a2b_base64(compact, strict_mode=True)
    except (binascii.Error, ValueError):
        pass
    if body.translate(None, _BODY_CHARS):
        return None
    return binascii.a2b_base64(body)


def certificate_ders(raw: bytes) -> list[bytes] | None:
    """The DER of each block, in order, when ``raw`` is the common case — only CERTIFICATE blocks,
    each well-formed, found with ``bytes.find`` — and None when it needs the careful scanner of
    :func:`load_certificates`. Nothing is parsed: what a block holds is not judged here."""
    if len(raw) > MAX_INPUT_BYTES:
        return None
    n = raw.count(b"-----BEGIN")
    if not n or n > MAX_CERTIFICATES or n != raw.count(b"-----END"):
        return None
    bodies = []
    find, begin_len, pos = raw.find, len(_BEGIN_CERT), 0
    try:
        for _ in range(n):
            start = find(_BEGIN_CERT, pos)
            if start < 0:
                return None
            start += begin_len
            end = find(_END_CERT, start)
            if end < 0:
                return None
            der = _fast_body(raw[start:end])
            if der is None:
                return None
            bodies.append(der)
            pos = end + len(_END_CERT)
    except Exception:
        return None
    return bodies


def _load_pem_fast(raw: bytes) -> CertificateLoad | None:
    """:func:`certificate_ders`, each parsed; None when the input needs the careful scanner."""
    bodies = certificate_ders(raw)
    if bodies is None:
        return None
    try:
        parsed = [parse_der(der) for der in bodies]
    except Exception:
        return None
    return CertificateLoad(tuple(c for c, _ in parsed), (), tuple(fp for _, fp in parsed))


def _load_pem(raw: bytes, out: _Collector, truncated: bool) -> None:
    marker_problems: list[LoadProblem] = []
    for n, block in enumerate(pem_blocks(raw, marker_problems), start=1):
        if out.full:
            break
        label = block.label
        if label in CERT_LABELS or label == TRUSTED_LABEL or label in PKCS7_LABELS:
            try:
                der = pem_body(raw, block)
            except ValueError as e:
                out.problem("MalformedCertificate", f"PEM block {n} ({label}): {e}")
                continue
            if label == TRUSTED_LABEL:
                # OpenSSL appends its trust settings (X509_CERT_AUX) after the certificate.
                length = _der_element_length(der)
                der = der[:length] if length > 0 else der
            if label in PKCS7_LABELS:
                _add_pkcs7(der, out, f"PEM block {n} ({label})")
            else:
                out.add_der(der, f"PEM block {n} ({label})")
        elif label not in QUIET_LABELS:
            out.problem("UnexpectedPEMBlock", f"PEM block {n} is a '{label}', not a certificate; ignored")
    for p in marker_problems:
        if truncated and "no END line" in p:
            continue  # we cut the input ourselves; InputTooLarge already says so
        out.problem(p.reason, str(p))


def _load_der(raw: bytes, out: _Collector) -> None:
    length = _der_element_length(raw)
    if length == len(raw):
        try:
            cert, fp = parse_der(raw)
        except Exception:
            if not _add_pkcs7(raw, out, "DER input", quiet=True):
                out.problem("MalformedCertificate", "DER input is not a valid X.509 certificate or PKCS#7 bundle")
            return
        out.add(cert, fp)
        return
    if length <= 0:
        out.problem("MalformedCertificate", "input starts like DER but its length is wrong (truncated?)")
        return
    # Concatenated DER certificates, as some tools write a chain.
    pos, n = 0, 0
    while pos < len(raw) and not out.full:
        length = _der_element_length(raw, pos)
        if length <= 0:
            out.problem("MalformedCertificate", f"DER data after certificate {n} is not a certificate (truncated?)")
            return
        n += 1
        before = len(out.certs)
        out.add_der(raw[pos : pos + length], f"DER element {n}")
        if len(out.certs) == before:
            return  # one bad element is enough said; what follows it is not trustworthy either
        pos += length


def _add_pkcs7(der: bytes, out: _Collector, what: str, quiet: bool = False) -> bool:
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except Exception:
        if not quiet:
            out.problem("MalformedCertificate", f"{what} is not a valid PKCS#7 certificate bundle")
        return False
    for cert in certs:
        # Round-trip through the cache so the same certificate is the same object everywhere.
        try:
            out.add(*parse_der(cert.public_bytes(serialization.Encoding.DER)))
        except Exception:
            out.add(cert)
    return True


def _looks_like_base64(raw: bytes) -> bool:
    return len(raw) >= 40 and _B64_TEXT.fullmatch(raw[:8192]) is not None


def _load_double_encoded(raw: bytes, out: _Collector) -> None:
    """Base64 text where PEM or DER was expected: a Secret value encoded twice (``data`` holding
    base64 of base64), or a PEM stripped of its BEGIN/END lines. Consumers will fail to read it, so
    it is a problem even though the certificates inside are read and checked."""
    try:
        decoded = binascii.a2b_base64(raw.translate(None, _WHITESPACE))
    except (binascii.Error, ValueError):
        out.problem("NoCertificate", "no PEM block or DER certificate found")
        return
    inner = _Collector()
    _load_into(decoded, inner, depth=1)
    if not inner.certs:
        out.problem("NoCertificate", "no PEM block or DER certificate found")
        return
    out.problem(
        "DoubleEncoded",
        "holds base64 text instead of PEM: base64-encoded twice, or PEM without its BEGIN/END lines",
    )
    for cert, fp in zip(inner.certs, inner.fps):
        out.add(cert, fp)
    out.problems.extend(inner.problems)


# --- private keys --------------------------------------------------------------------------------


_SIGNING_KEYS = (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey, dsa.DSAPrivateKey)
_SIGNING_TYPES: dict[type, bool] = {}


def _can_sign(key: object) -> TypeGuard[PrivateKey]:
    """isinstance() against cryptography's key ABCs is slow; the answer per concrete type is not."""
    t = type(key)
    ok = _SIGNING_TYPES.get(t)
    if ok is None:
        ok = _SIGNING_TYPES[t] = isinstance(key, _SIGNING_KEYS)
    return ok


def load_private_key(data: object, password: bytes | None = None) -> KeyLoad:
    """The first private key in ``data`` (PEM PKCS#8 / PKCS#1 / SEC1, encrypted or not, or DER).

    RSA keys are loaded with ``unsafe_skip_rsa_key_validation``: validating the private primes
    costs ~50 ms per key (measured), and the engine only compares the *public* half with the
    certificate. A key whose private half is corrupt but whose modulus matches will be reported as
    matching; TLS servers reject such a key at start-up, which is louder than any finding.
    Never raises.
    """
    raw = _as_bytes(data)
    if raw is None:
        return KeyLoad(problem="MalformedKey", detail=f"expected bytes, got {type(data).__name__}")
    if len(raw) > MAX_INPUT_BYTES:
        return KeyLoad(problem="MalformedKey", detail=f"{len(raw)} bytes is too large to be a private key")
    if not raw.strip():
        return KeyLoad(problem="NoPrivateKey", detail="empty")
    try:
        if b"-----BEGIN" in raw:
            if password is None and raw.count(b"-----BEGIN") == 1 and b"ENCRYPTED" not in raw:
                # The common case: one unencrypted key block. Anything unusual takes the careful path.
                try:
                    key = serialization.load_pem_private_key(raw, None, unsafe_skip_rsa_key_validation=True)
                except Exception:
                    key = None
                if key is not None and _can_sign(key):
                    return KeyLoad(key)
            return _load_pem_key(raw, password)
        return _load_key_der(raw, password, encrypted_hint=False)
    except Exception as e:  # pragma: no cover - last line of defence
        return KeyLoad(problem="MalformedKey", detail=f"could not be read ({type(e).__name__})")


def _load_pem_key(raw: bytes, password: bytes | None) -> KeyLoad:
    other: str | None = None
    for block in pem_blocks(raw):
        if block.label not in KEY_LABELS:
            other = other or block.label
            continue
        text = raw[block.start : block.end]
        if block.label == "OPENSSH PRIVATE KEY":
            return KeyLoad(problem="UnsupportedKey", detail="key is in OpenSSH format; TLS software needs PKCS#8, PKCS#1 or SEC1 PEM")
        encrypted = block.label == "ENCRYPTED PRIVATE KEY" or b"ENCRYPTED" in raw[block.body_start : block.body_end][:200]
        return _finish(lambda pw: serialization.load_pem_private_key(text, pw, unsafe_skip_rsa_key_validation=True), password, encrypted, block.label)  # noqa: B023 - called before the loop moves on
    if other:
        return KeyLoad(problem="NoPrivateKey", detail=f"holds a '{other}' PEM block, not a private key")
    return KeyLoad(problem="MalformedKey", detail="PEM private key block is incomplete (no END line?)")


def _load_key_der(raw: bytes, password: bytes | None, encrypted_hint: bool) -> KeyLoad:
    if raw[:1] != b"\x30":
        return KeyLoad(problem="MalformedKey", detail="neither PEM nor DER")
    return _finish(lambda pw: serialization.load_der_private_key(raw, pw, unsafe_skip_rsa_key_validation=True), password, encrypted_hint, "DER")


def _finish(loader: Any, password: bytes | None, encrypted: bool, label: str) -> KeyLoad:
    try:
        try:
            key = loader(password)
        except TypeError as e:
            # cryptography raises TypeError for "password given but key not encrypted" and the
            # reverse; which one is told by whether a password was passed.
            if password is None:
                return KeyLoad(problem="EncryptedKey", detail="key is encrypted and no password was given", encrypted=True)
            if "not encrypted" in str(e):
                key = loader(None)
            else:
                raise
    except UnsupportedAlgorithm:
        return KeyLoad(problem="UnsupportedKey", detail=f"{label} key uses an unsupported algorithm or encryption", encrypted=encrypted)
    except ValueError:
        if encrypted:
            return KeyLoad(problem="EncryptedKey", detail="key is encrypted and the password does not decrypt it", encrypted=True)
        return KeyLoad(problem="MalformedKey", detail=f"{label} key could not be parsed")
    except Exception as e:
        return KeyLoad(problem="MalformedKey", detail=f"{label} key could not be parsed ({type(e).__name__})")
    if not isinstance(key, _SIGNING_KEYS):
        return KeyLoad(problem="UnsupportedKey", detail=f"{describe_key(key)} keys cannot sign TLS handshakes", encrypted=encrypted)
    return KeyLoad(key=key, encrypted=encrypted)


# --- PKCS#12 -------------------------------------------------------------------------------------


def load_pkcs12(data: object, password: bytes | None = None) -> Pkcs12Load:
    """The certificate, chain and key of a PKCS#12 keystore (``.p12``/``.pfx``). Never raises.

    PKCS#12 does not say whether a failure is a wrong password or a damaged file, so both are
    ``KeystoreUnreadable`` (``EncryptedKey`` when no password was tried at all).
    """
    raw = _as_bytes(data)
    if raw is None or not raw:
        return Pkcs12Load(problem="KeystoreUnreadable", detail="empty")
    if len(raw) > MAX_INPUT_BYTES:
        return Pkcs12Load(problem="InputTooLarge", detail=f"{len(raw)} bytes is too large for a keystore")
    if password is not None and b"\x00" in password:
        # OpenSSL takes the password as a C string; cryptography panics (a BaseException) on a NUL.
        return Pkcs12Load(problem="KeystoreUnreadable", detail="the password contains a NUL byte")
    tried = [password] if password is not None else [None, b""]
    for pw in tried:
        try:
            p12 = pkcs12.load_pkcs12(raw, pw)
        except Exception:
            continue
        except BaseException as e:  # a Rust panic surfaces as pyo3's PanicException
            if isinstance(e, (KeyboardInterrupt, SystemExit, GeneratorExit)):
                raise
            continue
        cert = p12.cert.certificate if p12.cert is not None else None
        extra = tuple(c.certificate for c in p12.additional_certs)
        cert, extra = _recache(cert), tuple(c for c in (_recache(c) for c in extra) if c is not None)
        key = p12.key if isinstance(p12.key, _SIGNING_KEYS) else None
        if cert is None and not extra:
            return Pkcs12Load(key=key, problem="NoCertificate", detail="keystore holds no certificate")
        return Pkcs12Load(certificate=cert, additional_certificates=extra, key=key)
    if password is None:
        return Pkcs12Load(problem="EncryptedKey", detail="not a PKCS#12 keystore, or one that needs a password")
    return Pkcs12Load(problem="KeystoreUnreadable", detail="not a PKCS#12 keystore, or the password is wrong")


def _recache(cert: x509.Certificate | None) -> x509.Certificate | None:
    if cert is None:
        return None
    try:
        return parse_der_certificate(cert.public_bytes(serialization.Encoding.DER))
    except Exception:
        return cert

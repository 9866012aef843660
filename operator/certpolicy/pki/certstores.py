"""Certificate stores of any format, recognised by content: PEM, DER, PKCS#12, JKS, JCEKS.

One entry point, :func:`read_certstore`, for every place that holds "some certificates, maybe a key,
maybe behind a password": a keystore in an Opaque Secret, a truststore in a ConfigMap, a PEM
bundle under ``ca.crt``. The format comes from the bytes (a JKS magic number, the PKCS#12
``PFX`` version, a PEM marker), never from the file name alone: ``truststore`` without an
extension is common, and ``.jks`` files that are really PKCS#12 (Java 9+ ``keytool`` default)
are more common still.

Also here: which data keys hold trust stores (:func:`truststore_keys`) and which sibling data key
holds a store's password (:func:`sibling_password`), the key patterns shared by Secrets and
ConfigMaps. Never raises; never puts a password or key bytes into a message.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field

from cryptography import x509

from certpolicy.pki.javakeystore import keystore_format, load_java_keystore
from certpolicy.pki.load import LoadProblem, PrivateKey, load_certificates, load_pkcs12

PEM, DER, PKCS12, JKS, JCEKS = "PEM", "DER", "PKCS12", "JKS", "JCEKS"


@dataclass(frozen=True)
class CertstoreRead:
    """What one store holds. ``key`` is transient (out of repr and equality)."""

    format: str
    certificates: tuple[x509.Certificate, ...]
    problems: tuple[LoadProblem, ...] = ()
    #: A keystore's own certificate (its key's), when the format says which one it is.
    key_certificate: x509.Certificate | None = None
    key: PrivateKey | None = field(default=None, repr=False, compare=False)
    #: Why a keystore's private key was not read (``EncryptedKey`` detail), else "".
    key_problem: str = ""
    #: A Java keystore read without a password: its integrity was not verified.
    unverified: bool = False
    #: A Java keystore's key entry chain (leaf first): what a Java server presents. Empty when the
    #: store has no key entry or is not a Java keystore (then ``certificates`` is the chain).
    key_chain: tuple[x509.Certificate, ...] = ()

    @property
    def unreadable(self) -> bool:
        return any(p.reason == "KeystoreUnreadable" for p in self.problems) and not self.certificates


def _is_pkcs12(data: bytes) -> bool:
    """A PFX: SEQUENCE { INTEGER 3, ContentInfo ... } (DER or BER indefinite length)."""
    if len(data) < 8 or data[0] != 0x30:
        return False
    first = data[1]
    pos = 2 if first < 0x80 or first == 0x80 else 2 + (first & 0x7F)
    return data[pos : pos + 3] == b"\x02\x01\x03"


def detect_format(data: bytes) -> str:
    """``JKS``, ``JCEKS``, ``PKCS12``, ``PEM`` or ``DER`` (the default guess)."""
    java = keystore_format(data)
    if java:
        return java
    if _is_pkcs12(data):
        return PKCS12
    if b"-----BEGIN" in data[:65536]:
        return PEM
    return DER


def read_certstore(data: bytes, password: bytes | None = None, *, source: str = "") -> CertstoreRead:
    """The certificates (and, for keystores, the key) of one stored value. Never raises.

    ``password``: for PKCS#12 and Java keystores; ignored for PEM and DER. A store that cannot be
    opened gives a ``KeystoreUnreadable`` problem naming the reason (never the password).
    """
    if not isinstance(data, (bytes, bytearray)):
        return CertstoreRead("", (), (LoadProblem("NoCertificate", "no data", source),))
    data = bytes(data)
    fmt = detect_format(data)
    if fmt in (JKS, JCEKS):
        return _read_java(data, password, fmt, source)
    if fmt == PKCS12:
        return _read_pkcs12(data, password, source)
    loaded = load_certificates(data)
    return CertstoreRead(fmt, loaded.certificates, tuple(p.with_source(source) for p in loaded.problems))


def _read_pkcs12(data: bytes, password: bytes | None, source: str) -> CertstoreRead:
    p12 = load_pkcs12(data, password)
    certs = ((p12.certificate,) if p12.certificate is not None else ()) + p12.additional_certificates
    problems: list[LoadProblem] = []
    if p12.problem and not certs:
        reason = "InputTooLarge" if p12.problem == "InputTooLarge" else "KeystoreUnreadable"
        detail = p12.detail if p12.problem != "EncryptedKey" else "PKCS#12 store needs a password and none was given"
        problems.append(LoadProblem(reason, detail, source))
    elif p12.problem:
        problems.append(LoadProblem(p12.problem, p12.detail, source))
    key_cert = p12.certificate if p12.key is not None else None
    return CertstoreRead(PKCS12, certs, tuple(problems), key_cert, p12.key)


def _read_java(data: bytes, password: bytes | None, fmt: str, source: str) -> CertstoreRead:
    ks = load_java_keystore(data, password)
    problems: list[LoadProblem] = []
    if ks.problem:
        problems.append(LoadProblem(ks.problem, ks.detail, source))
    key = key_cert = None
    key_problem = ""
    for entry in ks.entries:
        if entry.kind == "privateKey" and entry.certificates:
            if entry.key is not None and key is None:
                key, key_cert = entry.key, entry.certificates[0]
            elif entry.key is None and not key_problem:
                key_problem = f"{source}: key entry '{entry.alias}': {entry.key_problem}" if source else entry.key_problem or ""
                key_cert = key_cert or entry.certificates[0]
    # Key entries first (each chain leaf first), then trusted certificates.
    chain = next((e.certificates for e in ks.entries if e.kind == "privateKey" and e.certificates), ())
    ordered = [c for e in ks.entries if e.kind == "privateKey" for c in e.certificates]
    ordered += [c for e in ks.entries if e.kind != "privateKey" for c in e.certificates]
    return CertstoreRead(fmt, tuple(ordered), tuple(problems), key_cert, key, key_problem,
                     unverified=bool(ks.format) and not ks.verified and not ks.problem, key_chain=chain)


# --- key patterns ----------------------------------------------------------------------------

#: Data keys that hold a trust store, by pattern (lower-cased, fnmatch). Like the key patterns of
#: x509-certificate-exporter, but for stores: what a Java, Go or OpenSSL peer loads to trust others.
TRUSTSTORE_PATTERNS: tuple[str, ...] = (
    "ca.crt", "ca.pem", "ca-bundle.crt", "ca-bundle.pem", "ca-certificates.crt", "cacerts", "cacerts.*",
    "trust-bundle.pem", "truststore", "truststore.*", "*.truststore", "*-truststore.*", "*_truststore.*",
    "trust.jks", "trust.p12", "root-ca.*", "root.crt", "root.pem",
)
#: Sibling data keys read as the password of a store, tried in order; ``{name}`` is the store's
#: data key and ``{stem}`` that key without its extension.
PASSWORD_KEYS: tuple[str, ...] = (
    "{name}.password", "{name}-password", "{stem}.password", "{stem}-password", "{stem}_password",
    "{stem}password", "{stem}.pass", "{stem}-pass", "{stem}pass",
    "password", "storepass", "keystore-password", "keystore.password", "keystorepassword",
)
_STORE_EXTS = frozenset({"crt", "pem", "cer", "der", "p12", "pfx", "jks", "jceks", "ks", "keystore", "truststore", "p7b"})


def is_truststore_key(name: str) -> bool:
    lower = name.lower()
    stem, dot, ext = lower.rpartition(".")
    if dot and ext not in _STORE_EXTS:
        return False  # truststore.jks.password, truststore.txt: not a store
    return any(fnmatch.fnmatchcase(lower, p) for p in TRUSTSTORE_PATTERNS)


def truststore_keys(data_keys: list[str] | tuple[str, ...] | set[str]) -> tuple[str, ...]:
    """The data keys of a ConfigMap or Secret that hold trust stores, sorted."""
    return tuple(sorted(k for k in data_keys if is_truststore_key(k)))


def sibling_password(name: str, data: Mapping[str, bytes]) -> tuple[str | None, bytes | None]:
    """(data key, password) of the sibling holding ``name``'s password, or (None, None).

    The value is stripped of surrounding whitespace and line ends (``echo`` adds one); it is a
    password only to :func:`read_certstore`, never logged or returned in a message.
    """
    lower = {k.lower(): k for k in data}
    stem = name.rsplit(".", 1)[0] if "." in name else name
    for pattern in PASSWORD_KEYS:
        candidate = pattern.format(name=name, stem=stem).lower()
        if candidate == name.lower():
            continue
        actual = lower.get(candidate)
        if actual is not None:
            value = data[actual]
            return actual, value.strip() if isinstance(value, (bytes, bytearray)) else None
    return None, None


def is_password_key(name: str) -> bool:
    lower = name.lower()
    return lower in ("password", "storepass") or lower.endswith(
        (".password", "-password", "_password", "password", ".pass", "-pass", "storepass"))

"""Java keystores: reading JKS and JCEKS, writing JKS truststores.

Why a reader of our own instead of pyjks (the known pure-Python library): pyjks's last release
(20.0.0) is from April 2020 and it hard-depends on ``twofish`` (a C extension last released in
2013, no wheels: every install compiles it, so the slim image would need a compiler),
``javaobj-py3`` (Java deserialisation, used for JCEKS secret keys) and ``pycryptodomex``. The parts
of the format a certificate checker needs are small and fully specified by the JDK's
``sun.security.provider.JavaKeyStore`` and ``com.sun.crypto.provider.JceKeyStore``:

* a header (magic ``FEEDFEED`` for JKS, ``CECECECE`` for JCEKS, version, entry count);
* per entry a tag, a UTF alias, a timestamp and either a trusted certificate or a protected
  private key followed by its (unencrypted) certificate chain;
* a trailing SHA-1 over ``password (UTF-16BE) || "Mighty Aphrodite" || everything before`` — the
  store's integrity check, which is also how a wrong password shows.

Private keys are protected by Sun's SHA-1 keystream (JKS) or PBEWithMD5AndTripleDES (JCEKS);
both are a few lines over :mod:`cryptography`, and a key is only decrypted to compare its public
half with the certificate, then dropped. JCEKS *secret-key* entries are serialised Java objects
(``SealedObject``) without a length prefix: they cannot be skipped without a Java deserialiser, so
reading stops there and says so (:data:`PARTLY_READ`); nothing is deserialised.

Every function here never raises on bad input; sizes and counts are bounded like the other
loaders (:data:`certpolicy.pki.load.MAX_INPUT_BYTES`, ``MAX_CERTIFICATES``). Nothing here puts a
password or key bytes into a message, a repr or an exception.

Writing: a JKS truststore is a list of ``trustedCertEntry`` plus the SHA-1 check. It holds no
salt, so the same certificates, aliases and password always give the same bytes (timestamps are
each certificate's notBefore), and a target can be compared byte for byte.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from certpolicy.pki.load import MAX_CERTIFICATES, MAX_INPUT_BYTES, PrivateKey, parse_der

JKS_MAGIC = 0xFEEDFEED
JCEKS_MAGIC = 0xCECECECE
_WHITENER = b"Mighty Aphrodite"
_DIGEST_LEN = 20
#: Entries read from one store (a JDK cacerts holds ~150).
MAX_ENTRIES = MAX_CERTIFICATES
#: Iterations accepted for a JCEKS key (the JDK writes 200 000 since 8u; bounded against a hostile store).
MAX_PBE_ITERATIONS = 1_000_000

# DER contents (not the tag/length) of the two key-protection algorithm OIDs.
_OID_JKS_KEY_PROTECTOR = bytes.fromhex("2b060104012a02110101")  # 1.3.6.1.4.1.42.2.17.1.1
_OID_PBE_MD5_3DES = bytes.fromhex("2b060104012a021301")  # 1.3.6.1.4.1.42.2.19.1

PARTLY_READ = "KeystorePartlyRead"
UNREADABLE = "KeystoreUnreadable"


@dataclass(frozen=True)
class JavaKeystoreEntry:
    alias: str
    kind: str  # "trustedCert" | "privateKey"
    certificates: tuple[x509.Certificate, ...]  # the trusted certificate, or the key's chain (leaf first)
    key: PrivateKey | None = field(default=None, repr=False, compare=False)
    key_problem: str | None = None  # None, or why the key could not be decrypted (never its bytes)


@dataclass(frozen=True)
class JavaKeystoreLoad:
    """What one JKS/JCEKS store holds. Transient when a key was decrypted (the key stays out of
    repr and equality; callers compare it with the certificate and drop it)."""

    format: str  # "JKS" | "JCEKS" | "" (not a Java keystore)
    entries: tuple[JavaKeystoreEntry, ...] = ()
    #: None, or ``KeystoreUnreadable`` (wrong password, damaged) / ``KeystorePartlyRead``.
    problem: str | None = None
    detail: str = ""
    #: Whether the trailing integrity check was verified with the password (False: none given).
    verified: bool = False

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        return tuple(c for e in self.entries for c in e.certificates)


def keystore_format(data: bytes) -> str:
    """``JKS``, ``JCEKS`` or ``""`` from the magic number."""
    if len(data) < 4:
        return ""
    magic = struct.unpack(">I", data[:4])[0]
    return {JKS_MAGIC: "JKS", JCEKS_MAGIC: "JCEKS"}.get(magic, "")


def _password_utf16(password: bytes) -> bytes | None:
    """Java's char[] password as the integrity check hashes it; None when not UTF-8 text."""
    try:
        return password.decode("utf-8").encode("utf-16-be")
    except UnicodeError:
        return None


def encode_modified_utf8(text: str) -> bytes:
    """``text`` as Java's ``DataOutputStream.writeUTF`` writes it (without the length prefix).

    Java's *modified* UTF-8 differs from UTF-8 twice: U+0000 is ``C0 80``, and a character outside
    the BMP is written as its UTF-16 surrogate pair, each half as 3 bytes (6 bytes, not 4).
    ``readUTF`` refuses the 4-byte form (``UTFDataFormatException``), so an alias such as
    ``ca-😀`` written as plain UTF-8 makes the whole store unreadable to Java.
    """
    out = bytearray()
    for ch in text:
        code = ord(ch)
        if code == 0:
            out += b"\xc0\x80"
        elif code > 0xFFFF:
            code -= 0x10000
            for half in (0xD800 | (code >> 10), 0xDC00 | (code & 0x3FF)):
                out += chr(half).encode("utf-8", "surrogatepass")
        else:
            out += ch.encode("utf-8", "surrogatepass")
    return bytes(out)


def decode_modified_utf8(raw: bytes) -> str:
    """The inverse of :func:`encode_modified_utf8`, as ``readUTF`` reads: surrogate pairs become
    one character again, ``C0 80`` is U+0000; bytes Java would refuse become U+FFFD (never raises)."""
    try:
        text = raw.replace(b"\xc0\x80", b"\x00").decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace")
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "replace")


class _Truncated(Exception):
    pass


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Truncated()
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u2(self) -> int:
        return int(struct.unpack(">H", self.take(2))[0])

    def u4(self) -> int:
        return int(struct.unpack(">I", self.take(4))[0])

    def utf(self) -> str:
        return decode_modified_utf8(self.take(self.u2()))


def load_java_keystore(data: bytes, password: bytes | None = None) -> JavaKeystoreLoad:
    """The entries of a JKS or JCEKS store. Never raises.

    ``password``: the store password (also tried for private keys, as keytool sets both alike).
    With a password, a store whose integrity check fails is ``KeystoreUnreadable`` and nothing in
    it is returned (Java refuses to load it). Without one, the empty password is tried; if that
    does not verify either, the certificates are returned unverified, as Java does for a
    truststore loaded without a password, and private keys stay encrypted.
    """
    if not isinstance(data, (bytes, bytearray)):
        return JavaKeystoreLoad("", problem=UNREADABLE, detail="not bytes")
    data = bytes(data)
    fmt = keystore_format(data)
    if not fmt:
        return JavaKeystoreLoad("", problem=UNREADABLE, detail="not a JKS or JCEKS keystore")
    if len(data) > MAX_INPUT_BYTES:
        return JavaKeystoreLoad(fmt, problem="InputTooLarge", detail=f"{len(data)} bytes is too large for a keystore")
    try:
        return _load(data, fmt, password)
    except Exception as e:  # pragma: no cover - last line of defence; _load handles its own
        return JavaKeystoreLoad(fmt, problem=UNREADABLE, detail=f"{fmt} keystore could not be read ({type(e).__name__})")


def _load(data: bytes, fmt: str, password: bytes | None) -> JavaKeystoreLoad:
    if len(data) < 12 + _DIGEST_LEN:
        return JavaKeystoreLoad(fmt, problem=UNREADABLE, detail=f"{fmt} keystore is truncated")
    body, digest = data[:-_DIGEST_LEN], data[-_DIGEST_LEN:]
    verified = False
    pw_chars: bytes | None = None
    if password is not None:
        pw_chars = _password_utf16(password)
        if pw_chars is None:
            return JavaKeystoreLoad(fmt, problem=UNREADABLE, detail="the password is not UTF-8 text")
        if not _integrity_ok(pw_chars, body, digest):
            return JavaKeystoreLoad(
                fmt, problem=UNREADABLE,
                detail=f"{fmt} keystore integrity check failed: the password is wrong, or the file was altered or truncated")
        verified = True
    elif _integrity_ok(b"", body, digest):
        password, pw_chars, verified = b"", b"", True

    r = _Reader(body)
    r.take(4)
    version = r.u4()
    if version not in (1, 2):
        return JavaKeystoreLoad(fmt, problem=UNREADABLE, detail=f"{fmt} keystore version {version} is not 1 or 2")
    count = r.u4()
    entries: list[JavaKeystoreEntry] = []
    n_certs = 0
    problem, detail = None, ""
    try:
        for _ in range(count):
            if len(entries) >= MAX_ENTRIES or n_certs >= MAX_CERTIFICATES:
                problem, detail = PARTLY_READ, f"more than {MAX_ENTRIES} entries; the rest were not read"
                break
            tag = r.u4()
            alias = r.utf()
            r.take(8)  # creation date
            if tag == 2:
                cert = _certificate(r, version)
                entries.append(JavaKeystoreEntry(alias, "trustedCert", (cert,)))
                n_certs += 1
            elif tag == 1:
                protected = r.take(r.u4())
                chain_len = r.u4()
                if chain_len > MAX_CERTIFICATES:
                    raise ValueError("certificate chain too long")
                chain = tuple(_certificate(r, version) for _ in range(chain_len))
                n_certs += len(chain)
                key, key_problem = _unprotect(protected, password, fmt)
                entries.append(JavaKeystoreEntry(alias, "privateKey", chain, key, key_problem))
            elif tag == 3 and fmt == "JCEKS":
                problem, detail = PARTLY_READ, (
                    f"entry '{alias}' is a secret key (a serialised Java object); it and the entries after it were not read")
                break
            else:
                raise ValueError(f"unknown entry type {tag}")
        else:
            if r.pos != len(body):
                raise ValueError("data after the last entry")
    except _Truncated:
        return JavaKeystoreLoad(fmt, problem=UNREADABLE, detail=f"{fmt} keystore is truncated or damaged")
    except ValueError as e:
        return JavaKeystoreLoad(fmt, problem=UNREADABLE, detail=f"{fmt} keystore is damaged: {e}")
    return JavaKeystoreLoad(fmt, tuple(entries), problem, detail, verified)


def _integrity_ok(pw_chars: bytes, body: bytes, digest: bytes) -> bool:
    return hmac.compare_digest(hashlib.sha1(pw_chars + _WHITENER + body).digest(), digest)


def _certificate(r: _Reader, version: int) -> x509.Certificate:
    if version == 2:
        ctype = r.utf()
        if ctype != "X.509":
            raise ValueError(f"certificate type '{ctype[:32]}' is not X.509")
    der = r.take(r.u4())
    try:
        return parse_der(der)[0]
    except Exception:
        raise ValueError("an entry holds an invalid X.509 certificate") from None


# --- private keys ----------------------------------------------------------------------------


def _tlv(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, start of content, end) of the DER element at ``pos``; ValueError when it does not fit."""
    if pos + 2 > len(data):
        raise ValueError("DER truncated")
    tag, first = data[pos], data[pos + 1]
    pos += 2
    if first < 0x80:
        length = first
    else:
        n = first & 0x7F
        if n == 0 or n > 4 or pos + n > len(data):
            raise ValueError("bad DER length")
        length = int.from_bytes(data[pos : pos + n], "big")
        pos += n
    if pos + length > len(data):
        raise ValueError("DER truncated")
    return tag, pos, pos + length


def _encrypted_private_key_info(der: bytes) -> tuple[bytes, bytes, bytes]:
    """(algorithm OID contents, parameters DER, encrypted data) of an EncryptedPrivateKeyInfo."""
    tag, start, end = _tlv(der, 0)
    if tag != 0x30:
        raise ValueError("not a SEQUENCE")
    tag, a_start, a_end = _tlv(der, start)  # AlgorithmIdentifier
    if tag != 0x30:
        raise ValueError("no AlgorithmIdentifier")
    tag, o_start, o_end = _tlv(der, a_start)
    if tag != 0x06:
        raise ValueError("no algorithm OID")
    params = der[o_end:a_end]
    tag, d_start, d_end = _tlv(der, a_end)
    if tag != 0x04:
        raise ValueError("no encrypted data")
    return der[o_start:o_end], params, der[d_start:d_end]


def _unprotect(protected: bytes, password: bytes | None, fmt: str) -> tuple[PrivateKey | None, str | None]:
    if password is None:
        return None, "no password was given"
    try:
        oid, params, encrypted = _encrypted_private_key_info(protected)
        if oid == _OID_JKS_KEY_PROTECTOR:
            pw_chars = _password_utf16(password)
            plain = _jks_unprotect(encrypted, pw_chars) if pw_chars is not None else None
        elif oid == _OID_PBE_MD5_3DES:
            plain = _jceks_unprotect(encrypted, params, password)
        else:
            return None, "the key is protected by an algorithm this reader does not know"
    except ValueError:
        return None, "the protected key is damaged"
    if plain is None:
        return None, "the key password differs from the store password"
    try:
        key = serialization.load_der_private_key(plain, None, unsafe_skip_rsa_key_validation=True)
    except Exception:
        return None, "the decrypted key could not be parsed"
    # load_der_private_key is typed with every key type cryptography knows (DH, X25519, ...); a JKS
    # key entry holds an RSA, EC or DSA key (what keytool writes), the types PrivateKey names.
    return key, None  # type: ignore[return-value]


def _jks_unprotect(encrypted: bytes, pw_chars: bytes) -> bytes | None:
    """Sun's KeyProtector: salt(20) || key XOR SHA-1 keystream || SHA-1 check."""
    if len(encrypted) < 2 * _DIGEST_LEN:
        raise ValueError("too short")
    salt, body, check = encrypted[:20], encrypted[20:-20], encrypted[-20:]
    stream = bytearray()
    digest = salt
    while len(stream) < len(body):
        digest = hashlib.sha1(pw_chars + digest).digest()
        stream += digest
    plain = bytes(a ^ b for a, b in zip(body, stream))
    if not hmac.compare_digest(hashlib.sha1(pw_chars + plain).digest(), check):
        return None
    return plain


def _jceks_unprotect(encrypted: bytes, params: bytes, password: bytes) -> bytes | None:
    """PBEWithMD5AndTripleDES as the JDK's PBES1Core derives it (DESede key and IV from MD5 over
    each salt half)."""
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES

    tag, start, end = _tlv(params, 0)
    if tag != 0x30:
        raise ValueError("no PBE parameters")
    tag, s_start, s_end = _tlv(params, start)
    tag2, i_start, i_end = _tlv(params, s_end)
    if tag != 0x04 or tag2 != 0x02 or s_end - s_start != 8 or not 0 < i_end - i_start <= 4:
        raise ValueError("bad PBE parameters")
    salt = bytearray(params[s_start:s_end])
    iterations = int.from_bytes(params[i_start:i_end], "big")
    if not 0 < iterations <= MAX_PBE_ITERATIONS or len(encrypted) % 8 or not encrypted:
        raise ValueError("bad PBE parameters")
    try:
        text = password.decode("ascii")
    except UnicodeError:
        return None
    pw = bytes(ord(c) & 0x7F for c in text)
    if salt[:4] == salt[4:]:
        salt[0], salt[1], salt[2], salt[3] = salt[3], salt[2], salt[1], salt[0]
    derived = b""
    for half in (bytes(salt[:4]), bytes(salt[4:])):
        block = half
        for _ in range(iterations):
            block = hashlib.md5(block + pw).digest()
        derived += block
    decryptor = Cipher(TripleDES(derived[:24]), modes.CBC(derived[24:32])).decryptor()
    padded = decryptor.update(encrypted) + decryptor.finalize()
    pad = padded[-1]
    if not 1 <= pad <= 8 or padded[-pad:] != bytes([pad]) * pad:
        return None
    return padded[:-pad]


# --- writing ---------------------------------------------------------------------------------


def _utf(text: str) -> bytes:
    raw = encode_modified_utf8(text)
    if len(raw) > 0xFFFF:
        raise ValueError("alias too long")
    return struct.pack(">H", len(raw)) + raw


def encode_jks_truststore(entries: Iterable[tuple[str, x509.Certificate]], password: bytes | str | None = None) -> bytes:
    """A JKS (version 2) truststore of ``(alias, certificate)`` trustedCertEntries, in the given
    order, with the integrity check keyed by ``password`` (absent: the empty password, which Java
    reads with ``-storepass ''`` or without any password). Deterministic. Raises ValueError for a
    duplicate or empty alias (Java keeps one entry per alias, case-insensitively)."""
    pw = password.encode("utf-8") if isinstance(password, str) else (password or b"")
    pw_chars = _password_utf16(pw)
    if pw_chars is None:
        raise ValueError("the truststore password is not UTF-8 text")
    items = list(entries)
    seen: set[str] = set()
    out = bytearray(struct.pack(">III", JKS_MAGIC, 2, len(items)))
    for alias, cert in items:
        low = alias.lower()
        if not low or low in seen:
            raise ValueError(f"truststore alias {alias!r} is empty or used twice")
        seen.add(low)
        der = cert.public_bytes(serialization.Encoding.DER)
        created = int(cert.not_valid_before_utc.timestamp() * 1000)
        out += struct.pack(">I", 2) + _utf(low) + struct.pack(">q", created)
        out += _utf("X.509") + struct.pack(">I", len(der)) + der
    out += hashlib.sha1(pw_chars + _WHITENER + bytes(out)).digest()
    return bytes(out)

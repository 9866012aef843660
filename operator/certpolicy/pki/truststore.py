"""PKCS#12 and JKS truststores for Java consumers, written next to a PEM bundle.

Encoding only: the *set* of certificates comes from :mod:`certpolicy.pki.bundle` (the merged PEM
bundle of a target), so the PEM and the PKCS#12 form of a target always hold the same CAs.

Each certificate becomes one ``trustedCertEntry`` (cryptography's ``serialize_java_truststore``
adds the Java trusted-key-usage attribute; without it Java's ``KeyStore`` ignores certificate-only
bags). Aliases:

* the *primary* certificate (the policy's active CA, chosen by the caller) gets ``alias``;
* every other certificate gets ``<alias>-<first 12 hex digits of its SHA-256 fingerprint>``.

Fingerprint suffixes rather than ``-2``, ``-3``: an index would move when a CA is added or removed
during a rotation, so the same CA would change alias from one write to the next; a fingerprint
suffix names a CA for its whole life. Aliases are lower-cased because Java's PKCS12 keystore
lower-cases them when it reads the file; writing them that way keeps ``keytool -list`` and
:func:`truststore_matches` in agreement.

Passwords: a non-empty password encrypts the certificate bags (PBES2 / AES-256-CBC) and MACs the
file (HMAC-SHA256), which Java 8u301+/11.0.12+/17 read. An empty or absent password writes
unencrypted bags with a MAC keyed by the empty password (cryptography's ``NoEncryption``). Java
reads that with an explicitly empty password (``keytool -storepass ""``,
``-Djavax.net.ssl.trustStorePassword=``); with no password at all Java still loads the
certificates but warns that integrity was not verified. Any other password fails the MAC check.

JKS (:func:`build_jks_truststore`, for consumers older than Java 9 or configured with
``-Djavax.net.ssl.trustStoreType=JKS``) takes the same entries and aliases; it holds no salt,
so the same content always gives the same bytes. Its integrity check is keyed by the password
(absent: the empty password, which Java reads with or without ``-storepass ''``).

PKCS#12 output is salted, so two encodings of the same content differ byte for byte. The operator
must therefore never compare truststore bytes: :func:`truststore_matches` decodes the stored file
and compares (alias, fingerprint) pairs, so an unchanged target is not rewritten.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from certpolicy.pki.bundle import encode_bundle, read_bundle
from certpolicy.pki.fingerprint import certificate_fingerprint, short
from certpolicy.pki.javakeystore import encode_jks_truststore, load_java_keystore

SUFFIX_LENGTH = 12

Password = str | bytes | None


@dataclass(frozen=True)
class TruststoreEntry:
    alias: str
    fingerprint: str


def _password(password: Password) -> bytes:
    if password is None:
        return b""
    return password.encode("utf-8") if isinstance(password, str) else bytes(password)


def entries(
    certificates: Iterable[x509.Certificate], alias: str, primary_fingerprint: str | None = None
) -> tuple[tuple[TruststoreEntry, x509.Certificate], ...]:
    """The entries a truststore of ``certificates`` holds, in canonical order.

    The primary certificate (``primary_fingerprint``, else the first in the canonical bundle order)
    comes first under the bare alias. Raises ValueError for an empty alias or a primary that is
    not among the certificates (a caller bug: the active CA must be in its own truststore).
    """
    base = alias.strip().lower()
    if not base:
        raise ValueError("a truststore alias must not be empty")
    ordered = read_bundle(encode_bundle(certificates)).certificates
    if not ordered:
        return ()
    fps = [certificate_fingerprint(c) for c in ordered]
    primary = primary_fingerprint or fps[0]
    if primary not in fps:
        raise ValueError(f"primary certificate {short(primary)} is not among the truststore's certificates")
    out = [(TruststoreEntry(base, primary), ordered[fps.index(primary)])]
    for fp, cert in zip(fps, ordered):
        if fp != primary:
            out.append((TruststoreEntry(f"{base}-{short(fp, SUFFIX_LENGTH)}", fp), cert))
    return tuple(out)


def _encryption(password: bytes) -> serialization.KeySerializationEncryption:
    if not password:
        return serialization.NoEncryption()
    return serialization.BestAvailableEncryption(password)


def build_truststore(
    certificates: Iterable[x509.Certificate],
    alias: str,
    password: Password = None,
    primary_fingerprint: str | None = None,
) -> bytes:
    """A PKCS#12 truststore (trustedCertEntry per certificate) that ``keytool -list`` reads."""
    bags = [
        pkcs12.PKCS12Certificate(cert, entry.alias.encode("utf-8"))
        for entry, cert in entries(certificates, alias, primary_fingerprint)
    ]
    return pkcs12.serialize_java_truststore(bags, _encryption(_password(password)))


def read_truststore(data: bytes, password: Password = None) -> frozenset[TruststoreEntry] | None:
    """The (alias, fingerprint) entries of a stored truststore, or None when it cannot be opened
    with ``password`` as a truststore (damaged, another format, another password, or a keystore
    holding a private key). Never raises."""
    pw = _password(password)
    for attempt in ([pw] if pw else [None, b""]):
        try:
            p12 = pkcs12.load_pkcs12(data, attempt)
        except Exception:
            continue
        if p12.key is not None:
            return None  # a keystore with a private key is not a truststore we wrote
        bags = list(p12.additional_certs) + ([p12.cert] if p12.cert is not None else [])
        return frozenset(
            TruststoreEntry(
                (bag.friendly_name or b"").decode("utf-8", "replace").lower(),
                certificate_fingerprint(bag.certificate),
            )
            for bag in bags
        )
    return None


def truststore_matches(
    data: bytes | None,
    password: Password,
    certificates: Iterable[x509.Certificate],
    alias: str,
    primary_fingerprint: str | None = None,
    *,
    jks: bool = False,
) -> bool:
    """Whether a stored truststore (PKCS#12, or JKS with ``jks``) already holds exactly these
    certificates under these aliases, and opens with this password — i.e. whether the operator
    can skip rewriting it."""
    if not data:
        return False
    stored = read_jks_truststore(data, password) if jks else read_truststore(data, password)
    if stored is None:
        return False
    wanted = frozenset(e for e, _ in entries(certificates, alias, primary_fingerprint))
    return stored == wanted


def build_jks_truststore(
    certificates: Iterable[x509.Certificate],
    alias: str,
    password: Password = None,
    primary_fingerprint: str | None = None,
) -> bytes:
    """A JKS truststore of the same entries as :func:`build_truststore` (deterministic bytes)."""
    return encode_jks_truststore(((e.alias, c) for e, c in entries(certificates, alias, primary_fingerprint)), _password(password))


def read_jks_truststore(data: bytes, password: Password = None) -> frozenset[TruststoreEntry] | None:
    """The (alias, fingerprint) entries of a stored JKS truststore, or None when it does not open
    with ``password`` (or holds a private key). Never raises."""
    ks = load_java_keystore(data, _password(password))
    if ks.format != "JKS" or ks.problem or not ks.verified or any(e.kind != "trustedCert" for e in ks.entries):
        return None
    return frozenset(TruststoreEntry(e.alias.lower(), certificate_fingerprint(e.certificates[0])) for e in ks.entries)


"""From a Secret's ``data`` to the certificates in it: :class:`SecretMaterial`.

The operator's inventory keeps one :class:`SecretMaterial` per TLS Secret — ten thousand and more —
so the value is small and holds no secret: the certificates (public, and shared with every other
Secret holding the same one through the parse cache), the *outcome* of the private-key check, the
load problems and a content digest. Never the Secret's bytes, never the key.

Input shapes handled:

* ``kubernetes.io/tls``: ``tls.crt`` (leaf first, then intermediates), ``tls.key``, optional ``ca.crt``.
* ``Opaque`` (and custom types): certificates under common names — ``tls.crt``, ``fullchain.pem``,
  ``cert.pem``, ``*.crt``/``*.pem``/``*.cer``/``*.der`` (PEM or DER), a separate ``chain.pem``; CA
  files such as ``ca.crt``/``ca.pem``; keys under ``tls.key``/``*.key``/``privkey.pem`` or inside
  the certificate PEM; keystores — PKCS#12 ``*.p12``/``*.pfx``, JKS/JCEKS ``*.jks``/``*.jceks``/
  ``*.ks``, or a key named ``keystore`` — recognised by content (:mod:`certpolicy.pki.certstores`) and
  opened with the password passed in (a Secret reference resolved by the operator), else a
  sibling data key (``keystore.jks.password``, ``keystore-password``, ``password``, ...), else
  none. Trust stores (``truststore.jks``, ``cacerts``, ...) are not part of a Secret's own
  material: they are checked as stores of their own (:mod:`certpolicy.policy.truststores`).
* Other built-in types (docker config, service-account token, basic-auth, ...) are a
  ``WrongSecretType`` problem, not parsed.

``data`` values that are ``str`` are base64, as the API returns them; ``bytes`` values are taken as
already decoded. Nothing here raises on bad content.
"""

from __future__ import annotations

import binascii
import dataclasses
import enum
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from certpolicy.pki.cache import FifoCache
from certpolicy.pki.certstores import is_password_key, is_truststore_key, read_certstore, sibling_password
from certpolicy.pki.fingerprint import certificate_fingerprint
from certpolicy.pki.inspect import summarize, throwaway_copy
from certpolicy.pki.keys import describe_key
from certpolicy.pki.load import (
    MAX_INPUT_BYTES,
    CertificateLoad,
    KeyLoad,
    LoadProblem,
    load_certificates,
    load_pkcs12,
    load_private_key,
)

TLS_TYPE = "kubernetes.io/tls"
OPAQUE_TYPE = "Opaque"
#: Built-in Secret types that never hold a TLS certificate.
NON_TLS_TYPES = frozenset(
    {
        "kubernetes.io/service-account-token",
        "kubernetes.io/dockercfg",
        "kubernetes.io/dockerconfigjson",
        "kubernetes.io/basic-auth",
        "kubernetes.io/ssh-auth",
        "bootstrap.kubernetes.io/token",
    }
)
_MAX_B64 = (MAX_INPUT_BYTES // 3 + 1) * 4


class KeyStatus(str, enum.Enum):
    """What the private-key check found. The key itself is never kept."""

    MATCH = "match"
    MISMATCH = "mismatch"
    ENCRYPTED = "encrypted"
    MISSING = "missing"
    UNSUPPORTED = "unsupported"
    MALFORMED = "malformed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class SecretMaterial:
    """The certificates of one Secret and what loading them found. Small, immutable, no secrets."""

    secret_type: str
    leaf: x509.Certificate | None
    intermediates: tuple[x509.Certificate, ...]
    ca_certificates: tuple[x509.Certificate, ...]
    key_status: KeyStatus
    key_detail: str  # e.g. "tls.key holds an EC P-256 key; ..." — a description, never the key
    problems: tuple[LoadProblem, ...]
    content_digest: str  # "sha256:" over the type and data as given: the cache key for re-checks
    certificate_source: str | None = None  # the data key (or file) the leaf came from
    key_source: str | None = None
    ca_source: str | None = None
    fingerprints: tuple[str, ...] = ()  # of the leaf, then of each intermediate

    @property
    def certificates(self) -> tuple[x509.Certificate, ...]:
        """Leaf and intermediates, as served by a TLS endpoint using this Secret."""
        return ((self.leaf,) if self.leaf is not None else ()) + self.intermediates


# --- entry points --------------------------------------------------------------------------------

_MATERIALS: FifoCache[str, SecretMaterial] = FifoCache(
    32768, name="materials", keep=lambda digest, _material, live: digest in live.digests)


def material_from_secret(secret_type: str | None, data: Mapping[str, Any] | None, *, password: bytes | None = None) -> SecretMaterial:
    """The material of a Secret given its ``type`` and ``data``. Never raises.

    Cached by content digest: a re-delivered, unchanged Secret costs one hash over its data.
    (Not cached when a ``password`` is passed, so no password is ever part of a cache key; the
    material's digest then also covers what the password opened.)
    """
    secret_type = secret_type or OPAQUE_TYPE
    if not isinstance(secret_type, str):
        secret_type = str(secret_type)
    items = _items(data)
    digest = _digest(secret_type, items)
    if password is None:
        cached = _MATERIALS.get(digest)
        if cached is not None:
            return cached
    try:
        material = _build(secret_type, items, digest, password)
    except Exception as e:  # pragma: no cover - last line of defence
        material = _empty(secret_type, digest, [LoadProblem("MalformedSecretData", f"Secret could not be read ({type(e).__name__})")])
    if password is None:
        _MATERIALS.put(digest, material)
        return material
    return _outcome_digested(material)


def _outcome_digested(material: SecretMaterial) -> SecretMaterial:
    """The material opened with a password, its ``content_digest`` derived from the data's digest
    and what the password opened (fingerprints, key status, problems): evaluations are cached by
    that digest, so the same bytes opened with another password must not share one, and no
    password may be part of it."""
    h = hashlib.sha256(material.content_digest.encode())
    for part in (*material.fingerprints, str(material.key_status), *(f"{p.reason}:{p}" for p in material.problems)):
        h.update(part.encode("utf-8", "replace") + b"\x00")
    return dataclasses.replace(material, content_digest="sha256:" + h.hexdigest())


def material_from_manifest(secret: Any, *, password: bytes | None = None) -> SecretMaterial:
    """Like :func:`material_from_secret` for a whole Secret: a dict as in YAML/JSON (``type``, ``data``
    and, if present, ``stringData``) or a kubernetes client ``V1Secret``."""
    if isinstance(secret, Mapping):
        stype, data = secret.get("type"), dict(secret.get("data") or {})
        for k, v in (secret.get("stringData") or {}).items():
            data[k] = v.encode() if isinstance(v, str) else v
    else:
        stype, data = getattr(secret, "type", None), dict(getattr(secret, "data", None) or {})
    return material_from_secret(stype, data, password=password)


def material_from_bytes(
    cert_data: bytes,
    key_data: bytes | None = None,
    ca_data: bytes | None = None,
    *,
    password: bytes | None = None,
    cert_source: str = "tls.crt",
    key_source: str = "tls.key",
    ca_source: str = "ca.crt",
) -> SecretMaterial:
    """Material from raw files (the CLI): a certificate file (leaf + chain, PEM or DER), optional
    key file and CA file. A key inside the certificate PEM is used when no key file is given."""
    items: list[tuple[str, bytes | None]] = [(cert_source, cert_data)]
    if key_data is not None:
        items.append((key_source, key_data))
    if ca_data is not None:
        items.append((ca_source, ca_data))
    digest = _digest("file", [(k, v) for k, v in items])
    problems: list[LoadProblem] = []
    certs = load_certificates(cert_data)
    _note(problems, certs, cert_source)
    key_bytes, ksrc = key_data, key_source
    if key_bytes is None and isinstance(cert_data, bytes) and b"PRIVATE KEY-----" in cert_data:
        key_bytes, ksrc = cert_data, cert_source
    ca: tuple[x509.Certificate, ...] = ()
    if ca_data is not None:
        ca_load = load_certificates(ca_data)
        _note(problems, ca_load, ca_source)
        ca = ca_load.certificates
    built = _MaterialBuilder("file", digest, problems, certs.certificates, cert_source, certs.fingerprints, ca,
                             ca_source if ca_data else None)
    built.use_key(key_bytes, ksrc, password)
    return built.build()


def material_from_pkcs12(data: bytes, password: bytes | None = None, *, source: str = "keystore.p12") -> SecretMaterial:
    """Material from a PKCS#12 keystore: its certificate is the leaf, the others the chain."""
    digest = _digest("pkcs12", [(source, data)])
    p12 = load_pkcs12(data, password)
    problems: list[LoadProblem] = []
    if p12.problem:
        problems.append(LoadProblem(p12.problem if p12.problem != "EncryptedKey" else "KeystoreUnreadable", p12.detail, source))
    certs = ((p12.certificate,) if p12.certificate is not None else ()) + p12.additional_certificates
    if not certs:
        problems.append(LoadProblem("NoCertificate", "keystore holds no readable certificate", source))
        return _empty("pkcs12", digest, problems, KeyStatus.MISSING)
    built = _MaterialBuilder("pkcs12", digest, problems, certs, source)
    built.use_keystore_key(p12.key, source)
    return built.build()


# --- assembly ------------------------------------------------------------------------------------


def _items(data: Mapping[str, Any] | None) -> list[tuple[str, Any]]:
    if not data:
        return []
    try:
        return sorted(((str(k), v) for k, v in data.items()), key=lambda kv: kv[0])
    except Exception:
        return []


def _digest(secret_type: str, items: Sequence[tuple[str, Any]]) -> str:
    h = hashlib.sha256()
    h.update(secret_type.encode("utf-8", "replace") + b"\x00")
    for k, v in items:
        kb = k.encode("utf-8", "replace")
        if isinstance(v, str):
            vb = b"s" + v.encode("utf-8", "replace")
        elif isinstance(v, (bytes, bytearray, memoryview)):
            vb = b"b" + bytes(v)
        else:
            vb = b"n"
        h.update(len(kb).to_bytes(4, "big") + kb + len(vb).to_bytes(8, "big"))
        h.update(vb)
    return "sha256:" + h.hexdigest()


def _decode(name: str, value: object, problems: list[LoadProblem]) -> bytes | None:
    if value is None:
        return b""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if not isinstance(value, str):
        problems.append(LoadProblem("MalformedSecretData", f"value is a {type(value).__name__}, not base64 text", name))
        return None
    if len(value) > _MAX_B64:
        problems.append(LoadProblem("InputTooLarge", f"value is {len(value)} characters; only the first {MAX_INPUT_BYTES} decoded bytes were read", name))
        value = value[:_MAX_B64]
    try:
        return binascii.a2b_base64(value, strict_mode=True)
    except (binascii.Error, ValueError):
        problems.append(LoadProblem("MalformedSecretData", "value is not valid base64 (the API always returns base64; was the Secret written with a broken tool?)", name))
        return None


def _key_in_certificate_field(problems: list[LoadProblem], raw: bytes, source: str) -> None:
    """A private key in a field meant for certificates is readable by everyone who may read
    certificates (a ConfigMap copy, a ``ca.crt`` mounted everywhere, a log of "the cert"). Only the
    marker is looked at: nothing about the key enters the message."""
    if b"PRIVATE KEY-----" in raw:
        problems.append(LoadProblem("KeyMaterialInCertificate", "a private key PEM block sits in this certificate "
                                    "field, where anyone allowed to read certificates can read the key", source))


def _note(problems: list[LoadProblem], load: CertificateLoad, source: str) -> None:
    if load.problems:
        problems.extend(p.with_source(source) for p in load.problems)


def _empty(secret_type: str, digest: str, problems: Sequence[LoadProblem], status: KeyStatus = KeyStatus.MISSING) -> SecretMaterial:
    return SecretMaterial(secret_type, None, (), (), status, "", tuple(problems), digest)


def _build(secret_type: str, items: list[tuple[str, Any]], digest: str, password: bytes | None) -> SecretMaterial:
    problems: list[LoadProblem] = []
    if secret_type in NON_TLS_TYPES:
        problems.append(LoadProblem("WrongSecretType", f"a '{secret_type}' Secret holds no TLS certificate; it was not checked"))
        return _empty(secret_type, digest, problems)
    if secret_type == TLS_TYPE:
        return _build_tls(secret_type, dict(items), digest, password, problems)
    return _build_opaque(secret_type, items, digest, password, problems)


def _build_tls(secret_type: str, data: dict[str, Any], digest: str, password: bytes | None, problems: list[LoadProblem]) -> SecretMaterial:
    if "tls.crt" not in data:
        problems.append(LoadProblem("NoCertificate", "a kubernetes.io/tls Secret must have tls.crt; it has none", "tls.crt"))
        certs: tuple[x509.Certificate, ...] = ()
        fps: tuple[str, ...] = ()
    else:
        raw = _decode("tls.crt", data["tls.crt"], problems)
        certs, fps = (), ()
        if raw is not None:
            _key_in_certificate_field(problems, raw, "tls.crt")
            load = load_certificates(raw)
            _note(problems, load, "tls.crt")
            certs, fps = load.certificates, load.fingerprints
    key_raw = _decode("tls.key", data["tls.key"], problems) if "tls.key" in data else None
    ca: tuple[x509.Certificate, ...] = ()
    ca_source = None
    if data.get("ca.crt"):
        ca_raw = _decode("ca.crt", data["ca.crt"], problems)
        if ca_raw is not None and ca_raw.strip():
            _key_in_certificate_field(problems, ca_raw, "ca.crt")
            ca_load = load_certificates(ca_raw)
            _note(problems, ca_load, "ca.crt")
            ca, ca_source = ca_load.certificates, "ca.crt"
    built = _MaterialBuilder(secret_type, digest, problems, certs, "tls.crt", fps, ca, ca_source)
    built.use_key(key_raw, "tls.key", password)
    return built.build()


# Opaque key-name heuristics. Order matters: the first certificate source that yields a
# certificate is the leaf's.
_CERT_PRIORITY = {
    "tls.crt": 0,
    "fullchain.pem": 1,
    "fullchain.crt": 1,
    "tls.pem": 2,
    "cert.pem": 2,
    "cert.crt": 2,
    "certificate.pem": 2,
    "certificate.crt": 2,
    "server.crt": 3,
    "server.pem": 3,
    "client.crt": 3,
    "client.pem": 3,
}
_CERT_EXTS = ("crt", "pem", "cer", "cert", "der")
_CHAIN_NAMES = frozenset({"chain.pem", "chain.crt", "intermediate.pem", "intermediate.crt", "intermediates.pem"})
_CA_STEMS = frozenset(
    {"ca", "cacert", "ca-cert", "ca_cert", "ca-bundle", "ca_bundle", "cabundle", "ca-certificates", "root", "root-ca", "rootca", "root_ca", "trust", "truststore", "trust-bundle", "trusted-ca"}
)
_KEY_STEMS = frozenset({"privkey", "key", "private", "private-key", "privatekey", "private_key", "tls-key", "server-key", "client-key"})
_KEYSTORE_EXTS = ("p12", "pfx", "jks", "jceks", "ks", "keystore", "bcfks")


def classify_data_key(name: str, value: bytes | None = None) -> str | None:
    """What a data key (or file name) holds, by name and, for ambiguous ``.pem``, by content:
    ``cert``, ``chain``, ``ca``, ``key``, ``keystore``, ``truststore``, ``password``, or None (not ours)."""
    lower = name.lower()
    stem, _, ext = lower.rpartition(".")
    if not stem:
        stem, ext = ext, ""
    if ext in _KEYSTORE_EXTS or lower in ("keystore", "truststore", "cacerts"):
        return "truststore" if is_truststore_key(lower) else "keystore"
    if is_password_key(lower):
        return "password"
    if ext == "key" or stem in _KEY_STEMS:
        return "key"
    if ext not in _CERT_EXTS:
        return None
    if stem in _CA_STEMS or stem.startswith(("ca-", "ca_", "ca.")) or stem.endswith(("-ca", "_ca", ".ca")):
        return "ca"
    if lower in _CHAIN_NAMES:
        return "chain"
    if value is not None and b"PRIVATE KEY-----" in value and b"CERTIFICATE-----" not in value:
        return "key"
    return "cert"


def _build_opaque(secret_type: str, items: list[tuple[str, Any]], digest: str, password: bytes | None, problems: list[LoadProblem]) -> SecretMaterial:
    decoded: dict[str, bytes] = {}
    for name, value in items:
        raw = _decode(name, value, problems)
        if raw is not None:
            decoded[name] = raw
    roles: dict[str, list[str]] = {"cert": [], "ca": [], "chain": [], "key": [], "keystore": [], "truststore": [], "password": []}
    for name, raw in decoded.items():
        role = classify_data_key(name, raw)
        if role:
            roles[role].append(name)
    roles["cert"].sort(key=lambda n: (_CERT_PRIORITY.get(n.lower(), 9), n))
    roles["key"].sort(key=lambda n: (n.lower() != "tls.key", n))
    roles["keystore"].sort(key=lambda n: ("keystore" not in n.lower(), n))

    certs: tuple[x509.Certificate, ...] = ()
    cert_source: str | None = None
    first_failure: CertificateLoad | None = None
    for name in roles["cert"]:
        load = load_certificates(decoded[name])
        if load.certificates:
            certs, cert_source = load.certificates, name
            _note(problems, load, name)
            break
        if first_failure is None:
            first_failure, failed_name = load, name
    if not certs and first_failure is not None:
        _note(problems, first_failure, failed_name)

    for name in roles["ca"] + roles["chain"] + [n for n in roles["cert"] if n.lower() == "tls.crt"]:
        _key_in_certificate_field(problems, decoded[name], name)

    if certs and cert_source and cert_source.lower() not in ("fullchain.pem", "fullchain.crt"):
        for name in roles["chain"]:
            load = load_certificates(decoded[name])
            _note(problems, load, name)
            certs += load.certificates

    ca: tuple[x509.Certificate, ...] = ()
    ca_source = None
    for name in roles["ca"]:
        load = load_certificates(decoded[name])
        _note(problems, load, name)
        if load.certificates:
            ca, ca_source = load.certificates, name
            break

    key_raw, key_source = None, None
    if roles["key"]:
        key_source = roles["key"][0]
        key_raw = decoded[key_source]
    elif cert_source and b"PRIVATE KEY-----" in decoded[cert_source]:
        key_raw, key_source = decoded[cert_source], cert_source

    if not certs and roles["keystore"]:
        return _from_opaque_keystore(secret_type, roles, decoded, password, ca, ca_source, problems, digest)
    if not certs and not any(p.reason in ("NoCertificate", "MalformedCertificate") for p in problems):
        looked = ", ".join(sorted(decoded)) or "no data keys at all"
        problems.append(LoadProblem("NoCertificate", f"no certificate under any data key (has: {looked})"))
    built = _MaterialBuilder(secret_type, digest, problems, certs, cert_source or "", (), ca, ca_source)
    built.use_key(key_raw, key_source or "", password)
    return built.build()


def _from_opaque_keystore(
    secret_type: str,
    roles: dict[str, list[str]],
    decoded: dict[str, bytes],
    password: bytes | None,
    ca: tuple[x509.Certificate, ...],
    ca_source: str | None,
    problems: list[LoadProblem],
    digest: str,
) -> SecretMaterial:
    source = roles["keystore"][0]
    if password is None:
        _, password = sibling_password(source, decoded)
    store = read_certstore(decoded[source], password, source=source)
    if not store.certificates:
        problems.extend(store.problems)
        why = next((p.message for p in store.problems), "")
        problems.append(LoadProblem("NoCertificate", "the only certificates are in a keystore that could not be opened"
                                    + (f" ({why})" if why else ""), source))
        return _empty(secret_type, digest, problems)
    problems.extend(p for p in store.problems if p.reason != "NoCertificate")
    certs = store.key_chain or store.certificates  # a Java keystore serves its key entry's chain
    built = _MaterialBuilder(secret_type, digest, problems, certs, source, (), ca, ca_source)
    if store.key is not None:
        built.use_keystore_key(store.key, source)
    elif store.key_problem:
        built.key_source, built.status, built.detail = source, KeyStatus.ENCRYPTED, store.key_problem
    return built.build()


def _key_check(key_load: KeyLoad | None, certs: Sequence[x509.Certificate], key_source: str, fps: Sequence[str] = ()) -> tuple[KeyStatus, str, x509.Certificate | None]:
    """Which certificate the key belongs to. Only public halves are compared; the key is dropped
    by the caller right after."""
    if key_load is None or key_load.key is None:
        return KeyStatus.MISSING, "", None
    public = key_load.key.public_key()
    for i, c in enumerate(certs):
        try:
            copy = throwaway_copy(c)  # not c.public_key(): cryptography would keep the key on the held leaf
            cert_key = copy.public_key()
            if cert_key == public:
                if len(fps) == len(certs):  # the evaluator will want it; the key and the copy are at hand
                    summarize(c, fps[i], public_key=cert_key, copy=copy)
                return KeyStatus.MATCH, "", c
        except Exception:
            continue
    leaf = _default_leaf(certs)
    s = summarize(leaf)
    return (
        KeyStatus.MISMATCH,
        f"{key_source} holds an {describe_key(public)} key that does not belong to '{s.display_name}' (whose key is {s.key_description})",
        None,
    )


def _default_leaf(certs: Sequence[x509.Certificate]) -> x509.Certificate:
    """The first non-CA certificate (where a leaf belongs), else the first one."""
    for c in certs:
        if not summarize(c).is_ca:
            return c
    return certs[0]


_KEY_PROBLEM_STATUS = {"EncryptedKey": KeyStatus.ENCRYPTED, "UnsupportedKey": KeyStatus.UNSUPPORTED}


@dataclass(slots=True)
class _MaterialBuilder:
    """What one Secret's (or file's) data yielded so far, gathered by the readers above and turned
    into a :class:`SecretMaterial` by :meth:`build`. Holds a private key only between
    :meth:`use_key` and :meth:`build`; the material never does."""

    secret_type: str
    digest: str
    problems: list[LoadProblem]
    certs: tuple[x509.Certificate, ...] = ()
    cert_source: str = ""
    fps: tuple[str, ...] = ()  # of ``certs`` when the loader knew them
    ca: tuple[x509.Certificate, ...] = ()
    ca_source: str | None = None
    key_source: str | None = None  # where a key was found (even an unusable one)
    status: KeyStatus = KeyStatus.MISSING
    detail: str = ""
    _key: KeyLoad | None = None

    def use_key(self, raw: bytes | None, source: str, password: bytes | None) -> None:
        """The private key (PEM or DER) found at ``source``; nothing when ``raw`` is None."""
        if raw is None:
            return
        self.key_source = source
        if not raw.strip():
            self.detail = f"{source} is empty"
            return
        load = load_private_key(raw, password)
        if load.ok:
            self._key = load
        else:
            self.status = _KEY_PROBLEM_STATUS.get(load.problem or "", KeyStatus.MALFORMED)
            self.detail = f"{source}: {load.detail}"

    def use_keystore_key(self, key: Any, source: str) -> None:
        """The private key a keystore held (None: a truststore)."""
        if key is not None:
            self.key_source, self._key = source, KeyLoad(key=key)

    def build(self) -> SecretMaterial:
        certs, problems = self.certs, self.problems
        if not certs:
            return SecretMaterial(self.secret_type, None, (), self.ca, self.status, self.detail, tuple(problems),
                                  self.digest, None, self.key_source, self.ca_source)
        status, detail, leaf = self.status, self.detail, None
        if self._key is not None:
            status, detail, leaf = _key_check(self._key, certs, self.key_source or "", self.fps)
            self._key = None
        fps = self.fps if len(self.fps) == len(certs) else tuple(certificate_fingerprint(c) for c in certs)
        if leaf is None:
            leaf = _default_leaf(certs)
        if certs[0] is not leaf:
            problems.append(
                LoadProblem(
                    "LeafNotFirst",
                    f"the leaf '{summarize(leaf).display_name}' is not the first certificate; most TLS servers send the first one as their own",
                    self.cert_source,
                )
            )
        leaf_fp = fps[next(i for i, c in enumerate(certs) if c is leaf)]
        seen: set[str] = set()
        leaf_seen = False
        inters: list[x509.Certificate] = []
        inter_fps: list[str] = []
        for c, fp in zip(certs, fps):
            if fp == leaf_fp and not leaf_seen:
                leaf_seen = True
                continue
            if fp in seen or fp == leaf_fp:
                problems.append(LoadProblem("DuplicateCertificate", f"'{summarize(c).display_name}' appears more than once", self.cert_source))
                continue
            seen.add(fp)
            inters.append(c)
            inter_fps.append(fp)
        return SecretMaterial(
            self.secret_type, leaf, tuple(inters), self.ca, status, detail, tuple(problems), self.digest,
            self.cert_source or None, self.key_source, self.ca_source, (leaf_fp, *inter_fps),
        )

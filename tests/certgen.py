"""Test-support certificate builder: CAs, intermediates and leaves with the quirks real PKIs have.

Every test suite (unit, integration, e2e) imports this as ``import certgen`` (pytest puts ``tests/``
on ``sys.path``). It is deliberately flexible — key type, EKU, SANs, validity window, signature
hash, X.509 v1, missing or non-critical extensions — because the engine must be tested against the
certificates people actually have, not only the ones a well-behaved CA issues.

Keys are cached per ``(kind, slot)`` for the whole process: RSA generation costs tens of
milliseconds, and the unit tests must stay fast. Ask for another ``slot`` when a test needs a
*different* key of the same kind (e.g. to build a mismatched key pair).

cryptography refuses to *sign* with SHA-1 or MD5 and always writes v3 certificates, yet the engine
must recognise both. For those two quirks only, :func:`build` re-signs the TBSCertificate itself
(``_resign``), using a tiny DER helper that is test code, never product code.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import ipaddress
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

UTC = dt.UTC

PrivateKey = (
    rsa.RSAPrivateKey
    | ec.EllipticCurvePrivateKey
    | ed25519.Ed25519PrivateKey
    | ed448.Ed448PrivateKey
    | dsa.DSAPrivateKey
)

EKU = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
    "codeSigning": ExtendedKeyUsageOID.CODE_SIGNING,
    "emailProtection": ExtendedKeyUsageOID.EMAIL_PROTECTION,
    "timeStamping": ExtendedKeyUsageOID.TIME_STAMPING,
    "ocspSigning": ExtendedKeyUsageOID.OCSP_SIGNING,
    "any": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
    "anyExtendedKeyUsage": ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE,
}

_CURVES: dict[str, ec.EllipticCurve] = {
    "p256": ec.SECP256R1(),
    "p384": ec.SECP384R1(),
    "p521": ec.SECP521R1(),
    "secp256k1": ec.SECP256K1(),
    "brainpoolp256r1": ec.BrainpoolP256R1(),
}

KeyKind = str  # "p256" | "p384" | "p521" | "secp256k1" | "rsa1024" | "rsa2048" | "rsa4096" | "ed25519" | ...


def utcnow() -> dt.datetime:
    """Now, aware UTC, truncated to the second (certificates cannot carry more precision)."""
    return dt.datetime.now(UTC).replace(microsecond=0)


#: Every key this module generated in this process (the hygiene audit looks for them in logs).
GENERATED_KEYS: list[PrivateKey] = []


def new_key(kind: KeyKind = "p256") -> PrivateKey:
    """A freshly generated key (uncached). Prefer :func:`key` in tests."""
    k = _generate(kind)
    GENERATED_KEYS.append(k)
    return k


def _generate(kind: KeyKind) -> PrivateKey:
    if kind in _CURVES:
        return ec.generate_private_key(_CURVES[kind])
    if kind.startswith("rsa"):
        return rsa.generate_private_key(public_exponent=65537, key_size=int(kind[3:]))
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "ed448":
        return ed448.Ed448PrivateKey.generate()
    if kind.startswith("dsa"):
        return dsa.generate_private_key(key_size=int(kind[3:]))
    raise ValueError(f"unknown key kind {kind!r}")


@functools.cache
def key(kind: KeyKind = "p256", slot: int = 0) -> PrivateKey:
    """A key generated once per process for ``(kind, slot)``."""
    return new_key(kind)


def name(cn: str, org: str | None = "certgen") -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else []
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    return x509.Name(attrs)


@dataclass(frozen=True)
class Issued:
    """A certificate with the key it was issued for."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def der(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.DER)

    @property
    def subject(self) -> str:
        return self.cert.subject.rfc4514_string()

    def key_pem(self, fmt: Literal["pkcs8", "pkcs1", "sec1", "openssh"] = "pkcs8", password: bytes | None = None) -> bytes:
        return key_pem(self.key, fmt, password)

    def key_der(self, fmt: Literal["pkcs8", "pkcs1", "sec1"] = "pkcs8") -> bytes:
        return self.key.private_bytes(serialization.Encoding.DER, _FORMATS[fmt], serialization.NoEncryption())


_FORMATS = {
    "pkcs8": serialization.PrivateFormat.PKCS8,
    "pkcs1": serialization.PrivateFormat.TraditionalOpenSSL,  # RSA PRIVATE KEY for RSA keys
    "sec1": serialization.PrivateFormat.TraditionalOpenSSL,  # EC PRIVATE KEY for EC keys
    "openssh": serialization.PrivateFormat.OpenSSH,
}


def key_pem(k: PrivateKey, fmt: str = "pkcs8", password: bytes | None = None) -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return k.private_bytes(serialization.Encoding.PEM, _FORMATS[fmt], enc)


def _hash(name_: str | None) -> hashes.HashAlgorithm | None:
    if name_ is None:
        return None
    return {
        "sha224": hashes.SHA224(),
        "sha256": hashes.SHA256(),
        "sha384": hashes.SHA384(),
        "sha512": hashes.SHA512(),
        "sha1": hashes.SHA1(),
        "md5": hashes.MD5(),
    }[name_]


def _default_hash(k: PrivateKey) -> str | None:
    if isinstance(k, (ed25519.Ed25519PrivateKey, ed448.Ed448PrivateKey)):
        return None
    if isinstance(k, ec.EllipticCurvePrivateKey):
        return {256: "sha256", 384: "sha384", 521: "sha512"}.get(k.curve.key_size, "sha256")
    return "sha256"


_serials = iter(range(0x1000, 1 << 62))


def build(
    cn: str,
    *,
    issuer: Issued | None = None,
    key: PrivateKey | None = None,
    key_kind: KeyKind = "p256",
    key_slot: int | None = None,
    ca: bool = False,
    path_length: int | None = None,
    now: dt.datetime | None = None,
    not_before: dt.datetime | None = None,
    not_after: dt.datetime | None = None,
    valid_for: dt.timedelta = dt.timedelta(days=365),
    backdate: dt.timedelta = dt.timedelta(hours=1),
    hash: str | None = "default",
    dns_names: Sequence[str] = (),
    ip_addresses: Sequence[str] = (),
    uris: Sequence[str] = (),
    emails: Sequence[str] = (),
    san: bool | None = None,
    san_critical: bool = False,
    eku: Sequence[str | x509.ObjectIdentifier] | None = None,
    eku_critical: bool = False,
    key_usage: Literal["default"] | None | Mapping[str, bool] = "default",
    key_usage_critical: bool = True,
    basic_constraints: Literal["critical", "noncritical"] | None = "critical",
    ski: bool = True,
    aki: bool = True,
    version: Literal[1, 3] = 3,
    serial: int | None = None,
    subject: x509.Name | None = None,
    issuer_name: x509.Name | None = None,
    extra_extensions: Iterable[tuple[x509.ExtensionType, bool]] = (),
) -> Issued:
    """Build one certificate. ``issuer=None`` means self-signed.

    Defaults make a well-formed v3 certificate: SKI/AKI present, critical basicConstraints,
    keyUsage suited to the role, SHA-256 (or the curve's hash). Every default can be switched
    off to reproduce a quirk; ``hash="sha1"``/``"md5"`` and ``version=1`` are re-signed by hand.
    """
    if key is None:
        key = _pick_key(key_kind, key_slot)
    signer_key = issuer.key if issuer else key
    now = now or utcnow()
    nb = not_before or (now - backdate)
    na = not_after or (nb + valid_for)
    subj = subject if subject is not None else name(cn)
    iss = issuer_name if issuer_name is not None else (issuer.cert.subject if issuer else subj)
    b = (
        x509.CertificateBuilder()
        .subject_name(subj)
        .issuer_name(iss)
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else next(_serials))
        .not_valid_before(nb)
        .not_valid_after(na)
    )
    if basic_constraints is not None:
        b = b.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None),
            critical=basic_constraints == "critical",
        )
    if key_usage == "default":
        key_usage = (
            {"key_cert_sign": True, "crl_sign": True, "digital_signature": True}
            if ca
            else {"digital_signature": True, "key_encipherment": isinstance(key, rsa.RSAPrivateKey)}
        )
    if key_usage is not None:
        fields = dict.fromkeys(
            [
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
                "encipher_only",
                "decipher_only",
            ],
            False,
        )
        fields.update(key_usage)
        b = b.add_extension(x509.KeyUsage(**fields), critical=key_usage_critical)
    general_names: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names]
    general_names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ip_addresses]
    general_names += [x509.UniformResourceIdentifier(u) for u in uris]
    general_names += [x509.RFC822Name(e) for e in emails]
    if san is None:
        san = bool(general_names)
    if san:
        b = b.add_extension(x509.SubjectAlternativeName(general_names), critical=san_critical)
    if eku is not None:
        oids = [EKU[e] if isinstance(e, str) else e for e in eku]
        b = b.add_extension(x509.ExtendedKeyUsage(oids), critical=eku_critical)
    if ski:
        b = b.add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    if aki:
        b = b.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()), critical=False
        )
    for ext, critical in extra_extensions:
        b = b.add_extension(ext, critical=critical)
    if hash == "default":
        hash = _default_hash(signer_key)
    needs_resign = version == 1 or hash in ("sha1", "md5")
    build_hash = _default_hash(signer_key) if needs_resign else hash
    cert = b.sign(signer_key, _hash(build_hash))
    if needs_resign:
        cert = _resign(cert, signer_key, hash or "sha256", v1=version == 1)
    return Issued(cert, key)


def _pick_key(kind: KeyKind, slot: int | None) -> PrivateKey:
    """RSA keys come from the per-process cache (slot 0 unless asked); EC keys are fresh unless a slot is given."""
    if slot is not None:
        return key(kind, slot)
    if kind.startswith("rsa") or kind.startswith("dsa"):
        return key(kind, 0)
    return new_key(kind)


def _role_slot(kw: dict[str, Any], kind: KeyKind, slot: int) -> None:
    """Slow-to-generate keys get a distinct cached key per role, so root, intermediate and leaf
    never share a key (which would make every pair look like a match)."""
    if "key" not in kw and (kind.startswith("rsa") or kind.startswith("dsa")):
        kw.setdefault("key_slot", slot)


def root(cn: str = "certgen Root CA", *, key_kind: KeyKind = "p256", valid_for: dt.timedelta = dt.timedelta(days=3650), **kw: Any) -> Issued:
    """A self-signed root CA (critical basicConstraints, keyCertSign, SKI; no AKI by default)."""
    kw.setdefault("aki", False)
    _role_slot(kw, key_kind, 0)
    return build(cn, ca=True, key_kind=key_kind, valid_for=valid_for, **kw)


def intermediate(issuer: Issued, cn: str = "certgen Intermediate CA", *, key_kind: KeyKind = "p256", valid_for: dt.timedelta = dt.timedelta(days=1825), **kw: Any) -> Issued:
    _role_slot(kw, key_kind, 1)
    return build(cn, issuer=issuer, ca=True, key_kind=key_kind, valid_for=valid_for, **kw)


def leaf(
    issuer: Issued | None,
    cn: str = "svc.example.com",
    *,
    dns_names: Sequence[str] | None = None,
    eku: Sequence[str | x509.ObjectIdentifier] | None = ("serverAuth", "clientAuth"),
    key_kind: KeyKind = "p256",
    valid_for: dt.timedelta = dt.timedelta(days=90),
    **kw: Any,
) -> Issued:
    """An end-entity certificate; by default its SAN is its CN and its EKU is serverAuth+clientAuth."""
    if dns_names is None:
        dns_names = (cn,) if cn else ()
    _role_slot(kw, key_kind, 2)
    return build(cn, issuer=issuer, ca=False, dns_names=dns_names, eku=eku, key_kind=key_kind, valid_for=valid_for, **kw)


@dataclass(frozen=True)
class PKI:
    """A root → intermediate → leaf hierarchy, the shape most tests want."""

    root: Issued
    intermediate: Issued
    leaf: Issued

    @property
    def chain_pem(self) -> bytes:
        """``tls.crt`` as cert-manager writes it: leaf then intermediate."""
        return self.leaf.pem + self.intermediate.pem

    @property
    def bundle(self) -> list[x509.Certificate]:
        return [self.root.cert]

    def secret(self, **kw: Any) -> dict[str, Any]:
        return tls_secret(self.leaf, [self.intermediate], **kw)


def pki(key_kind: KeyKind = "p256", *, leaf_kw: Mapping[str, Any] | None = None, intermediate_kw: Mapping[str, Any] | None = None, root_kw: Mapping[str, Any] | None = None, now: dt.datetime | None = None) -> PKI:
    r = root(key_kind=key_kind, now=now, **(root_kw or {}))
    i = intermediate(r, key_kind=key_kind, now=now, **(intermediate_kw or {}))
    lf = leaf(i, key_kind=key_kind, now=now, **(leaf_kw or {}))
    return PKI(r, i, lf)


def pem(*certs: x509.Certificate | Issued) -> bytes:
    out = b""
    for c in certs:
        cert = c.cert if isinstance(c, Issued) else c
        out += cert.public_bytes(serialization.Encoding.PEM)
    return out


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def tls_secret(
    leaf_: Issued,
    intermediates: Sequence[Issued] = (),
    *,
    key: PrivateKey | None | Literal[False] = None,
    key_format: str = "pkcs8",
    ca: Sequence[Issued | x509.Certificate] = (),
    type: str = "kubernetes.io/tls",
    encoded: bool = True,
) -> dict[str, Any]:
    """A Secret as the API returns it: ``{"type": ..., "data": {name: base64}}``.

    ``key=None`` uses the leaf's own key, ``key=False`` leaves ``tls.key`` out, any other key is
    written instead (a mismatched pair).
    """
    data: dict[str, bytes] = {"tls.crt": pem(leaf_, *intermediates)}
    if key is not False:
        data["tls.key"] = key_pem(key if key is not None else leaf_.key, key_format)
    if ca:
        data["ca.crt"] = pem(*ca)
    return {"type": type, "data": {k: b64(v) for k, v in data.items()} if encoded else data}


def pkcs12_bytes(issued: Issued, password: bytes | None, cas: Sequence[Issued] = (), friendly_name: bytes = b"leaf") -> bytes:
    enc: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password) if password else serialization.NoEncryption()
    )
    return pkcs12.serialize_key_and_certificates(friendly_name, issued.key, issued.cert, [c.cert for c in cas] or None, enc)


# --- re-signing for SHA-1/MD5 and v1 (test support only) -------------------------------------

_SIG_ALGS = {
    ("rsa", "sha1"): bytes.fromhex("300d06092a864886f70d0101050500"),
    ("rsa", "md5"): bytes.fromhex("300d06092a864886f70d0101040500"),
    ("rsa", "sha256"): bytes.fromhex("300d06092a864886f70d01010b0500"),
    ("ec", "sha1"): bytes.fromhex("300906072a8648ce3d0401"),
    ("ec", "sha256"): bytes.fromhex("300a06082a8648ce3d040302"),
    ("ec", "sha384"): bytes.fromhex("300a06082a8648ce3d040303"),
    ("ec", "sha512"): bytes.fromhex("300a06082a8648ce3d040304"),
}


def _der_len(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes([tag]) + _der_len(len(content)) + content


def _children(der: bytes) -> list[bytes]:
    """The encoded child TLVs of one constructed DER element."""
    pos = 1
    first = der[pos]
    pos += 1
    if first & 0x80:
        pos += first & 0x7F
    out = []
    while pos < len(der):
        start = pos
        pos += 1
        ln = der[pos]
        pos += 1
        if ln & 0x80:
            nbytes = ln & 0x7F
            ln = int.from_bytes(der[pos : pos + nbytes], "big")
            pos += nbytes
        pos += ln
        out.append(der[start:pos])
    return out


def _resign(cert: x509.Certificate, signer: PrivateKey, hash_name: str, *, v1: bool) -> x509.Certificate:
    family = "rsa" if isinstance(signer, rsa.RSAPrivateKey) else "ec"
    sig_alg = _SIG_ALGS[(family, hash_name)]
    tbs_children = _children(cert.tbs_certificate_bytes)
    if v1:
        tbs_children = [c for c in tbs_children if c[0] not in (0xA0, 0xA3)]
        tbs_children[1] = sig_alg  # serial, signature, issuer, ...
    else:
        tbs_children[2] = sig_alg  # [0] version, serial, signature, ...
    tbs = _tlv(0x30, b"".join(tbs_children))
    h = _hash(hash_name)
    if family == "rsa":
        sig = signer.sign(tbs, padding.PKCS1v15(), h)  # type: ignore[union-attr,call-arg]
    else:
        sig = signer.sign(tbs, ec.ECDSA(h))  # type: ignore[union-attr,call-arg,arg-type]
    der = _tlv(0x30, tbs + sig_alg + _tlv(0x03, b"\x00" + sig))
    return x509.load_der_x509_certificate(der)


def many_cas(n: int, prefix: str = "foreign") -> tuple[PrivateKey, list[x509.Certificate]]:
    """``n`` distinct small self-signed CAs sharing one P-256 key (distinct subjects and serials, so
    distinct fingerprints): 1,700 of them fit in a ConfigMap (~770 KB of PEM) and take ~1 s."""
    k = key("p256", slot=40)
    now = utcnow()
    out = []
    for i in range(n):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{prefix} {i}")])
        out.append(x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(k.public_key()).serial_number(i + 1)
                   .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=3650))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(k, hashes.SHA256()))
    return k, out


def leaf_signed_by(ca: x509.Certificate, ca_key: PrivateKey, dns_name: str) -> tuple[x509.Certificate, PrivateKey]:
    """A serverAuth+clientAuth leaf for ``dns_name`` issued by a bare CA certificate and its key
    (e.g. one of :func:`many_cas`)."""
    now = utcnow()
    k = new_key()
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dns_name)]))
            .issuer_name(ca.subject).public_key(k.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert, k


# --- Java keystores, written by the JDK's own keytool ------------------------------------------
#
# keytool comes with a JRE, which scripts/install-system-deps.sh installs when it is missing.
# Tests that *run* keytool (to make a store from certificates of their own, or to check that Java
# reads what we write) carry ``needs_keytool``; tests that only *read* Java-written stores use the
# golden stores in tests/data/java (made by keytool, see its README.md) and need no Java.

#: Skips a test that runs keytool when no JRE is installed (true: only those tests call keytool).
needs_keytool = pytest.mark.skipif(shutil.which("keytool") is None, reason="keytool (a JRE) is not on PATH")

GOLDEN_JAVA = Path(__file__).resolve().parent / "data" / "java"
#: The password of every golden store.
GOLDEN_PASSWORD = "changeit"


def _issued_from_files(stem: Path) -> Issued:
    key_ = serialization.load_pem_private_key(stem.with_suffix(".key").read_bytes(), None)
    return Issued(x509.load_pem_x509_certificate(stem.with_suffix(".pem").read_bytes()), key_)  # type: ignore[arg-type]


@functools.cache
def golden_pki(kind: Literal["p256", "rsa2048"] = "p256") -> PKI:
    """The committed PKI the golden Java stores hold (root → intermediate → leaf, 100 years)."""
    d = GOLDEN_JAVA / kind
    return PKI(*(_issued_from_files(d / role) for role in ("root", "intermediate", "leaf")))


def golden_store(name: str) -> bytes:
    """A committed store written by keytool: ``<kind>/leaf.jks`` / ``<kind>/leaf.jceks`` (the leaf's
    key and chain, alias ``leaf``), ``truststore.jks`` (ca0, ca1: the p256 and rsa2048 roots),
    ``non-bmp-alias.jks`` (the p256 root under an alias outside the BMP), ``secretkey.jceks``."""
    return (GOLDEN_JAVA / name).read_bytes()



def _keytool(*args: str) -> None:
    import subprocess

    subprocess.run(["keytool", *args], check=True, capture_output=True, timeout=120)


@functools.lru_cache(maxsize=64)
def java_keystore(issued: Issued, password: str, cas: tuple[Issued, ...] = (), storetype: str = "JKS",
                  alias: str = "leaf") -> bytes:
    """A JKS or JCEKS keystore holding ``issued``'s key and chain, converted by ``keytool`` from
    PKCS#12 (so the bytes are what the JDK writes). keytool needs a password of 6+ characters."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        src, dst = Path(d) / "in.p12", Path(d) / "out"
        src.write_bytes(pkcs12_bytes(issued, password.encode(), list(cas), friendly_name=alias.encode()))
        _keytool("-importkeystore", "-noprompt", "-srckeystore", str(src), "-srcstoretype", "PKCS12",
                 "-srcstorepass", password, "-destkeystore", str(dst), "-deststoretype", storetype,
                 "-deststorepass", password, "-destkeypass", password)
        return dst.read_bytes()


@functools.lru_cache(maxsize=64)
def java_truststore(certs: tuple[x509.Certificate, ...], password: str, storetype: str = "JKS") -> bytes:
    """A truststore of trustedCertEntries written by ``keytool -importcert`` (aliases ca0, ca1, ...)."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        dst = Path(d) / "ts"
        for i, cert in enumerate(certs):
            f = Path(d) / f"c{i}.der"
            f.write_bytes(cert.public_bytes(serialization.Encoding.DER))
            _keytool("-importcert", "-noprompt", "-alias", f"ca{i}", "-file", str(f), "-keystore", str(dst),
                     "-storetype", storetype, "-storepass", password)
        return dst.read_bytes()


def keytool_list(store: bytes, password: str | None, storetype: str = "JKS") -> str:
    """``keytool -list -v`` of a store, as text (raises CalledProcessError when Java refuses it)."""
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "store"
        f.write_bytes(store)
        args = ["keytool", "-list", "-v", "-keystore", str(f), "-storetype", storetype]
        if password is not None:
            args += ["-storepass", password]
        done = subprocess.run(args, check=True, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        return done.stdout

"""Issuing certificates: CA key pairs and leaves, in profiles that strict verifiers accept.

One home for every certificate the project creates — the private CA of a policy, the leaves it
issues, the canary client certificate of a rotation probe, and the local control plane's own
certificates — so they all share one profile:

* CA: basicConstraints CA critical, keyUsage keyCertSign+cRLSign critical, SKI. That is what
  OpenSSL, Go, Java and ``cryptography.x509.verification`` all accept.
* Leaf: basicConstraints CA:false critical, keyUsage digitalSignature (+keyEncipherment for RSA)
  critical, the requested EKUs, SANs, SKI and an AKI that points at the issuer.

notBefore is backdated by a minute so a peer whose clock runs slightly behind accepts a
certificate that was issued a moment ago.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from certpolicy.pki.fingerprint import fingerprint
from certpolicy.pki.inspect import EKU_BY_NAME

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

KEY_ALGORITHMS = ("ECDSAP256", "ECDSAP384", "RSA2048", "RSA3072", "RSA4096")

USAGE_OIDS = EKU_BY_NAME  # one table of EKU names, in certpolicy.pki.inspect

BACKDATE = dt.timedelta(minutes=1)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key. Never logged: ``repr`` names only the certificate."""

    cert: x509.Certificate
    key: PrivateKey

    def __repr__(self) -> str:
        return f"KeyPair(subject={self.cert.subject.rfc4514_string()!r}, fingerprint={self.fingerprint!r})"

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.cert)

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def generate_key(algorithm: str = "ECDSAP256") -> PrivateKey:
    if algorithm == "ECDSAP256":
        return ec.generate_private_key(ec.SECP256R1())
    if algorithm == "ECDSAP384":
        return ec.generate_private_key(ec.SECP384R1())
    if algorithm.startswith("RSA") and algorithm in KEY_ALGORITHMS:
        return rsa.generate_private_key(public_exponent=65537, key_size=int(algorithm[3:]))
    raise ValueError(f"unknown key algorithm {algorithm!r}; expected one of {', '.join(KEY_ALGORITHMS)}")


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | hashes.SHA384:
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size > 256:
        return hashes.SHA384()
    return hashes.SHA256()


def _name(common_name: str, organization: Sequence[str] = ()) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organization]
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _now(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


#: RFC 5280's upper bound for a CommonName.
MAX_CN = 64


def ca_common_name(base: str, now: dt.datetime, generation: str | None = None) -> str:
    """A CA's CN naming its generation: ``<base> <YYYY-MM-DD> <6 hex>``, e.g. ``hl7 CA 2026-11-30
    a1b2c3``. Every CA a policy generates gets a distinct subject, so an OpenSSL or Java error
    during an incident ("unable to get local issuer certificate", "PKIX path building failed")
    says *which* CA, not only "the policy's CA". ``base`` is shortened to keep within 64 chars."""
    gen = generation or secrets.token_hex(3)
    suffix = f" {now:%Y-%m-%d} {gen}"
    return base[: MAX_CN - len(suffix)].rstrip() + suffix


def create_ca(
    common_name: str,
    *,
    validity: dt.timedelta = dt.timedelta(days=3650),
    key_algorithm: str = "ECDSAP256",
    key: PrivateKey | None = None,
    organization: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> KeyPair:
    """A self-signed root CA."""
    now = _now(now)
    key = key or generate_key(key_algorithm)
    name = _name(common_name, organization)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, _signature_hash(key))
    )
    return KeyPair(cert=cert, key=key)


def issue_leaf(
    ca: KeyPair,
    *,
    common_name: str | None = None,
    dns_names: Iterable[str] = (),
    ip_addresses: Iterable[str] = (),
    usages: Iterable[str] = ("serverAuth", "clientAuth"),
    validity: dt.timedelta = dt.timedelta(days=90),
    key_algorithm: str = "ECDSAP256",
    key: PrivateKey | None = None,
    organization: Sequence[str] = (),
    now: dt.datetime | None = None,
) -> KeyPair:
    """A leaf signed by ``ca``; its notAfter never outlives the CA's."""
    now = _now(now)
    key = key or generate_key(key_algorithm)
    dns = list(dict.fromkeys(dns_names))
    ips = [ipaddress.ip_address(ip) for ip in dict.fromkeys(ip_addresses)]
    usages = list(dict.fromkeys(usages))
    unknown = [u for u in usages if u not in USAGE_OIDS]
    if unknown:
        raise ValueError(f"unknown extended key usage {unknown[0]!r}")
    cn = common_name or (dns[0] if dns else (str(ips[0]) if ips else None))
    if cn is None:
        raise ValueError("a leaf needs a common name, a DNS name or an IP address")
    not_after = min(now + validity, ca.cert.not_valid_after_utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(cn, organization))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False,
                key_encipherment=isinstance(key, rsa.RSAPrivateKey),
                data_encipherment=False, key_agreement=False, key_cert_sign=False, crl_sign=False,
                encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if usages:
        builder = builder.add_extension(
            x509.ExtendedKeyUsage([USAGE_OIDS[u] for u in usages]), critical=False
        )
    sans: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    sans += [x509.IPAddress(ip) for ip in ips]
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca.key, _signature_hash(ca.key))
    return KeyPair(cert=cert, key=key)


def load_key_pair(cert_pem: bytes, key_pem: bytes) -> KeyPair:
    """A key pair from a Secret's ``tls.crt`` (its first certificate) and ``tls.key``.

    Raises ValueError with a message that names no key material when either cannot be read or
    the key does not belong to the certificate.
    """
    from certpolicy.pki.load import load_certificates, load_private_key

    certs = load_certificates(cert_pem).certificates
    if not certs:
        raise ValueError("tls.crt holds no certificate")
    loaded = load_private_key(key_pem)
    if loaded.key is None:
        raise ValueError(f"tls.key cannot be used: {loaded.problem}")
    if not isinstance(loaded.key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise ValueError("unsupported CA key type: only RSA and EC keys are supported")
    if certs[0].public_key() != loaded.key.public_key():
        raise ValueError("the private key does not match the certificate")
    return KeyPair(cert=certs[0], key=loaded.key)

"""Public descriptions of keys: "RSA 2048", "EC P-256", "Ed25519" — never a key's value.

Shared by the loader (a key that cannot sign, a key that belongs to another certificate) and the
certificate summaries (the key a certificate carries), which is why it lives on its own.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

_CURVE_NAMES = {
    "secp256r1": "P-256",
    "prime256v1": "P-256",
    "secp384r1": "P-384",
    "secp521r1": "P-521",
    "secp224r1": "P-224",
    "secp192r1": "P-192",
}


def curve_display_name(name: str) -> str:
    """``secp256r1`` → ``P-256``; curves without a NIST name keep cryptography's name."""
    return _CURVE_NAMES.get(name.lower(), name)


def describe_key(key: PublicKeyTypes | PrivateKeyTypes) -> str:
    """A public description of a key's type ("RSA 2048", "EC P-256", "Ed25519"): never its value."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        return f"RSA {key.key_size}"
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        return f"EC {curve_display_name(key.curve.name)}"
    if isinstance(key, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
        return "Ed25519"
    if isinstance(key, (ed448.Ed448PrivateKey, ed448.Ed448PublicKey)):
        return "Ed448"
    if isinstance(key, (dsa.DSAPrivateKey, dsa.DSAPublicKey)):
        return f"DSA {key.key_size}"
    return type(key).__name__.removeprefix("_")

"""Hostile Secret contents (issue #8), shared by the hygiene test and benchmarks/bench_hostile.py."""

from __future__ import annotations

import base64
from dataclasses import dataclass

import certgen


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class HostileSet:
    good: certgen.Issued  # a well-formed leaf from ``ca``, for the good Secret next to the bad ones
    keys: list  # every private key placed in these Secrets (for the hygiene audit)
    data: dict[str, dict[str, str]]  # Secret name -> kubernetes.io/tls data (base64)


def hostile_secrets(ca: certgen.Issued) -> HostileSet:
    good = certgen.leaf(ca, "good.hostile.test")
    other_key = certgen.new_key()
    loop_a = certgen.root("loop A")
    # Two CAs cross-signed by each other: path building from the leaf can go round forever.
    cross_a, cross_b = certgen.root("cross A"), certgen.root("cross B")
    a_by_b = certgen.build("cross A", issuer=cross_b, key=cross_a.key, ca=True)
    b_by_a = certgen.build("cross B", issuer=cross_a, key=cross_b.key, ca=True)
    cross_leaf = certgen.leaf(cross_a, "cross.hostile.test")
    chain = [certgen.intermediate(ca, "i0")]
    for i in range(1, 500):  # a chain of 500 certificates
        chain.append(certgen.intermediate(chain[-1], f"i{i}"))
    deep_leaf = certgen.leaf(chain[-1], "deep.hostile.test")
    # The API server caps a Secret's data at 1 MiB: a tls.crt just under it.
    huge = b"-----BEGIN CERTIFICATE-----\n" + b"A" * (1024 * 1024 - 8192) + b"\n-----END CERTIFICATE-----\n"
    data = {
        "garbage": {"tls.crt": _b64(b"\x00\xffnot a certificate at all\x13"), "tls.key": _b64(b"junk")},
        "der-in-pem-field": {"tls.crt": _b64(good.der), "tls.key": _b64(good.key_pem())},
        "truncated-pem": {"tls.crt": _b64(good.pem[: len(good.pem) // 2]), "tls.key": _b64(good.key_pem())},
        "huge": {"tls.crt": _b64(huge), "tls.key": _b64(good.key_pem())},
        "key-mismatch": {"tls.crt": _b64(good.pem), "tls.key": _b64(certgen.key_pem(other_key))},
        "key-in-crt": {"tls.crt": _b64(good.key_pem() + good.pem), "tls.key": _b64(good.key_pem())},
        "non-utf8": {"tls.crt": _b64(bytes(range(256)) * 4), "tls.key": _b64(bytes(range(255, -1, -1)))},
        "empty": {"tls.crt": "", "tls.key": ""},  # kubernetes.io/tls requires both keys; empty is the worst allowed
        "self-loop": {"tls.crt": _b64(certgen.pem(loop_a) * 3), "tls.key": _b64(loop_a.key_pem())},
        "cross-signed-loop": {"tls.crt": _b64(certgen.pem(cross_leaf, a_by_b, b_by_a, a_by_b)),
                              "tls.key": _b64(cross_leaf.key_pem())},
        "long-chain": {"tls.crt": _b64(certgen.pem(deep_leaf, *reversed(chain))), "tls.key": _b64(deep_leaf.key_pem())},
    }
    keys = [good.key, other_key, loop_a.key, cross_leaf.key, deep_leaf.key]
    return HostileSet(good, keys, data)

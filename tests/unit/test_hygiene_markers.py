"""The session audit's marker search (tests/hygiene.py) finds what the naive search finds."""

from __future__ import annotations

import base64

from cryptography.hazmat.primitives import serialization

import certgen
from hygiene import Markers, key_markers


def _pem(key) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def test_a_key_is_found_however_it_is_quoted_and_an_unrelated_text_is_not() -> None:
    keys = [certgen.new_key("p256"), certgen.key("rsa2048", slot=3)]
    markers = Markers({m for k in keys for m in key_markers(k)})
    pem = _pem(keys[1])
    body = "".join(line for line in pem.splitlines() if "-----" not in line)
    leaks = [
        f"[2026-12-04 09:00:00,000] certpolicy.reconcile [DEBUG   ] got {pem}",  # as logged
        str({"data": {"tls.key": pem}}),  # in a repr'd dict: newlines become \n
        f"x{body}y",  # one line, glued to other base64 characters
        "tls.key=" + base64.b64encode(pem.encode()).decode(),  # a Secret's data field
        base64.b64encode(keys[0].private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())).decode(),
    ]
    for text in leaks:
        assert markers.found_in(text), text[:60]
        assert any(m in text for k in keys for m in key_markers(k))  # the naive search agrees
    cert = certgen.pem(certgen.root("not a key")).decode()
    clean = ["sha256:" + "ab" * 32, cert, base64.b64encode(cert.encode()).decode(), "A" * 10_000, ""]
    for text in clean:
        assert not markers.found_in(text), text[:60]
        assert not any(m in text for k in keys for m in key_markers(k))

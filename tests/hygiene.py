"""Secret hygiene across the whole integration suite: nothing the operator says contains a key.

Every in-process operator run hands its DEBUG log and a scrape of /metrics to the session's
:class:`Audit`; every policy's status is captured before the policy is deleted; operator
processes log at DEBUG into files the audit reads. At the end of the session the audit collects
every private key that exists in the cluster (the tests' and the operator's own CA and leaf keys)
plus the keys certgen made, lists every Event in every namespace, and fails if any of that text
holds a PEM private key block or a recognisable piece of any key.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import load_der_private_key, load_pem_private_key

#: The start of a PEM private key (a message may name the label, e.g. "an ENCRYPTED PRIVATE KEY").
PEM_KEY_BLOCK = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")
#: A run of base64 characters long enough to hold a marker: every marker is one (40 or 64 chars).
BASE64_RUN = re.compile(r"[A-Za-z0-9+/=]{40,}")


def key_markers(key: Any) -> list[str]:
    """Substrings that would betray ``key``: lines of its PEM body and the base64 of its DER and PEM."""
    der = key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    body = [line for line in pem.splitlines() if "-----" not in line]
    b64 = base64.b64encode
    return [b64(der).decode()[:40], body[0], body[1] if len(body) > 1 else body[0], b64(pem.encode()).decode()[:40]]


def keys_in_secret_data(data: dict[str, str] | None) -> list[Any]:
    """Every value of a Secret that loads as an unencrypted private key (PEM or DER)."""
    keys = []
    for value in (data or {}).values():
        try:
            raw = base64.b64decode(value)
        except (binascii.Error, ValueError):
            continue
        for load in (load_pem_private_key, load_der_private_key):
            try:
                keys.append(load(raw, None))
                break
            except Exception:  # noqa: BLE001 - not a key, or an encrypted one
                continue
    return keys


class Markers:
    """Finds any of many markers in a text in one pass over it.

    ``any(m in text for m in markers)`` costs markers x text: with the suite's ~600 keys (4 markers
    each) and its operator logs that was the end-of-session audit's whole cost. Every marker is a
    run of base64 characters, so it can only occur inside such a run of the text: each run's
    windows of a marker's length are looked up in a set (cost: the length of those runs).
    """

    def __init__(self, markers: set[str]) -> None:
        self.by_length: dict[int, set[str]] = {}
        for m in markers:
            if not BASE64_RUN.fullmatch(m):
                raise ValueError("a marker outside the base64 alphabet would never be found")
            self.by_length.setdefault(len(m), set()).add(m)

    def found_in(self, text: str) -> bool:
        for run in BASE64_RUN.finditer(text):
            s = run.group()
            for n, wanted in self.by_length.items():
                if any(s[i:i + n] in wanted for i in range(len(s) - n + 1)):
                    return True
        return False


@dataclass
class Audit:
    texts: list[tuple[str, str]] = field(default_factory=list)  # (where, text)
    log_files: list[Path] = field(default_factory=list)

    def add(self, where: str, text: str) -> None:
        self.texts.append((where, text))

    def leaks(self, keys: list[Any]) -> list[str]:
        markers = Markers({m for k in keys for m in key_markers(k)})
        texts = self.texts + [(f"log file {p.name}", p.read_text(errors="replace")) for p in self.log_files if p.exists()]
        found = []
        for where, text in texts:
            if PEM_KEY_BLOCK.search(text):
                found.append(f"{where}: a PRIVATE KEY block")
            if markers.found_in(text):
                found.append(f"{where}: base64 or PEM of a private key")
        return found

    @property
    def volume(self) -> int:
        return sum(len(t) for _, t in self.texts) + sum(p.stat().st_size for p in self.log_files if p.exists())

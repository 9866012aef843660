"""Reading ``status.ca.history``: the CAs a policy has ever put in bundles, and in which state.

Pure: the operator's CA and rotation stages and the kubectl plugin (which must not load kopf)
read the history through these functions. Writing it is the CA stage's (``handlers.ca``).
History states: "active" issues leaves; "next" is trusted ahead of a rotation; "previous" is
still trusted (leaves may chain to it); "retired" was removed from every bundle.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509

from certpolicy.pki.fingerprint import fingerprint
from certpolicy.pki.load import load_certificates

TRUSTED_STATES = ("active", "next", "previous")


def active_in_history(history: Sequence[Mapping[str, Any]] | None) -> Mapping[str, Any] | None:
    return next((h for h in history or () if h.get("state") == "active"), None)


def history_certificates(history: Sequence[Mapping[str, Any]] | None,
                         states: Sequence[str] = TRUSTED_STATES) -> dict[str, x509.Certificate]:
    """The certificates the history keeps for CAs in ``states``, by fingerprint: what bundles and
    rotations use for a CA whose Secret (and key) is gone."""
    certs: dict[str, x509.Certificate] = {}
    for h in history or ():
        if h.get("state") in states and h.get("certificate"):
            for cert in load_certificates(str(h["certificate"]).encode()).certificates:
                certs[fingerprint(cert)] = cert
    return certs


def trusted_certificates(history: Sequence[Mapping[str, Any]]) -> list[x509.Certificate]:
    """The CA certificates every bundle target must hold, from the recorded history."""
    return list(history_certificates(history).values())


def retired_fingerprints(history: Sequence[Mapping[str, Any]]) -> set[str]:
    return {str(h["fingerprint"]) for h in history if h.get("state") == "retired"}

"""The reasons table: stable, ordered, documented."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from certpolicy.pki.inspect import EKU_BY_NAME
from certpolicy.policy.findings import MISSING_EKU_REASON, REASONS, CertRef, Finding, Role, Severity, finding

DOCS = Path(__file__).resolve().parents[3] / "docs" / "findings.md"


def test_severity_order_and_labels():
    assert Severity.CRITICAL > Severity.WARNING > Severity.INFO
    assert str(Severity.CRITICAL) == "Critical" and Severity.parse("warning") is Severity.WARNING
    assert max([Severity.INFO, Severity.CRITICAL, Severity.WARNING]) is Severity.CRITICAL


def test_reasons_are_camel_case():
    for r in REASONS:
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", r), r


def test_unknown_reason_is_rejected():
    with pytest.raises(ValueError, match="unknown finding reason"):
        Finding("NotAReason", Severity.INFO, "x")


def test_default_severity_from_table():
    assert finding("KeyMismatch", "x").severity is Severity.CRITICAL
    assert finding("ExpiringSoon", "x", severity=Severity.CRITICAL).severity is Severity.CRITICAL


def test_every_eku_name_has_a_missing_reason():
    assert set(MISSING_EKU_REASON) == set(EKU_BY_NAME)
    assert all(r in REASONS for r in MISSING_EKU_REASON.values())


def test_findings_serialise():
    f = finding("Expired", "gone", CertRef(Role.ROOT, "CN=r", "sha256:00"))
    assert f.to_dict() == {"reason": "Expired", "severity": "Critical", "message": "gone", "cert": {"role": "root", "subject": "CN=r", "fingerprint": "sha256:00"}}


def test_docs_list_every_reason_with_its_severity():
    text = DOCS.read_text()
    for r in REASONS.values():
        row = next((line for line in text.splitlines() if line.startswith(f"| `{r.reason}` |")), None)
        assert row is not None, f"docs/findings.md lacks {r.reason}"
        assert r.severity.label in row, r.reason
    documented = set(re.findall(r"^\| `([A-Za-z0-9]+)` \|", text.split("## Reasons", 1)[1], re.M))
    assert documented == set(REASONS)

"""``certpolicy check --baseline OLD NEW``: the renewal guard's comparison for pipelines."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

import certgen
from certpolicy.cli import main


@pytest.fixture(scope="module")
def pki():
    return certgen.pki()


def check(*args: str) -> int:
    try:
        return main(["check", *args])
    except SystemExit as e:
        return int(e.code)


def write(tmp_path: Path, name: str, leaf: certgen.Issued, pki) -> str:
    path = tmp_path / name
    path.write_bytes(leaf.pem + pki.intermediate.pem)
    return str(path)


def test_same_usages_exit_0(tmp_path, pki, capsys):
    old = write(tmp_path, "old.pem", certgen.leaf(pki.intermediate, "svc.example.com"), pki)
    new = write(tmp_path, "new.pem", certgen.leaf(pki.intermediate, "svc.example.com"), pki)
    assert check("--baseline", old, new) == 0
    out = capsys.readouterr().out
    assert "OK" in out and "anchors not compared" in out


def test_dropped_client_auth_exit_1_with_before_and_after(tmp_path, pki, capsys):
    old = write(tmp_path, "old.pem", certgen.leaf(pki.intermediate, "svc.example.com"), pki)
    new = write(tmp_path, "new.pem", certgen.leaf(pki.intermediate, "svc.example.com", eku=["serverAuth"]), pki)
    assert check("--baseline", old, new) == 1
    out = capsys.readouterr().out
    assert "REGRESSION" in out and "RenewalDroppedUsage" in out and "[clientAuth, serverAuth] → [serverAuth]" in out
    assert check("--baseline", old, new, "-o", "json") == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["exitCode"] == 1 and [r["reason"] for r in doc["regressions"]] == ["RenewalDroppedUsage"]
    assert doc["old"]["ekus"] == ["clientAuth", "serverAuth"] and doc["new"]["ekus"] == ["serverAuth"]


def test_anchor_compared_with_a_trust_bundle_and_ignored_by_policy(tmp_path, capsys):
    then = certgen.utcnow() - dt.timedelta(days=390)
    before = certgen.pki(now=then, leaf_kw={"valid_for": dt.timedelta(days=365)})  # OLD: expired
    other = certgen.pki()
    old = write(tmp_path, "old.pem", before.leaf, before)
    new = write(tmp_path, "new.pem", other.leaf, other)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(before.root.pem + other.root.pem)
    # The expired OLD is verified at the middle of its validity, so its anchor is known: the anchor
    # changed, and the lifetime (365 → 90 days)
    assert check("--baseline", old, new, "--trust-bundle", str(bundle), "-o", "json") == 1
    reasons = [r["reason"] for r in json.loads(capsys.readouterr().out)["regressions"]]
    assert reasons == ["RenewalChangedAnchor", "RenewalShorterLifetime"]
    policy = tmp_path / "policy.yaml"
    policy.write_text("apiVersion: certpolicy.io/v1alpha1\nkind: CertificatePolicy\nmetadata: {name: p}\n"
                      "spec:\n  requirements:\n    renewal:\n"
                      "      ignore: [RenewalChangedAnchor, RenewalShorterLifetime]\n")
    assert check("--baseline", old, new, "--trust-bundle", str(bundle), "--policy", str(policy)) == 0


def test_unreadable_or_misused_exit_3(tmp_path, pki, capsys):
    new = write(tmp_path, "new.pem", certgen.leaf(pki.intermediate, "svc.example.com"), pki)
    (tmp_path / "empty.pem").write_bytes(b"not a certificate\n")
    assert check("--baseline", str(tmp_path / "empty.pem"), new) == 3
    assert "OLD" in capsys.readouterr().err
    assert check("--baseline", str(tmp_path / "missing.pem"), new) == 3
    assert check("--baseline", new, new, new) == 3  # exactly one NEW
    assert "exactly one NEW" in capsys.readouterr().err
    assert check("--baseline", new, new, "-o", "json") == 0  # the same leaf


def test_malformed_leaf_exit_3(tmp_path, pki, capsys):
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID

    bad = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x05\x82\x09oops")
    broken = certgen.leaf(pki.intermediate, "x.example.com", dns_names=(), extra_extensions=[(bad, False)])
    old = write(tmp_path, "old.pem", certgen.leaf(pki.intermediate, "x.example.com"), pki)
    new = write(tmp_path, "new.pem", broken, pki)
    assert check("--baseline", old, new) == 3
    assert "can be no baseline" in capsys.readouterr().err

"""PKCS#12 truststores: Java's keytool reads them; content comparison skips needless rewrites."""

from __future__ import annotations

import datetime as dt
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import certgen
from certpolicy.pki.fingerprint import short
from certpolicy.pki.issue import KeyPair, create_ca, issue_leaf
from certpolicy.pki.truststore import (
    TruststoreEntry,
    build_truststore,
    entries,
    read_truststore,
    truststore_matches,
)

NOW = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
KEYTOOL = shutil.which("keytool")
needs_keytool = certgen.needs_keytool


@pytest.fixture(scope="module")
def old() -> KeyPair:
    return create_ca("hl7 uat CA", now=NOW)


@pytest.fixture(scope="module")
def new() -> KeyPair:
    return create_ca("hl7 uat CA", now=NOW)


@pytest.fixture(scope="module")
def partner() -> KeyPair:
    return create_ca("Partner Root", now=NOW)


def keytool_list(path: Path, *storepass: str) -> subprocess.CompletedProcess[str]:
    # C1-only JIT and the serial GC start the JVM in ~0.4 s instead of ~0.7 s.
    fast = ["-J-XX:TieredStopAtLevel=1", "-J-XX:+UseSerialGC"]
    args = [KEYTOOL or "keytool", *fast, "-list", "-keystore", str(path), "-storetype", "PKCS12"]
    if storepass:
        args += ["-storepass", storepass[0]]
    return subprocess.run(args, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=60)


def listed(out: str) -> dict[str, str]:
    """alias -> SHA-256 fingerprint (lower hex) from ``keytool -list`` output."""
    result: dict[str, str] = {}
    alias = None
    for line in out.splitlines():
        m = re.match(r"^([^,\s]+), .*, trustedCertEntry,", line)
        if m:
            alias = m.group(1)
        m = re.match(r"^Certificate fingerprint \(SHA-256\): ([0-9A-F:]+)", line)
        if m and alias:
            result[alias] = "sha256:" + m.group(1).replace(":", "").lower()
            alias = None
    return result


def test_aliases_primary_bare_others_with_fingerprint_suffix(old: KeyPair, new: KeyPair, partner: KeyPair) -> None:
    got = entries([partner.cert, old.cert, new.cert], "HL7-UAT-CA", primary_fingerprint=new.fingerprint)
    aliases = [e.alias for e, _ in got]
    assert aliases[0] == "hl7-uat-ca" and got[0][0].fingerprint == new.fingerprint
    assert set(aliases[1:]) == {f"hl7-uat-ca-{short(old.fingerprint)}", f"hl7-uat-ca-{short(partner.fingerprint)}"}
    # An alias names a CA for its whole life: removing another CA does not rename it.
    later = entries([old.cert, new.cert], "hl7-uat-ca", primary_fingerprint=new.fingerprint)
    assert {e.alias for e, _ in later} < set(aliases)
    with pytest.raises(ValueError):
        entries([old.cert], " ")
    with pytest.raises(ValueError):
        entries([old.cert], "a", primary_fingerprint=new.fingerprint)
    assert entries([], "a") == ()


@needs_keytool
def test_keytool_lists_trusted_cert_entries(tmp_path: Path, old: KeyPair, new: KeyPair) -> None:
    path = tmp_path / "truststore.p12"
    path.write_bytes(build_truststore([old.cert, new.cert], "hl7-uat-ca", "s3cret!", old.fingerprint))
    proc = keytool_list(path, "s3cret!")
    assert proc.returncode == 0, proc.stderr
    assert "Your keystore contains 2 entries" in proc.stdout
    assert listed(proc.stdout) == {
        "hl7-uat-ca": old.fingerprint,
        f"hl7-uat-ca-{short(new.fingerprint)}": new.fingerprint,
    }
    assert proc.stdout.count("trustedCertEntry") == 2


@needs_keytool
def test_keytool_reads_an_empty_password_truststore(tmp_path: Path, old: KeyPair, new: KeyPair) -> None:
    """No password: unencrypted bags, MAC under the empty password. ``-storepass ""`` verifies it;
    without -storepass keytool prompts, reads an empty line, and still lists (integrity unchecked);
    any other password fails the MAC check (shown without a JVM in test_empty_password_round_trip)."""
    path = tmp_path / "truststore.p12"
    path.write_bytes(build_truststore([old.cert, new.cert], "ca", None))
    proc = keytool_list(path, "")
    assert proc.returncode == 0, proc.stderr
    assert set(listed(proc.stdout).values()) == {old.fingerprint, new.fingerprint}
    prompt = keytool_list(path)
    assert prompt.returncode == 0 and prompt.stdout.count("trustedCertEntry") == 2


def test_matches_compares_content_not_salted_bytes(old: KeyPair, new: KeyPair) -> None:
    a = build_truststore([old.cert, new.cert], "ca", "pw", old.fingerprint)
    b = build_truststore([new.cert, old.cert], "ca", "pw", old.fingerprint)
    assert a != b  # salted: byte comparison would rewrite every time
    assert truststore_matches(a, "pw", [new.cert, old.cert], "ca", old.fingerprint)
    assert truststore_matches(a, b"pw", [old.cert, new.cert], "CA", old.fingerprint)
    assert not truststore_matches(a, "pw", [old.cert], "ca", old.fingerprint)  # a CA removed
    assert not truststore_matches(a, "pw", [old.cert, new.cert], "other", old.fingerprint)  # alias
    assert not truststore_matches(a, "pw", [old.cert, new.cert], "ca", new.fingerprint)  # primary moved
    assert not truststore_matches(a, "changed", [old.cert, new.cert], "ca", old.fingerprint)  # password
    assert not truststore_matches(a, None, [old.cert, new.cert], "ca", old.fingerprint)
    assert not truststore_matches(None, "pw", [old.cert], "ca")
    assert not truststore_matches(b"not a keystore", "pw", [old.cert], "ca")


def test_empty_password_round_trip(old: KeyPair) -> None:
    data = build_truststore([old.cert], "ca", "")
    assert read_truststore(data, None) == {TruststoreEntry("ca", old.fingerprint)}
    assert truststore_matches(data, "", [old.cert], "ca")
    assert truststore_matches(data, None, [old.cert], "ca")
    assert not truststore_matches(data, "pw", [old.cert], "ca")


def test_a_keystore_with_a_private_key_is_not_our_truststore(old: KeyPair) -> None:
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    leaf = issue_leaf(old, dns_names=["x.example.com"], now=NOW)
    data = pkcs12.serialize_key_and_certificates(b"ca", leaf.key, leaf.cert, [old.cert], BestAvailableEncryption(b"pw"))
    assert read_truststore(data, "pw") is None
    assert not truststore_matches(data, "pw", [leaf.cert, old.cert], "ca")


def test_truststore_holds_no_private_key(old: KeyPair) -> None:
    from cryptography.hazmat.primitives.serialization import pkcs12

    p12 = pkcs12.load_pkcs12(build_truststore([old.cert], "ca", "pw"), b"pw")
    assert p12.key is None and p12.cert is None and len(p12.additional_certs) == 1


def test_generated_ca_subjects_name_their_generation_and_differ() -> None:
    import datetime as dt
    import re

    from certpolicy.pki.issue import MAX_CN, ca_common_name, create_ca

    now = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    names = {ca_common_name("hl7-uat CA", now) for _ in range(50)}
    assert len(names) == 50 and all(re.fullmatch(r"hl7-uat CA 2026-11-30 [0-9a-f]{6}", n) for n in names)
    assert ca_common_name("x" * 80, now, "a1b2c3") == "x" * (MAX_CN - 18) + " 2026-11-30 a1b2c3"
    ca = create_ca(ca_common_name("hl7-uat CA", now, "a1b2c3"), organization=["certpolicy"], now=now)
    assert ca.cert.subject.rfc4514_string() == "CN=hl7-uat CA 2026-11-30 a1b2c3,O=certpolicy"


def test_the_bare_alias_names_the_primary_whatever_the_fingerprint_order() -> None:
    """During a rotation the caller names the issuing CA as primary: the incoming CA keeps an alias
    of its own (``<alias>-<fingerprint prefix>``) even when it sorts first."""
    import datetime as dt

    from certpolicy.pki.fingerprint import fingerprint, short
    from certpolicy.pki.issue import create_ca
    from certpolicy.pki.truststore import build_truststore, read_truststore

    now = dt.datetime(2026, 11, 30, 12, tzinfo=dt.UTC)
    a, b = (create_ca(f"ca {i}", now=now).cert for i in range(2))
    for issuing, incoming in ((a, b), (b, a)):
        store = read_truststore(build_truststore([incoming, issuing], "HL7", None, fingerprint(issuing)))
        assert {(e.alias, e.fingerprint) for e in store} == {
            ("hl7", fingerprint(issuing)), (f"hl7-{short(fingerprint(incoming))}", fingerprint(incoming))}


def test_alias_outside_the_bmp_is_not_read_back_from_pkcs12(old: KeyPair) -> None:
    """Why the CRD refuses such an alias: ``cryptography`` returns no friendlyName for it, so the
    stored entries never match the wanted ones and the store would be rewritten on every pass.
    (Java reads it: see the keytool test below.)"""
    alias = "ca-\U0001F600"
    data = build_truststore([old.cert], alias, "pw")
    stored = read_truststore(data, "pw")
    assert stored is not None and {e.alias for e in stored} == {""}
    assert not truststore_matches(data, "pw", [old.cert], alias)
    assert truststore_matches(build_truststore([old.cert], "ca-\u00e4", "pw"), "pw", [old.cert], "ca-\u00e4")


@needs_keytool
def test_keytool_lists_a_pkcs12_alias_outside_the_bmp(tmp_path: Path, old: KeyPair) -> None:
    path = tmp_path / "ts.p12"
    path.write_bytes(build_truststore([old.cert], "ca-\U0001F600", "pw-123456"))
    proc = keytool_list(path, "pw-123456")
    assert proc.returncode == 0, proc.stderr
    assert "ca-\U0001F600, " in proc.stdout


@needs_keytool
def test_an_empty_set_has_no_pkcs12_encoding_so_the_operator_removes_the_key(tmp_path: Path) -> None:
    """Why a deleted policy's last CA removes the truststore key instead of writing an empty store
    (docs/trust-bundles.md): cryptography will not encode a PKCS#12 without a certificate (the
    error that hung deletions, issue 22), while JKS encodes zero entries and keytool lists them.
    One rule for both formats: no certificate, no truststore key."""
    from certpolicy.pki.truststore import build_jks_truststore, read_jks_truststore

    with pytest.raises(ValueError, match="at least one cert"):
        build_truststore([], "ca")
    path = tmp_path / "empty.jks"
    path.write_bytes(build_jks_truststore([], "ca"))
    proc = keytool_list(path, "")
    assert proc.returncode == 0 and "Your keystore contains 0 entries" in proc.stdout, proc.stdout + proc.stderr
    assert read_jks_truststore(path.read_bytes()) == frozenset()

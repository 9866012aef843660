"""``certpolicy check``: files, directories, live Secrets (with a fake cluster), output, exit codes."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import certgen
from certpolicy import checkcmd
from certpolicy.cli import main


@pytest.fixture(scope="module")
def pki():
    return certgen.pki()


@pytest.fixture
def files(tmp_path: Path, pki):
    (tmp_path / "svc.pem").write_bytes(pki.chain_pem)
    (tmp_path / "svc.key").write_bytes(pki.leaf.key_pem())
    (tmp_path / "bundle.pem").write_bytes(pki.root.pem)
    return tmp_path


def check(*args: str) -> int:
    try:
        return main(["check", *args])
    except SystemExit as e:  # argparse errors
        return int(e.code)


MTLS = ("--require-eku", "serverAuth,clientAuth", "--allow-dns", "*.example.com")


def test_compliant_file(files, capsys):
    rc = check(str(files / "svc.pem"), "--key", str(files / "svc.key"), "--trust-bundle", str(files / "bundle.pem"), *MTLS)
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "OK" in out and "svc.example.com" in out and "anchor sha256:" in out
    assert "\033[" not in out  # not a terminal: no colour


def test_critical_file(files, pki, capsys):
    bad = certgen.leaf(pki.intermediate, "prod.example.org", eku=["serverAuth"])
    (files / "bad.pem").write_bytes(bad.pem + pki.intermediate.pem)
    rc = check(str(files / "bad.pem"), "--trust-bundle", str(files / "bundle.pem"), *MTLS)
    out = capsys.readouterr().out
    assert rc == 2
    assert "MissingClientAuth" in out and "DNSNameNotAllowed" in out and "CRITICAL" in out


def test_warning_only(files, pki, capsys):
    soon = certgen.leaf(pki.intermediate, "soon.example.com", valid_for=dt.timedelta(days=20))
    (files / "soon.pem").write_bytes(soon.pem + pki.intermediate.pem)
    assert check(str(files / "soon.pem"), "--trust-bundle", str(files / "bundle.pem")) == 1
    assert "ExpiringSoon" in capsys.readouterr().out


def test_at_offset_makes_it_expire(files):
    assert check(str(files / "svc.pem"), "--trust-bundle", str(files / "bundle.pem"), "--at", "+8000h") == 2
    assert check(str(files / "svc.pem"), "--trust-bundle", str(files / "bundle.pem"), "--at", "2020-01-01T00:00:00Z") == 2


def test_at_takes_the_same_forms_as_the_plugin(files, capsys):
    """'+90d' is what `kubectl certpolicy check --at` documents; `certpolicy check` refused it (exit 3)."""
    common = (str(files / "svc.pem"), "--trust-bundle", str(files / "bundle.pem"))
    assert check(*common, "--at", "+400d") == check(*common, "--at", "+9600h") == 2
    assert check(*common, "--at", "+1d") == 0
    capsys.readouterr()
    assert check(*common, "--at", "next week") == 3
    assert "--at: 'next week' is neither an RFC 3339 time" in capsys.readouterr().err


def test_json_times_have_one_precision(files, pki, capsys):
    """Every time in the JSON document is whole seconds, UTC, 'Z' (validUntil had microseconds)."""
    soon = certgen.leaf(pki.intermediate, "soon.example.com", valid_for=dt.timedelta(days=20))
    (files / "soon.pem").write_bytes(soon.pem + pki.intermediate.pem)
    check(str(files / "soon.pem"), "--trust-bundle", str(files / "bundle.pem"), "-o", "json")
    times: list[str] = []

    def walk(v):
        if isinstance(v, dict):
            for x in v.values():
                walk(x)
        elif isinstance(v, list):
            for x in v:
                walk(x)
        elif isinstance(v, str) and re.match(r"\d{4}-\d\d-\d\dT", v):
            times.append(v)

    walk(json.loads(capsys.readouterr().out))
    assert len(times) >= 5  # evaluatedAt, validUntil, notBefore/notAfter of each certificate
    assert [t for t in times if not re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", t)] == []


def test_key_mismatch(files, capsys):
    (files / "other.key").write_bytes(certgen.key_pem(certgen.key("p256", 11)))
    assert check(str(files / "svc.pem"), "--key", str(files / "other.key"), "--trust-bundle", str(files / "bundle.pem")) == 2
    assert "KeyMismatch" in capsys.readouterr().out


def test_json_output(files, capsys):
    rc = check(str(files / "svc.pem"), "--trust-bundle", str(files / "bundle.pem"), "-o", "json", *MTLS)
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["exitCode"] == 0
    (r,) = doc["results"]
    assert r["compliant"] and r["anchorFingerprint"].startswith("sha256:") and r["target"].endswith("svc.pem")
    assert [c["role"] for c in r["certificates"]] == ["leaf", "intermediate", "root"]


def test_colour_on_request(files, pki, capsys):
    bad = certgen.leaf(pki.intermediate, "x.example.com", eku=["serverAuth"])
    (files / "bad.pem").write_bytes(bad.pem + pki.intermediate.pem)
    check(str(files / "bad.pem"), "--trust-bundle", str(files / "bundle.pem"), "--require-eku", "clientAuth", "--color", "always")
    assert "\033[31" in capsys.readouterr().out


def test_directory_pairs_keys_and_uses_the_ca_file(tmp_path, pki, capsys):
    (tmp_path / "a.crt").write_bytes(pki.chain_pem)
    (tmp_path / "a.key").write_bytes(pki.leaf.key_pem())
    other = certgen.leaf(pki.intermediate, "b.example.com")
    (tmp_path / "b.pem").write_bytes(other.pem + pki.intermediate.pem)
    (tmp_path / "b.key").write_bytes(certgen.key_pem(certgen.key("p256", 12)))  # wrong key
    (tmp_path / "ca.crt").write_bytes(pki.root.pem)
    (tmp_path / "notes.txt").write_text("ignored")
    rc = check(str(tmp_path), "-o", "json")
    doc = json.loads(capsys.readouterr().out)
    results = {Path(r["target"]).name: r for r in doc["results"]}
    assert set(results) == {"a.crt", "b.pem"}
    assert results["a.crt"]["compliant"] and results["a.crt"]["anchorFingerprint"]
    assert [f["reason"] for f in results["b.pem"]["findings"]] == ["KeyMismatch"]
    assert rc == 2


def test_pkcs12_with_password(tmp_path, pki, capsys):
    (tmp_path / "ks.p12").write_bytes(certgen.pkcs12_bytes(pki.leaf, b"changeit", [pki.intermediate]))
    (tmp_path / "pw").write_text("changeit\n")
    (tmp_path / "bundle.pem").write_bytes(pki.root.pem)
    assert check(str(tmp_path / "ks.p12"), "--password-file", str(tmp_path / "pw"), "--trust-bundle", str(tmp_path / "bundle.pem")) == 0
    assert check(str(tmp_path / "ks.p12"), "--password", "changeit", "--trust-bundle", str(tmp_path / "bundle.pem")) == 0
    capsys.readouterr()
    assert check(str(tmp_path / "ks.p12"), "--password", "wrong") == 3  # nothing could be read
    assert "KeystoreUnreadable" in capsys.readouterr().out


def test_der_file(tmp_path, pki):
    (tmp_path / "leaf.der").write_bytes(pki.leaf.der)
    (tmp_path / "bundle.pem").write_bytes(pki.intermediate.pem)
    assert check(str(tmp_path / "leaf.der"), "--trust-bundle", str(tmp_path / "bundle.pem")) == 0


def test_policy_file_with_flag_override(files, pki, capsys):
    (files / "policy.yaml").write_text(
        """
apiVersion: certpolicy.io/v1alpha1
kind: CertificatePolicy
metadata: {name: hl7-mtls-uat}
spec:
  requirements:
    extendedKeyUsages: [serverAuth, clientAuth]
    allowedDNSNames: ["*.uat.example.com"]
    expiry: {warningBefore: 720h, criticalBefore: 168h}
    trustBundle: {configMap: {namespace: certpolicy-system, name: hl7-ca, key: ca.crt}}
"""
    )
    assert check(str(files / "svc.pem"), "--policy", str(files / "policy.yaml"), "--trust-bundle", str(files / "bundle.pem")) == 2
    assert "DNSNameNotAllowed" in capsys.readouterr().out
    assert check(str(files / "svc.pem"), "--policy", str(files / "policy.yaml"), "--allow-dns", "*.example.com", "--trust-bundle", str(files / "bundle.pem")) == 0
    # offline, the policy's ConfigMap bundle cannot be read: say so, and fall back
    capsys.readouterr()
    check(str(files / "svc.pem"), "--policy", str(files / "policy.yaml"), "--allow-dns", "*.example.com")
    assert "--trust-bundle" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args",
    [
        ["--bogus", "x.pem"],
        ["--min-rsa-bits", "abc", "x.pem"],
        ["--output", "xml", "x.pem"],
        [],
        ["does-not-exist.pem"],
        ["--warn-before", "30d", "{dir}/svc.pem"],
        ["--require-eku", "mTLS", "{dir}/svc.pem"],
        ["--key", "{dir}/svc.key", "{dir}/svc.pem", "{dir}/bundle.pem"],
        ["--trust-bundle", "{dir}/svc.key", "{dir}/svc.pem"],
        ["--policy", "{dir}/svc.key", "{dir}/svc.pem"],
        ["--at", "yesterday", "{dir}/svc.pem"],
        ["--secret", "no-slash"],
    ],
)
def test_usage_errors_exit_3(files, capsys, args):
    assert check(*[a.replace("{dir}", str(files)) for a in args]) == 3
    assert capsys.readouterr().err


def test_garbage_file_is_unknown(tmp_path, capsys):
    (tmp_path / "junk.pem").write_bytes(b"\x00\x01garbage")
    assert check(str(tmp_path / "junk.pem")) == 3
    out = capsys.readouterr().out
    assert "UNKNOWN" in out and "NoCertificate" in out


def test_unreadable_wins_over_critical(tmp_path, pki):
    (tmp_path / "junk.pem").write_bytes(b"junk")
    (tmp_path / "bad.pem").write_bytes(certgen.leaf(None, "self.example.com").pem)
    (tmp_path / "bundle.pem").write_bytes(pki.root.pem)
    assert check(str(tmp_path / "junk.pem"), str(tmp_path / "bad.pem"), "--trust-bundle", str(tmp_path / "bundle.pem")) == 3


# --- live Secrets, through a fake cluster ---------------------------------------------------------


class FakeCluster:
    secrets: dict = {}
    config_maps: dict = {}

    def __init__(self, kubeconfig=None, context=None):
        self.kubeconfig, self.context = kubeconfig, context

    def secret(self, namespace, name):
        try:
            return self.secrets[(namespace, name)]
        except KeyError:
            raise checkcmd.UsageError(f"cannot read Secret {namespace}/{name}: 404 Not Found") from None

    def config_map_value(self, namespace, name, key):
        return self.config_maps[(namespace, name, key)]


@pytest.fixture
def cluster(monkeypatch, pki):
    FakeCluster.secrets = {
        ("integration", "mirth-tls"): pki.secret(),
        ("integration", "labfeed-tls"): certgen.tls_secret(certgen.leaf(pki.intermediate, "labfeed.example.com", eku=["serverAuth"]), [pki.intermediate]),
    }
    FakeCluster.config_maps = {("certpolicy-system", "hl7-ca", "ca.crt"): pki.root.pem}
    monkeypatch.setattr(checkcmd, "ClusterReader", FakeCluster)
    return FakeCluster


def test_secret_mode_reads_the_bundle_from_the_cluster(cluster, tmp_path, capsys):
    (tmp_path / "policy.yaml").write_text(
        "kind: CertificatePolicy\nspec:\n  requirements:\n    extendedKeyUsages: [serverAuth, clientAuth]\n"
        "    trustBundle: {configMap: {namespace: certpolicy-system, name: hl7-ca, key: ca.crt}}\n"
    )
    rc = check("--secret", "integration/mirth-tls", "--secret", "integration/labfeed-tls", "--policy", str(tmp_path / "policy.yaml"), "-o", "json")
    doc = json.loads(capsys.readouterr().out)
    assert rc == 2
    by = {r["target"]: r for r in doc["results"]}
    assert by["secret integration/mirth-tls"]["compliant"] and by["secret integration/mirth-tls"]["anchorFingerprint"]
    assert [f["reason"] for f in by["secret integration/labfeed-tls"]["findings"]] == ["MissingClientAuth"]


def test_secret_mode_missing_secret(cluster, capsys):
    assert check("--secret", "integration/nope") == 3
    assert "404" in capsys.readouterr().out


def test_file_mode_does_not_import_kubernetes(files):
    code = (
        "import sys; from certpolicy.cli import main; "
        f"rc = main(['check', {str(files / 'svc.pem')!r}, '-o', 'json']); "
        "print('kubernetes' in sys.modules, 'kopf' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "False False"


# --- what a newcomer ran into (issue 17, item 10) -------------------------------------------------

TWO_POLICIES = """
apiVersion: certpolicy.io/v1alpha1
kind: CertificatePolicy
metadata: {name: uat}
spec: {requirements: {allowedDNSNames: ["*.uat.example.com"]}}
---
apiVersion: certpolicy.io/v1alpha1
kind: CertificatePolicy
metadata: {name: any}
spec: {requirements: {allowedDNSNames: ["*.example.com"]}}
"""


def test_a_file_with_two_policies_needs_policy_name(files, capsys):
    (files / "two.yaml").write_text(TWO_POLICIES)
    common = (str(files / "svc.pem"), "--trust-bundle", str(files / "bundle.pem"), "--policy", str(files / "two.yaml"))
    assert check(*common) == 3
    err = capsys.readouterr().err
    assert "holds 2 CertificatePolicies (uat, any)" in err and "--policy-name" in err
    assert check(*common, "--policy-name", "uat") == 2  # svc.example.com is not a UAT name
    assert check(*common, "--policy-name", "any") == 0
    capsys.readouterr()
    assert check(*common, "--policy-name", "prod") == 3
    assert "no CertificatePolicy named 'prod'" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--warn-before", "--critical-before"])
def test_bad_duration_flag_names_the_flag_and_the_units(files, capsys, flag):
    assert check(str(files / "svc.pem"), flag, "30d") == 3
    err = capsys.readouterr().err
    assert f"{flag} '30d'" in err and "720h" in err and "h, m, s" in err and "invalid policy" not in err


def test_json_source_of_a_file_chain_is_file(files, capsys):
    check(str(files / "svc.pem"), "--trust-bundle", str(files / "bundle.pem"), "-o", "json")
    (r,) = json.loads(capsys.readouterr().out)["results"]
    assert [c["source"] for c in r["certificates"]] == ["file", "file", "bundle"]


@pytest.mark.parametrize("args", [["missing.pem"], ["--warn-before", "30d", "{dir}/svc.pem"], []])
def test_json_output_even_when_nothing_could_be_checked(files, capsys, args):
    assert check(*[a.replace("{dir}", str(files)) for a in args], "-o", "json") == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["exitCode"] == 3 and doc["results"] == [] and doc["error"]


def test_help_has_no_raw_restructuredtext(capsys):
    for sub in ([], ["run"], ["check"], ["demo"], ["local-cluster"]):
        with pytest.raises(SystemExit):
            main([*sub, "--help"])
        assert "``" not in capsys.readouterr().out


def test_check_cluster_exit_code_is_the_operators_compliant_rule():
    """Issue 22 item 3: ``check --cluster`` exits 0 only where the operator would say
    Compliant=True; nothing selected or a part not checked is 3; a violation still wins."""
    from certpolicy.checkcmd import Target
    from certpolicy.pki.secretdata import material_from_secret
    from certpolicy.plugin.whatif import verdict_exit_code
    from certpolicy.policy.evaluate import evaluate
    from certpolicy.policy.report import Unchecked
    from certpolicy.policy.spec import requirements_from_spec

    ca = certgen.root("what-if CA")
    req = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"]})

    def judged(name, eku):
        material = material_from_secret("kubernetes.io/tls", certgen.tls_secret(certgen.leaf(ca, name, eku=eku))["data"])
        return Target(f"secret ns/{name}", "secret", material, evaluate(req, material, [ca.cert], dt.datetime.now(dt.UTC)))

    good, bad = judged("good.example.com", ["serverAuth", "clientAuth"]), judged("bad.example.com", ["serverAuth"])
    gone = Target("secret ns/gone", "secret", error="named in spec.selector.names but does not exist")
    not_found = [Unchecked("SecretNotFound", "ns/gone does not exist")]
    assert verdict_exit_code([good], 1, []) == checkcmd.EXIT_OK
    assert verdict_exit_code([], 0, []) == checkcmd.EXIT_UNKNOWN  # nothing selected
    assert verdict_exit_code([good, gone], 1, not_found) == checkcmd.EXIT_UNKNOWN
    assert verdict_exit_code([good], 1, [Unchecked("TrustBundleUnreadable", "x")]) == checkcmd.EXIT_UNKNOWN
    assert verdict_exit_code([good, bad, gone], 2, not_found) == checkcmd.EXIT_CRITICAL  # a violation wins


def test_a_reader_that_closes_the_pipe_gets_no_traceback(files):
    """`certpolicy check -o json | head`: head exits, the next write fails. As for the plugin (the
    same helper, plugin/output.py ``until_reader_gone``): exit 141, no BrokenPipeError traceback.
    The read end is closed before anything is written, so the write fails every time."""
    import os

    code = f"import sys; from certpolicy.cli import main; sys.exit(main(['check', {str(files / 'svc.pem')!r}, '-o', 'json']))"
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        proc = subprocess.run([sys.executable, "-c", code], stdout=write_end, stderr=subprocess.PIPE, text=True,
                              timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr

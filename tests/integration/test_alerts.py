"""The alerting rules, tested like code: `promtool test rules` on synthetic series.

Each alert must fire at the first evaluation its ``for`` allows after its condition turns true,
not one evaluation earlier, with the labels and summary an on-call engineer reads; and a series
of another role, reason or policy state must not fire it. The expectations below are written
out by hand (thresholds, ``for`` durations), not read from the rules: a changed threshold fails
here until this file agrees.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field

import pytest
import yaml

from paths import REPO

RULES = REPO / "manifests" / "prometheusrule.yaml"
DAY = 86400
LEAD = 120  # minutes before a certificate series crosses its alert's threshold


# The labels Prometheus attaches to every sample it scrapes through the chart's ServiceMonitor
# (target labels; honorLabels unset): an exposed label of the same name would be renamed to
# exported_<name>, so the series below carry them the way Prometheus stores them, and an alert
# must name the Secret by secret_namespace/secret_name, never by the operator's own namespace.
TARGET = {"namespace": "certpolicy-system", "pod": "certpolicy-operator-0", "service": "certpolicy-operator-metrics",
          "job": "certpolicy-operator-metrics", "instance": "10.0.0.7:9090", "endpoint": "metrics",
          "container": "operator"}


def minutes(m: int) -> str:
    return f"{m}m"


def series(name: str, labels: dict[str, str], values: str) -> dict:
    body = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return {"series": f"{name}{{{body}}}", "values": values}


@dataclass
class Case:
    alert: str
    input_series: list[dict]
    fires_at: int  # minutes: the first evaluation at which the alert is firing
    labels: dict[str, str]
    summary: str
    quiet: list[str] = field(default_factory=list)  # alerts that must stay silent on the same series

    def promtool_test(self) -> dict:
        firing = {"exp_labels": {"alertname": self.alert, **self.labels},
                  "exp_annotations": {"summary": self.summary}}
        checks = [
            {"eval_time": minutes(0), "alertname": self.alert, "exp_alerts": []},
            {"eval_time": minutes(self.fires_at - 1), "alertname": self.alert, "exp_alerts": []},
            {"eval_time": minutes(self.fires_at), "alertname": self.alert, "exp_alerts": [firing]},
            {"eval_time": minutes(self.fires_at + 30), "alertname": self.alert, "exp_alerts": [firing]},
        ]
        checks += [{"eval_time": minutes(self.fires_at + 30), "alertname": q, "exp_alerts": []} for q in self.quiet]
        return {"interval": "1m", "input_series": self.input_series, "alert_rule_test": checks}


def expiry_case(alert: str, role: str, days: int, for_minutes: int, severity: str, summary: str,
                quiet: list[str]) -> Case:
    """A certificate whose notAfter is ``days`` + LEAD minutes after the epoch (promtool's time 0):
    time left drops below ``days`` just after minute LEAD, so the condition is first true at
    LEAD+1 and the alert fires ``for`` later."""
    labels = {**TARGET, "secret_namespace": "payments", "secret_name": "api-tls", "policy": "prod-mtls", "role": role,
              "subject_cn": "Example Issuing CA" if role != "leaf" else "api.example.com"}
    not_after = days * DAY + LEAD * 60
    samples = f"{not_after}+0x{LEAD + for_minutes + 60}"
    return Case(alert, [series("certpolicy_certificate_not_after_timestamp_seconds", labels, samples)],
                LEAD + 1 + for_minutes, {**labels, "severity": severity}, summary, quiet)


CASES = [
    expiry_case("CertpolicyLeafExpiringSoon", "leaf", 14, 15, "warning",
                "Leaf certificate in payments/api-tls expires in less than 14 days",
                quiet=["CertpolicyLeafExpiryCritical", "CertpolicyIssuingCAExpiringSoon", "CertpolicyRootCAExpiringSoon"]),
    expiry_case("CertpolicyLeafExpiryCritical", "leaf", 3, 5, "critical",
                "Leaf certificate in payments/api-tls expires in less than 3 days",
                quiet=["CertpolicyIssuingCAExpiryCritical"]),
    expiry_case("CertpolicyIssuingCAExpiringSoon", "intermediate", 90, 60, "warning",
                "Issuing CA Example Issuing CA (via payments/api-tls) expires in less than 90 days",
                quiet=["CertpolicyIssuingCAExpiryCritical", "CertpolicyLeafExpiringSoon", "CertpolicyRootCAExpiringSoon"]),
    expiry_case("CertpolicyIssuingCAExpiryCritical", "intermediate", 30, 15, "critical",
                "Issuing CA Example Issuing CA expires in less than 30 days: rotate it now",
                quiet=["CertpolicyLeafExpiringSoon"]),
    expiry_case("CertpolicyRootCAExpiringSoon", "root", 180, 60, "warning",
                "Root/bundle CA Example Issuing CA expires in less than 180 days",
                quiet=["CertpolicyRootCAExpiryCritical", "CertpolicyIssuingCAExpiringSoon"]),
    expiry_case("CertpolicyRootCAExpiringSoon", "bundleCA", 180, 60, "warning",
                "Root/bundle CA Example Issuing CA expires in less than 180 days",
                quiet=["CertpolicyRootCAExpiryCritical"]),
    expiry_case("CertpolicyRootCAExpiryCritical", "root", 60, 15, "critical",
                "Root/bundle CA Example Issuing CA expires in less than 60 days: start a CA rotation",
                quiet=["CertpolicyIssuingCAExpiryCritical"]),
    # compliant for 31 samples (minutes 0-30), violated from minute 31: fires 10 minutes later
    Case("CertpolicyPolicyViolated",
         [series("certpolicy_policy_compliant", {"policy": "prod-mtls"}, "1x30 0x60"),
          series("certpolicy_policy_compliant", {"policy": "uat-mtls"}, "1x90")],
         41, {"policy": "prod-mtls", "severity": "warning"},
         "CertificatePolicy prod-mtls has violating Secrets (kubectl describe certpol prod-mtls)"),
    # no finding for minutes 0-10, three Secrets from minute 11: fires 5 minutes later; other
    # reasons never fire it
    Case("CertpolicyMissingClientAuth",
         [series("certpolicy_findings", {**TARGET, "policy": "hl7", "secret_namespace": "integration",
                                         "reason": "MissingClientAuth", "severity": "Critical"}, "0x10 3x60"),
          series("certpolicy_findings", {**TARGET, "policy": "hl7", "secret_namespace": "integration",
                                         "reason": "ExpiringSoon", "severity": "Warning"}, "4x70")],
         16, {**TARGET, "policy": "hl7", "secret_namespace": "integration", "reason": "MissingClientAuth",
              "severity": "critical"},
         "3 certificates in namespace integration under hl7 lack clientAuth: their mTLS client connections will fail"),
    # idle for an hour, step 1 for an hour, then step 2 from minute 121 on. changes() over 6h
    # stops seeing the 1->2 change once the sample at minute 120 leaves the (left-open) window:
    # true from minute 480 (120 + 360), firing 6 hours later, at minute 840.
    Case("CertpolicyRotationStuck",
         [series("certpolicy_rotation_step", {"policy": "hl7-rotation"}, "0x59 1x60 2x800")],
         840, {"policy": "hl7-rotation", "severity": "warning"},
         "CA rotation of hl7-rotation has been at step 2 for 6 hours"),
]


@pytest.fixture(scope="module")
def rule_file(tmp_path_factory, promtool):
    """manifests/prometheusrule.yaml's groups as a Prometheus rule file; promtool checks it."""
    groups = yaml.safe_load(RULES.read_text())["spec"]
    path = tmp_path_factory.mktemp("rules") / "certpolicy.rules.yaml"
    path.write_text(yaml.safe_dump(groups))
    check = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    return path


def test_every_alert_has_a_case():
    groups = yaml.safe_load(RULES.read_text())["spec"]["groups"]
    alerts = {r["alert"] for g in groups for r in g["rules"] if "alert" in r}
    assert alerts == {c.alert for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=[f"{c.alert}-{c.labels.get('role', '')}".rstrip("-") for c in CASES])
def test_alert_fires_on_time_and_not_before(case, rule_file, promtool, tmp_path):
    tests = tmp_path / "test.yaml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(rule_file)], "evaluation_interval": "1m",
                                     "tests": [case.promtool_test()]}))
    proc = subprocess.run([promtool, "test", "rules", tests], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_promtool_catches_a_wrong_expectation(rule_file, promtool, tmp_path):
    """The harness can fail: the same leaf case, expected one minute too early, is reported."""
    early = CASES[0]
    early = Case(early.alert, early.input_series, early.fires_at - 1, early.labels, early.summary)
    tests = tmp_path / "test.yaml"
    body = early.promtool_test()
    body["alert_rule_test"] = body["alert_rule_test"][2:3]
    tests.write_text(yaml.safe_dump({"rule_files": [str(rule_file)], "evaluation_interval": "1m", "tests": [body]}))
    proc = subprocess.run([promtool, "test", "rules", tests], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

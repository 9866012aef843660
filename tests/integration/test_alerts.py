"""The alerting rules, tested like code: `promtool test rules` on synthetic series.

Each alert must fire at the first evaluation its ``for`` allows after its condition turns true,
not one evaluation earlier, with the labels and summary an on-call engineer reads; and a series
of another role, reason or policy state must not fire it. The expectations below are written
out by hand (thresholds, ``for`` durations), not read from the rules: a changed threshold fails
here until this file agrees.

Each alert also fires on time across a failover: its series move from one operator Pod to
another (new ``pod`` and ``instance`` target labels, a minute without samples between the old
Pod's staleness marker and the new Pod's first scrape) while its ``for`` runs, and the alert
neither starts its ``for`` over nor carries the Pod in its labels. Every alert has a description
and a runbook_url that points at a section of docs/troubleshooting.md that exists.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field, replace

import pytest
import yaml

from paths import REPO

RULES = REPO / "manifests" / "prometheusrule.yaml"
TROUBLESHOOTING = REPO / "docs" / "troubleshooting.md"
RUNBOOKS = "https://github.com/certpolicy/certpolicy-operator/blob/main/docs/troubleshooting.md#"
DAY = 86400
LEAD = 120  # minutes before a certificate series crosses its alert's threshold


# The labels Prometheus attaches to every sample it scrapes through the chart's ServiceMonitor
# (target labels; honorLabels unset): an exposed label of the same name would be renamed to
# exported_<name>, so the series below carry them the way Prometheus stores them, and an alert
# must name the Secret by secret_namespace/secret_name, never by the operator's own namespace.
TARGET = {"namespace": "certpolicy-system", "pod": "certpolicy-operator-0", "service": "certpolicy-operator-metrics",
          "job": "certpolicy-operator-metrics", "instance": "10.0.0.7:9090", "endpoint": "metrics",
          "container": "operator"}
# What an alert keeps of them: pod and instance change with a failover, so every rule drops them.
KEPT = {k: v for k, v in TARGET.items() if k not in ("pod", "instance")}
NEW_POD = {"pod": "certpolicy-operator-1", "instance": "10.0.0.8:9090"}


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
    failover: bool = True  # also checked with its first Pod's series moved to another Pod (failed_over)

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
                LEAD + 1 + for_minutes, {**without_pod(labels), "severity": severity}, summary, quiet)


def without_pod(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k not in ("pod", "instance")}


def expand(values: str) -> list[str]:
    """promtool's expanding notation (``a+bxN``, ``axN``, ``_``, ``stale``) as one value per minute."""
    out: list[str] = []
    for part in values.split():
        if part.startswith("_x"):
            out += ["_"] * int(part[2:])
            continue
        m = re.fullmatch(r"(-?[0-9.e]+)(?:([-+][0-9.e]+))?x([0-9]+)", part)
        if not m:
            out.append(part)
            continue
        start, step, n = float(m[1]), float(m[2] or 0), int(m[3])
        out += [repr(start + i * step) for i in range(n + 1)]
    return out


def failed_over(case: Case) -> Case:
    """The case with the series of its first Pod (TARGET's) moving to another Pod two minutes
    before the alert is due, when its ``for`` has run for a while: the old Pod's last sample at
    minute M-1 and a staleness marker at M, nothing at M, the new Pod's first sample at M+1."""
    at = case.fires_at - 2
    moved = []
    for s in case.input_series:
        if 'pod="certpolicy-operator-0"' not in s["series"]:
            moved.append(s)
            continue
        values = expand(s["values"])
        moved.append({"series": s["series"], "values": " ".join(values[:at] + ["stale"])})
        new = s["series"].replace(TARGET["pod"], NEW_POD["pod"]).replace(TARGET["instance"], NEW_POD["instance"])
        moved.append({"series": new, "values": " ".join(["_"] * (at + 1) + values[at + 1:])})
    assert moved != case.input_series, case.alert
    return replace(case, input_series=moved)


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
         [series("certpolicy_policy_compliant", {**TARGET, "policy": "prod-mtls"}, "1x30 0x60"),
          series("certpolicy_policy_compliant", {**TARGET, "policy": "uat-mtls"}, "1x90")],
         41, {**KEPT, "policy": "prod-mtls", "severity": "warning"},
         "CertificatePolicy prod-mtls has violating Secrets (kubectl describe certpol prod-mtls)"),
    # no finding for minutes 0-10, three Secrets from minute 11: fires 5 minutes later; other
    # reasons never fire it
    Case("CertpolicyMissingClientAuth",
         [series("certpolicy_findings", {**TARGET, "policy": "hl7", "secret_namespace": "integration",
                                         "reason": "MissingClientAuth", "severity": "Critical"}, "0x10 3x60"),
          series("certpolicy_findings", {**TARGET, "policy": "hl7", "secret_namespace": "integration",
                                         "reason": "ExpiringSoon", "severity": "Warning"}, "4x70")],
         16, {**KEPT, "policy": "hl7", "secret_namespace": "integration", "reason": "MissingClientAuth",
              "severity": "critical"},
         "3 certificates in namespace integration under hl7 lack clientAuth: their mTLS client connections will fail"),
    # idle for an hour, step 1 for an hour, then step 2 from minute 121 on. changes() over 6h
    # stops seeing the 1->2 change once the sample at minute 120 leaves the (left-open) window:
    # true from minute 480 (120 + 360), firing 6 hours later, at minute 840.
    Case("CertpolicyRotationStuck",
         [series("certpolicy_rotation_step", {**TARGET, "policy": "hl7-rotation"}, "0x59 1x60 2x800")],
         840, {**KEPT, "policy": "hl7-rotation", "severity": "warning"},
         "CA rotation of hl7-rotation has been at step 2 for 12 hours"),
    # Degraded (any reason; the reason may change meanwhile) from minute 11: fires 30 minutes later.
    # Another policy that is not Degraded stays silent.
    Case("CertpolicyPolicyDegraded",
         [series("certpolicy_policy_degraded", {**TARGET, "policy": "hl7", "reason": "AsExpected"}, "0x10 _x60"),
          series("certpolicy_policy_degraded", {**TARGET, "policy": "hl7", "reason": "TrustBundleMissing"},
                 "_x11 1x20 stale"),
          series("certpolicy_policy_degraded", {**TARGET, "policy": "hl7", "reason": "CAUnusable"}, "_x32 1x40"),
          series("certpolicy_policy_degraded", {**TARGET, "policy": "uat", "reason": "AsExpected"}, "0x70")],
         41, {**KEPT, "policy": "hl7", "severity": "warning"},
         "CertificatePolicy hl7 has been Degraded for 30 minutes"),
    # --- the operator itself ---
    # scraped for minutes 0-10, then gone (staleness marker at 11): absent from 11, fires 5 minutes later
    Case("CertpolicyOperatorAbsent",
         [series("certpolicy_build_info", {**TARGET, "version": "0.1.0", "python_version": "3.12.3"}, "1x10 stale")],
         16, {"severity": "critical"}, "No certpolicy-operator replica has been scraped for 5 minutes", failover=False),
    # two replicas; the leader's Lease lapses at minute 11 and nobody takes it: fires 5 minutes later.
    # The failover variant: the standby restarts meanwhile (a new Pod), still no leader.
    Case("CertpolicyNoLeader",
         [series("certpolicy_leader", TARGET, "1x10 0x60"),
          series("certpolicy_leader", {**TARGET, "pod": "certpolicy-operator-2", "instance": "10.0.0.9:9090"}, "0x70")],
         16, {**KEPT, "severity": "critical"}, "No certpolicy-operator replica has held the leader Lease for 5 minutes",
         quiet=["CertpolicyMultipleLeaders"]),
    # from minute 11 both replicas say they lead: fires 5 minutes later. No failover variant: a
    # restarted replica of two leaders leaves one leader, and that is the fix, not a failover.
    Case("CertpolicyMultipleLeaders",
         [series("certpolicy_leader", TARGET, "1x70"),
          series("certpolicy_leader", {**TARGET, "pod": "certpolicy-operator-2", "instance": "10.0.0.9:9090"},
                 "0x10 1x60")],
         16, {**KEPT, "severity": "critical"}, "2 certpolicy-operator replicas say they lead",
         quiet=["CertpolicyNoLeader"], failover=False),
    # the secrets watch is down on the (only) replica from minute 11: fires 10 minutes later; the
    # pods watch, up all along, stays silent
    Case("CertpolicyWatchDown",
         [series("certpolicy_watch_up", {**TARGET, "watch": "secrets"}, "1x10 0x60"),
          series("certpolicy_watch_up", {**TARGET, "watch": "pods"}, "1x70")],
         21, {**KEPT, "watch": "secrets", "severity": "warning"},
         "Watch secrets of certpolicy-operator has been down for 10 minutes"),
    Case("CertpolicyFindingSeriesCapped",
         [series("certpolicy_secret_findings_dropped", {**TARGET, "policy": "fleet"}, "0x10 37x60"),
          series("certpolicy_secret_findings_dropped", {**TARGET, "policy": "small"}, "0x70")],
         26, {**KEPT, "policy": "fleet", "severity": "warning"},
         "Policy fleet has 37 findings beyond the 2000-series cap"),
    Case("CertpolicyWebhookUpkeepFailing",
         [series("certpolicy_webhook_upkeep_failing", TARGET, "0x10 1x60")],
         26, {**KEPT, "severity": "warning"}, "The certpolicy admission webhook's upkeep has failed for 15 minutes"),
    Case("CertpolicyWebhookPoliciesUnregistered",
         [series("certpolicy_webhook_policies_unregistered", TARGET, "0x10 3x60")],
         26, {**KEPT, "severity": "warning"}, "3 enforcing CertificatePolicies are not in the admission webhook"),
]


def rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["spec"]["groups"] for r in g["rules"] if "alert" in r]


@pytest.fixture(scope="module")
def rule_file(tmp_path_factory, promtool):
    """manifests/prometheusrule.yaml's groups as a Prometheus rule file; promtool checks it whole
    (templates included). The file the cases run on keeps only the summary of each alert:
    promtool compares annotations exactly, and description and runbook_url are checked below."""
    spec = yaml.safe_load(RULES.read_text())["spec"]
    work = tmp_path_factory.mktemp("rules")
    whole = work / "whole.rules.yaml"
    whole.write_text(yaml.safe_dump(spec))
    check = subprocess.run([promtool, "check", "rules", whole], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr
    for group in spec["groups"]:
        for rule in group["rules"]:
            rule["annotations"] = {"summary": rule["annotations"]["summary"]}
    path = work / "certpolicy.rules.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def test_every_alert_has_a_case():
    assert {r["alert"] for r in rules()} == {c.alert for c in CASES}


def slugs(markdown: str) -> set[str]:
    """GitHub's anchors of a Markdown file's headings (lower case, punctuation dropped, spaces to -)."""
    return {re.sub(r"[^\w\- ]", "", m[1].strip().lower()).replace(" ", "-")
            for m in re.finditer(r"^#{1,6} (.+)$", markdown, re.M)}


def test_every_alert_has_a_description_and_a_runbook_section_that_exists():
    anchors = slugs(TROUBLESHOOTING.read_text())
    assert "certpolicyoperatorabsent" in anchors  # the slug rule reads this file's headings
    for rule in rules():
        notes = rule["annotations"]
        assert len(notes.get("description", "")) > 40, rule["alert"]
        url = notes.get("runbook_url", "")
        assert url.startswith(RUNBOOKS) and url.removeprefix(RUNBOOKS) in anchors, (rule["alert"], url)


def test_no_alert_keeps_the_pod_or_instance():
    """A label that changes with a failover would be another alert, its ``for`` started over."""
    from promql import names

    for rule in rules():
        if rule["expr"].startswith("absent("):
            continue
        assert {"pod", "instance"} <= names(rule["expr"]).dropped, rule["alert"]


def case_id(c: Case) -> str:
    return f"{c.alert}-{c.labels.get('role', '')}".rstrip("-")


@pytest.mark.parametrize("case", CASES + [failed_over(c) for c in CASES if c.failover],
                         ids=[case_id(c) for c in CASES] + [f"{case_id(c)}-failover" for c in CASES if c.failover])
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


def test_a_rule_that_keeps_the_pod_fails_the_failover_case(promtool, tmp_path):
    """The failover cases can fail: the leaf rule as it was (no last_over_time, pod and instance
    kept) starts its ``for`` over on the new Pod's series, and promtool reports it."""
    case = failed_over(CASES[0])
    rule = next(r for r in rules() if r["alert"] == case.alert)
    old = {**rule, "expr": '(certpolicy_certificate_not_after_timestamp_seconds{role="leaf"} - time()) < 14 * 86400',
           "annotations": {"summary": rule["annotations"]["summary"]}}
    path = tmp_path / "old.rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "old", "rules": [old]}]}))
    body = case.promtool_test()
    body["alert_rule_test"] = body["alert_rule_test"][2:3]
    tests = tmp_path / "test.yaml"
    tests.write_text(yaml.safe_dump({"rule_files": [str(path)], "evaluation_interval": "1m", "tests": [body]}))
    proc = subprocess.run([promtool, "test", "rules", tests], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr, proc.stdout + proc.stderr

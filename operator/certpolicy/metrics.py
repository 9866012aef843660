"""Prometheus metrics, named in the style of cert-manager and x509-certificate-exporter.

Per-certificate and per-policy series are produced at scrape time from the latest report of each
policy (a custom collector), so a deleted Secret or policy disappears from ``/metrics`` at once
instead of lingering as a stale series. Labels name objects and certificate roles, never
certificate contents beyond the subject CN.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import threading
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from certpolicy import __version__
from certpolicy.policy.report import PolicyReport, Unchecked

if TYPE_CHECKING:
    from certpolicy.inventory.inventory import Inventory

#: Per-object finding series per policy: one per (violating Secret or store, reason). Bounded so
#: that a policy gone wrong on a huge cluster cannot flood Prometheus; the rest are counted.
MAX_FINDING_SERIES = 2000

RECONCILE_DURATION = Histogram(
    "certpolicy_reconcile_duration_seconds",
    "Time to evaluate one CertificatePolicy against the inventory and write its status.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EVENTS_POSTED = Counter("certpolicy_events_posted_total", "Kubernetes Events posted by the operator.", ["type"])
STATUS_WRITES = Counter("certpolicy_status_writes_total", "CertificatePolicy status patches.")
OTHER_INSTALL = Gauge("certpolicy_standby_other_install_leads",
                      "1 while this replica is standby because the cluster's leader Lease is held by another "
                      "install (in namespace holder_namespace): one install per cluster.", ["holder_namespace"])
LEADER = Gauge("certpolicy_leader", "1 while this replica holds the leader Lease (or runs without leader "
                                    "election) and may write; 0 for a standby.")
WEBHOOK_UPKEEP_FAILING = Gauge(
    "certpolicy_webhook_upkeep_failing",
    "1 while the last webhook upkeep (serving CA, serving certificate, configuration/caBundle) failed; it is retried.")
WEBHOOK_DECISION_ERRORS = Counter(
    "certpolicy_webhook_decision_errors_total",
    "Admission requests whose decision raised and that were therefore allowed unjudged (fail-open).")
WEBHOOK_POLICIES_UNREGISTERED = Gauge(
    "certpolicy_webhook_policies_unregistered",
    "Enforcing policies left out of the webhook configuration (beyond its limit): their Deny is not enforced.")


def _cn(subject: str) -> str:
    for part in subject.split(","):
        if part.strip().upper().startswith("CN="):
            return part.strip()[3:]
    return ""


class PolicyCollector(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: dict[str, PolicyReport] = {}
        self._rotation_steps: dict[str, int] = {}
        self._rotations_finished: dict[str, dict[str, float]] = {}  # policy -> outcome -> finishedAt
        self._degraded: dict[str, str | None] = {}  # policy -> Degraded reason, None when not Degraded
        self._passes: dict[str, int] = {}  # policy -> evaluation passes of its loop in this process
        self.inventory: Inventory | None = None  # set by the operator: for watch and inventory gauges

    def update(self, policy: str, report: PolicyReport) -> None:
        with self._lock:
            self._reports[policy] = report

    def not_checked(self, policy: str, unchecked: Unchecked) -> None:
        """The policy's last pass checked nothing (it raised): its compliance gauge goes to 0 with
        its Compliant condition (Unknown), the rest of its last report stays."""
        with self._lock:
            report = self._reports.get(policy)
            if report is not None:
                self._reports[policy] = dataclasses.replace(report, unchecked=(unchecked,))

    def set_degraded(self, policy: str, reason: str | None) -> None:
        """The policy's ``Degraded`` condition (its reason, None for False): what an alert on a
        policy Degraded for too long reads, since the condition itself is not a series."""
        with self._lock:
            self._degraded[policy] = reason

    def count_pass(self, policy: str) -> None:
        """One evaluation pass of the policy began (counted before it writes anything, so a
        status it wrote is never seen before its pass is counted): what each change costs, in
        passes, is the rate of this series against the rate of the changes that woke it."""
        with self._lock:
            self._passes[policy] = self._passes.get(policy, 0) + 1

    def set_rotation_step(self, policy: str, step: int, history: Sequence = ()) -> None:
        """The current step, and from the policy's (bounded) rotation history the time the latest
        rotation of each outcome finished: the dashboard's rotation history."""
        latest: dict[str, float] = {}
        for entry in history:
            at = entry.finished_at.timestamp()
            latest[entry.outcome] = max(at, latest.get(entry.outcome, at))
        with self._lock:
            self._rotation_steps[policy] = step
            self._rotations_finished[policy] = latest

    def forget(self, policy: str) -> None:
        with self._lock:
            self._reports.pop(policy, None)
            self._rotation_steps.pop(policy, None)
            self._rotations_finished.pop(policy, None)
            self._degraded.pop(policy, None)
            self._passes.pop(policy, None)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            reports = dict(self._reports)
            steps = dict(self._rotation_steps)
            finished = {p: dict(by_outcome) for p, by_outcome in self._rotations_finished.items()}
            degraded_reasons = dict(self._degraded)
            passes = dict(self._passes)
        not_after = GaugeMetricFamily(
            "certpolicy_certificate_not_after_timestamp_seconds",
            "notAfter of each certificate in a selected Secret and its trust bundle (Unix seconds).",
            labels=["secret_namespace", "secret_name", "policy", "role", "subject_cn"],
        )
        findings = GaugeMetricFamily(
            "certpolicy_findings", "Selected Secrets with a finding of this reason, by namespace.",
            labels=["policy", "secret_namespace", "reason", "severity"],
        )
        compliant = GaugeMetricFamily("certpolicy_policy_compliant",
                                      "1 when Compliant is True: Secrets were selected and every one complies.",
                                      labels=["policy"])
        selected = GaugeMetricFamily("certpolicy_policy_selected_secrets", "Secrets selected by the policy.",
                                     labels=["policy"])
        violating = GaugeMetricFamily("certpolicy_policy_violating_secrets", "Selected Secrets that violate it.",
                                      labels=["policy"])
        rotation = GaugeMetricFamily("certpolicy_rotation_step",
                                     "Current CA rotation step (1-5), 0 when no rotation runs.", labels=["policy"])
        rotation_finished = GaugeMetricFamily(
            "certpolicy_rotation_last_finished_timestamp_seconds",
            "When the latest CA rotation of this outcome (Completed, Aborted, ...) finished (Unix seconds).",
            labels=["policy", "outcome"])
        for policy, report in sorted(reports.items()):
            compliant.add_metric([policy], 1.0 if report.is_compliant is True else 0.0)
            selected.add_metric([policy], report.selected)
            violating.add_metric([policy], report.violating)
            for namespace, reason, severity, count in report.findings_by_namespace:
                findings.add_metric([policy, namespace, reason, severity], count)
            seen: set[tuple] = set()
            for result in report.results:
                for cert in result.evaluation.certificates:
                    labels = (result.namespace, result.name, policy, str(cert.role), _cn(cert.summary.subject))
                    if labels in seen:
                        continue
                    seen.add(labels)
                    not_after.add_metric(list(labels), cert.summary.not_after.timestamp())
            rotation.add_metric([policy], steps.get(policy, 0))
            for outcome, at in sorted(finished.get(policy, {}).items()):
                rotation_finished.add_metric([policy, outcome], at)
        degraded = GaugeMetricFamily("certpolicy_policy_degraded",
                                     "1 while the policy's Degraded condition is True (reason: its reason), else 0.",
                                     labels=["policy", "reason"])
        for policy, why in sorted(degraded_reasons.items()):
            degraded.add_metric([policy, why or "AsExpected"], 0.0 if why is None else 1.0)
        passes_total = CounterMetricFamily(
            "certpolicy_policy_passes",
            "Evaluation passes of the policy (each evaluates everything it selects) since the operator started.",
            labels=["policy"])
        for policy, n in sorted(passes.items()):
            passes_total.add_metric([policy], n)
        yield from (not_after, findings, compliant, selected, violating, rotation, rotation_finished, degraded,
                    passes_total)
        yield from self._object_findings(reports)
        build = GaugeMetricFamily("certpolicy_build_info", "The operator's version (always 1).",
                                  labels=["version", "python_version"])
        build.add_metric([__version__, platform.python_version()], 1.0)
        yield build
        inv = self.inventory
        if inv is not None:
            secrets = GaugeMetricFamily("certpolicy_inventory_secrets", "TLS Secrets in the inventory.")
            secrets.add_metric([], len(inv.secrets))
            yield secrets
            relists = GaugeMetricFamily("certpolicy_watch_relists", "Relists after 410 Gone, by watch.",
                                        labels=["watch"])
            events = CounterMetricFamily("certpolicy_watch_events", "Watch events received, by watch.",
                                         labels=["watch"])
            errors = CounterMetricFamily("certpolicy_watch_errors", "Watch or list failures (retried), by watch.",
                                         labels=["watch"])
            synced = GaugeMetricFamily("certpolicy_watch_synced", "1 once the watch's initial list is complete.",
                                       labels=["watch"])
            silence = GaugeMetricFamily(
                "certpolicy_watch_silence_seconds",
                "Seconds since the watch last heard from the API server (a list page, an event or a bookmark).",
                labels=["watch"])
            now = time.monotonic()
            up = GaugeMetricFamily(
                "certpolicy_watch_up",
                "1 while the watch's thread runs, its initial list is done and it heard from the API server "
                "within the liveness window.", labels=["watch"])
            parse_errors = CounterMetricFamily(
                "certpolicy_watch_parse_errors",
                "Objects from the watch whose certificates or stores could not be fully read (each is a finding).",
                labels=["watch"])
            window = inv.watch_timeout + 90
            for w in inv.all_watchers():
                alive = w._thread.is_alive() and w.synced.is_set() and now - w.last_activity <= window  # noqa: SLF001
                up.add_metric([w.name], 1.0 if alive else 0.0)
                parse_errors.add_metric([w.name], getattr(w.store, "parse_errors", 0))
                relists.add_metric([w.name], w.relists)
                events.add_metric([w.name], w.events)
                errors.add_metric([w.name], w.errors)
                synced.add_metric([w.name], 1.0 if w.synced.is_set() else 0.0)
                silence.add_metric([w.name], max(0.0, now - w.last_activity))
            yield from (relists, events, errors, synced, silence, up, parse_errors)

    @staticmethod
    def _object_findings(reports: dict[str, PolicyReport]) -> Iterator[GaugeMetricFamily]:
        """``certpolicy_secret_findings``: 1 per violating object and reason, for alert routing by
        the object's namespace. Labels are ``secret_namespace``/``secret_name`` (not ``namespace``,
        which Prometheus sets to the scrape target's own namespace)."""
        series = GaugeMetricFamily(
            "certpolicy_secret_findings",
            "1 for each Warning or Critical finding reason on a selected Secret, trust store or caBundle holder.",
            labels=["secret_namespace", "secret_name", "kind", "policy", "reason", "severity"])
        dropped = GaugeMetricFamily("certpolicy_secret_findings_dropped",
                                    f"Finding series not exported for the policy (beyond {MAX_FINDING_SERIES}).",
                                    labels=["policy"])
        for policy, report in sorted(reports.items()):
            n = over = 0
            for result in report.results:
                if not result.violating:
                    continue
                for f in {(f.reason, f.severity.label): None for f in result.problems}:
                    if n >= MAX_FINDING_SERIES:
                        over += 1
                        continue
                    n += 1
                    series.add_metric([result.namespace, result.name, result.kind, policy, f[0], f[1]], 1.0)
            dropped.add_metric([policy], over)
        yield series
        yield dropped


COLLECTOR = PolicyCollector()
REGISTRY.register(COLLECTOR)
_server_lock = threading.Lock()
_server: tuple | None = None

PORT_ENV, ADDR_ENV = "CERTPOLICY_METRICS_PORT", "CERTPOLICY_METRICS_ADDR"
DEFAULT_PORT = 9090


class MetricsUnavailable(RuntimeError):
    """The /metrics endpoint cannot be served as configured.

    The operator stops rather than run without it or on another port: Prometheus scrapes the
    configured port (the Service and the alerts in manifests/ point at it), so an operator that
    quietly moved elsewhere would look healthy while every certificate alert went silent.
    """


def configured_port() -> int:
    """``CERTPOLICY_METRICS_PORT``: 9090 by default, 0 for any free port, -1 for no endpoint."""
    raw = os.environ.get(PORT_ENV, str(DEFAULT_PORT)).strip()
    try:
        port = int(raw)
    except ValueError:
        raise MetricsUnavailable(f"{PORT_ENV}={raw!r} is not a port number (0 = any free port, -1 = none)") from None
    if not -1 <= port <= 65535:
        raise MetricsUnavailable(f"{PORT_ENV}={port} is out of range (1-65535; 0 = any free port, -1 = none)")
    return port


def configured_addr() -> str:
    return os.environ.get(ADDR_ENV, "0.0.0.0")  # noqa: S104 - scraped from inside the cluster


def serve(port: int, addr: str = "0.0.0.0") -> int:  # noqa: S104 - scraped from inside the cluster
    """Start the /metrics endpoint once per process; returns the bound port.

    Raises :class:`MetricsUnavailable` with an actionable message when the port is taken.
    """
    global _server
    with _server_lock:
        if _server is None:
            try:
                server, _thread = start_http_server(port, addr=addr)
            except OSError as e:
                raise MetricsUnavailable(
                    f"cannot serve metrics on {addr}:{port}: {e.strerror or e}. Another process holds the port: "
                    f"choose a free one with --metrics-port or {PORT_ENV} (0 = any free port, -1 = no "
                    "metrics endpoint)") from None
            _server = (server, server.server_address[1])
        return _server[1]

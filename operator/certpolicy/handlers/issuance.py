"""Leaves issued from the policy's CA into ``kubernetes.io/tls`` Secrets, and renewed in time.

Every certificate is judged by the validation engine against the policy *before* it is written:
a leaf that would violate the policy is never written, the reason becomes a Degraded condition.
Re-issues are rate-capped (``spec.issuanceLimits.perMinute``) so a rotation or a policy edit
does not restart every workload at once.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from kubernetes.client import ApiException

from certpolicy.environment import allow_system_namespaces
from certpolicy.handlers.castore import CASecret
from certpolicy.handlers.context import PassContext
from certpolicy.handlers.problems import Problem
from certpolicy.inventory.records import SecretRecord, parse_secret_object
from certpolicy.kube.managed import NotManaged, b64, sync_managed_secret_metadata, write_managed_secret
from certpolicy.kube.ownership import MANAGED_BY, ROLE_LEAF, refused_namespace
from certpolicy.pki.chain import verify_chain
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.pki.inspect import summarize
from certpolicy.pki.issue import issue_leaf
from certpolicy.pki.secretdata import KeyStatus, material_from_secret
from certpolicy.policy.durations import parse_duration
from certpolicy.policy.evaluate import evaluate
from certpolicy.policy.findings import Severity
from certpolicy.timestamps import rfc3339

MAX_LISTED = 100


class RateLimiter:
    """A token bucket: ``per_minute`` issues, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.per_minute = max(1, per_minute)
        self.tokens = float(self.per_minute)
        self.updated = time.monotonic()
        self.lock = threading.Lock()

    def allow(self) -> bool:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.per_minute, self.tokens + (now - self.updated) * self.per_minute / 60.0)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return True
            return False

    def refund(self) -> None:
        """Give back a token taken for an attempt that wrote nothing (rejected, not ours)."""
        with self.lock:
            self.tokens = min(float(self.per_minute), self.tokens + 1)

    def next_token_in(self) -> float:
        with self.lock:
            return max(0.0, (1 - self.tokens) * 60.0 / self.per_minute)


@dataclass
class IssuanceReport:
    entries: list[dict[str, Any]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    issued: int = 0
    next_renewal: dt.datetime | None = None
    rate_limited: bool = False

    def status(self) -> dict[str, Any]:
        ready = sum(1 for e in self.entries if e["state"] == "Ready")
        return {"total": len(self.entries), "ready": ready, "secrets": self.entries[:MAX_LISTED]}


def _wanted_names(item: Mapping[str, Any]) -> tuple[set[str], set[str], set[str]]:
    dns = set(item.get("dnsNames") or ())
    ips = {str(ipaddress.ip_address(i)) for i in item.get("ipAddresses") or ()}
    usages = set(item.get("usages") or ("serverAuth", "clientAuth"))
    return dns, ips, usages


RESERVED_PREFIX = "certpolicy.io/"


def secret_template(item: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
    """The entry's ``secretTemplate`` labels and annotations, without the operator's reserved keys
    (the CRD refuses them; this keeps an old object from overriding ``managed-by``)."""
    template = item.get("secretTemplate") or {}
    labels = {str(k): str(v) for k, v in (template.get("labels") or {}).items() if not str(k).startswith(RESERVED_PREFIX)}
    annotations = {str(k): str(v) for k, v in (template.get("annotations") or {}).items()
                   if not str(k).startswith(RESERVED_PREFIX)}
    return labels, annotations


def _sync_labels(ctx: PassContext, rec: SecretRecord, item: Mapping[str, Any], report: IssuanceReport) -> SecretRecord:
    """Bring a valid issued Secret's labels in line with ``secretTemplate`` (no re-issue needed)."""
    labels, annotations = secret_template(item)
    current = rec.label_map
    if current.get(MANAGED_BY) != ctx.name or all(current.get(k) == v for k, v in labels.items()):
        return rec
    try:
        written = sync_managed_secret_metadata(ctx.raw, rec.namespace, rec.name, ctx.policy, labels, annotations,
                                               rec.resource_version)
    except NotManaged:
        return rec
    except ApiException as e:
        if e.status != 409:
            report.problems.append(Problem("IssuanceFailed",
                                           f"labelling {rec.namespace}/{rec.name} failed: HTTP {e.status}"))
        return rec
    ctx.inventory.secrets.upsert(written.obj)
    return parse_secret_object(written.obj)


def reissue_reason(rec: SecretRecord | None, item: Mapping[str, Any], ca: CASecret, now: dt.datetime) -> str | None:
    """Why this Secret needs a new certificate now, or None."""
    if rec is None:
        return "Missing"
    leaf = rec.material.leaf
    if leaf is None:
        return "Unreadable"
    result = verify_chain(leaf, (), [ca.key_pair.cert], now)
    if not result.trusted:
        return "IssuerChanged"
    s = summarize(leaf)
    dns, ips, usages = _wanted_names(item)
    if set(s.dns_names) != dns or {str(i) for i in s.ip_addresses} != ips or not usages <= set(s.extended_key_usages):
        return "SpecChanged"
    if now >= s.not_after - parse_duration(item.get("renewBefore", "720h")):
        return "Renewal"
    if rec.material.key_status is not KeyStatus.MATCH:
        return "KeyMismatch"
    return None


def issuance_stage(ctx: PassContext, *, issuer: CASecret, trusted: Sequence[x509.Certificate]) -> None:
    """The issuance stage: issue or renew every ``spec.issuance`` entry that needs it, within the
    policy's rate limit; ``trusted`` is the bundle its peers use, against which a new leaf is judged."""
    memory = ctx.memory
    limit = int((ctx.spec.get("issuanceLimits") or {}).get("perMinute", 60))
    if memory.limiter is None or memory.limiter.per_minute != limit:
        memory.limiter = RateLimiter(limit)
    issued = issue_all(ctx, items=ctx.spec["issuance"], issuer=issuer, trusted=trusted, limiter=memory.limiter)
    ctx.out.problems += issued.problems
    ctx.out.status["issued"] = issued.status()
    ctx.out.wake_by(issued.next_renewal)
    if issued.rate_limited:
        ctx.out.wake_by(ctx.now + dt.timedelta(seconds=memory.limiter.next_token_in() + 0.1))


def issue_all(ctx: PassContext, *, items: Sequence[Mapping[str, Any]], issuer: CASecret,
              trusted: Sequence[x509.Certificate], limiter: RateLimiter,
              only_for: set[tuple[str, str]] | None = None) -> IssuanceReport:
    """Issue or renew each entry that needs it (within the rate limit); report every entry's state."""
    report = IssuanceReport()
    now = ctx.now
    for item in items:
        key = (item["namespace"], item["secretName"])
        rec = ctx.inventory.secret(key)
        reason = reissue_reason(rec, item, issuer, now)
        state, message = "Ready", ""
        refused = refused_namespace(key[0], ctx.namespace, allow_system_namespaces())
        if refused:
            state, message = "Refused", refused
            report.problems.append(Problem("IssuanceRefused", f"{key[0]}/{key[1]}: {refused}"))
        elif reason and (only_for is None or key in only_for):
            if not limiter.allow():
                state, message = "Pending", f"{reason}: waiting for the issuance rate limit"
                report.rate_limited = True
            else:
                state, message, rec = _issue_one(ctx, item, issuer=issuer, trusted=trusted, reason=reason,
                                                 report=report)
                if state in ("Rejected", "NotManaged"):
                    # Nothing was written: the token must not be used up, or an entry that can never
                    # be written would starve the valid entries behind it (perMinute: 1 -> none ever).
                    limiter.refund()
        elif reason:
            state, message = "Pending", reason
        elif rec is not None and item.get("secretTemplate"):
            rec = _sync_labels(ctx, rec, item, report)
        entry = {"namespace": key[0], "name": key[1], "state": state}
        if message:
            entry["message"] = message[:300]
        if rec is not None and rec.material.leaf is not None:
            s = summarize(rec.material.leaf)
            entry["notAfter"] = rfc3339(s.not_after)
            entry["fingerprint"] = s.fingerprint
            renew_at = s.not_after - parse_duration(item.get("renewBefore", "720h"))
            if renew_at > now and (report.next_renewal is None or renew_at < report.next_renewal):
                report.next_renewal = renew_at
        report.entries.append(entry)
    return report


def _issue_one(ctx: PassContext, item: Mapping[str, Any], *, issuer: CASecret, trusted: Sequence[x509.Certificate],
               reason: str, report: IssuanceReport) -> tuple[str, str, SecretRecord | None]:
    raw, inventory, now = ctx.raw, ctx.inventory, ctx.now
    ns, name = item["namespace"], item["secretName"]
    kp = issue_leaf(
        issuer.key_pair, common_name=item.get("commonName"), dns_names=item.get("dnsNames") or (),
        ip_addresses=item.get("ipAddresses") or (), usages=item.get("usages") or ("serverAuth", "clientAuth"),
        validity=parse_duration(item.get("validity", "2160h")), key_algorithm=item.get("keyAlgorithm", "ECDSAP256"),
        now=now,
    )
    data = {"tls.crt": kp.cert_pem, "tls.key": kp.key_pem, "ca.crt": issuer.key_pair.cert_pem}
    # Judge it exactly as the reconciler will judge the stored Secret, before anything is written.
    material = material_from_secret("kubernetes.io/tls", {k: b64(v) for k, v in data.items()})
    verdict = evaluate(ctx.requirements, material, list(trusted), now)
    if not verdict.compliant:
        reasons = ", ".join(sorted({f.reason for f in verdict.findings if f.severity >= Severity.WARNING}))
        problem = Problem("IssuanceRejected", f"the certificate for {ns}/{name} would violate the policy ({reasons}); "
                                              "nothing was written")
        report.problems.append(problem)
        return "Rejected", problem.message, inventory.secret((ns, name))
    labels, annotations = secret_template(item)
    try:
        written = write_managed_secret(raw, ns, name, ctx.policy, data, role=ROLE_LEAF, labels=labels,
                                       annotations={**annotations, "certpolicy.io/issued-by": issuer.fingerprint,
                                                    "certpolicy.io/issue-reason": reason})
    except NotManaged as e:
        report.problems.append(Problem("SecretNotManaged", str(e)))
        return "NotManaged", str(e), inventory.secret((ns, name))
    except ApiException as e:
        report.problems.append(Problem("IssuanceFailed", f"writing {ns}/{name} failed: HTTP {e.status}"))
        return "Error", f"HTTP {e.status}", inventory.secret((ns, name))
    report.issued += 1
    # Feed the written object to the inventory at once, so the next pass does not issue twice
    # while the watch event is still on its way.
    inventory.secrets.upsert(written.obj)
    return "Ready", f"issued ({reason}) from CA {fingerprint(issuer.key_pair.cert)[7:19]}", parse_secret_object(written.obj)

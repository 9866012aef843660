"""One evaluation pass of one CertificatePolicy: select, evaluate, report, write what changed.

Runs in a worker thread (it is CPU work plus blocking API calls) and is idempotent: the status is
derived from the cluster each time, written only when it differs, and events are posted only for
transitions (see ``certpolicy.kube.events`` for why a restart does not duplicate them).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import time
from collections.abc import Mapping
from typing import Any

from kubernetes.client import ApiException

from certpolicy import KIND
from certpolicy.handlers.bundles import distribute, read_truststore_password
from certpolicy.handlers.ca import ensure_ca, record_history, retire, retired_fingerprints, trusted_certificates
from certpolicy.handlers.rotation import observe, perform
from certpolicy.handlers.issuance import RateLimiter, issue_all
from certpolicy.handlers.runtime import PolicyMemory, Runtime
from certpolicy.handlers.settings import operator_namespace
from certpolicy.inventory.interest import BundleSource, Reads
from certpolicy.inventory.selection import select
from certpolicy.kube.conditions import COMPLIANT, DEGRADED, READY, Condition, find, merge_conditions, rfc3339
from certpolicy.kube.events import ObjectRef
from certpolicy.kube.ownership import Owner
from certpolicy.kube.rawapi import redact
from certpolicy.kube.status import describe_change, patch_status, policy_path, status_changed
from certpolicy.metrics import COLLECTOR, EVENTS_POSTED, RECONCILE_DURATION, STATUS_WRITES
from certpolicy.policy.report import PolicyReport, Problem, SecretResult, build_report
from certpolicy.pki.inspect import summarize
from certpolicy.policy.spec import PolicySpecError, requirements_from_spec
from certpolicy.rotation import PromoteNewCA, RotationSettings, RotationState, StateError, decide

log = logging.getLogger("certpolicy.reconcile")

MAX_EVENTS_PER_PASS = 100
#: Bundle target states that make the policy Degraded, and the reason they are reported under.
TARGET_FAILURES = {"Error": "BundleTargetFailed", "NotManaged": "BundleTargetNotOwned",
                   "Refused": "BundleTargetRefused", "Conflict": "BundleTargetConflict"}
MAX_SUBPATH = 50
RESYNC = dt.timedelta(minutes=10)
ERROR_RETRY = dt.timedelta(seconds=30)
SYNC_RETRY = dt.timedelta(seconds=1)


def _policy_ref(policy: Mapping[str, Any]) -> ObjectRef:
    meta = policy["metadata"]
    return ObjectRef(kind=KIND, name=meta["name"], uid=meta.get("uid", ""), api_version="certpolicy.io/v1alpha1")


def _trust_bundle(runtime: Runtime, source: BundleSource | None) -> tuple[tuple | None, list[Problem]]:
    if source is None:
        return None, []
    record, read = runtime.inventory.bundle(source.kind, source.namespace, source.name)
    if record is None:
        if not read:
            return None, [Problem("TrustBundleUnreadable",
                                  f"the trust bundle {source} could not be read yet (access denied or API error)")]
        return None, [Problem("TrustBundleMissing", f"the trust bundle {source} does not exist; "
                                                    "chains are not checked until it does")]
    key = source.key
    if not record.has_key(key):
        return None, [Problem("TrustBundleMissing", f"the trust bundle {source} has no key {key!r}")]
    certs = record.certs(key)
    if not certs:
        return None, [Problem("TrustBundleEmpty", f"the trust bundle {source} key {key!r} holds no certificate")]
    return certs, []


def _post_secret_events(runtime: Runtime, policy_name: str, memory: PolicyMemory, results: list[SecretResult],
                        records: dict[tuple[str, str], Any], now: dt.datetime) -> None:
    posted = 0
    seen: set[str] = set()
    for result in results:
        rec = records[(result.namespace, result.name)]
        seen.add(rec.uid)
        sig = result.signature
        previous = memory.signatures.get(rec.uid)
        if previous == sig:
            continue
        if posted >= MAX_EVENTS_PER_PASS:
            continue  # reported in a later pass; the policy's status already counts it
        obj = ObjectRef(kind="Secret", name=rec.name, namespace=rec.namespace, uid=rec.uid,
                        resource_version=rec.resource_version)
        if sig:
            problems = result.problems
            detail = "; ".join(f.message for f in problems[:3])
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            message = f"CertificatePolicy {policy_name}: {detail}{more}"
            if runtime.recorder.post(obj, "Warning", problems[0].reason, message,
                                     [policy_name, rec.resource_version, *sig], now):
                EVENTS_POSTED.labels("Warning").inc()
            posted += 1
        elif previous:  # known violating before, compliant now
            if runtime.recorder.post(obj, "Normal", "Compliant",
                                     f"CertificatePolicy {policy_name}: the certificate now complies",
                                     [policy_name, rec.resource_version, "compliant"], now):
                EVENTS_POSTED.labels("Normal").inc()
            posted += 1
        memory.signatures[rec.uid] = sig
    for uid in [u for u in memory.signatures if u not in seen]:
        del memory.signatures[uid]


def _subpath_mounts(runtime: Runtime, policy_name: str, memory: PolicyMemory, selection, now) -> list[dict]:
    entries = []
    for (ns, secret), mounts in sorted(selection.mounts.items()):
        for m in mounts:
            if not m.sub_path:
                continue
            entries.append({"namespace": ns, "pod": m.pod, "secret": secret})
            key = (ns, m.pod, secret)
            if key not in memory.subpath_reported:
                memory.subpath_reported.add(key)
                runtime.recorder.post(
                    ObjectRef(kind="Pod", name=m.pod, namespace=ns), "Warning", "SubPathMount",
                    f"CertificatePolicy {policy_name}: Secret {secret} is mounted with subPath; "
                    "the Pod will never see a renewed certificate until it is restarted",
                    [policy_name, secret], now)
    return entries[:MAX_SUBPATH]


def reconcile_policy(runtime: Runtime, name: str) -> dt.datetime | None:
    """Evaluate the policy and write its status; returns when it must run again (None: deleted)."""
    started = time.monotonic()
    now = dt.datetime.now(dt.timezone.utc)
    try:
        policy = runtime.raw.get(policy_path(name))
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    spec = policy.get("spec") or {}
    status = policy.get("status") or {}
    generation = policy["metadata"].get("generation")
    memory = runtime.memory(name)
    # No verdict from a partial view: what the policy reads is held (named Secrets read now) and
    # it is judged only once all of it is synced; until then its status is left as it is.
    if not runtime.inventory.declare(name, Reads.of(spec, operator_namespace())):
        log.debug("policy %s: waiting for the sources it reads to sync", name)
        return now + SYNC_RETRY

    try:
        requirements = requirements_from_spec(spec.get("requirements") or {})
    except PolicySpecError as e:
        conditions = merge_conditions(status.get("conditions"), [
            Condition(READY, False, "InvalidSpec", str(e)),
        ], generation, now)
        new_status = {"observedGeneration": generation, "conditions": conditions}
        if status_changed(status, new_status):
            patch_status(runtime.raw, name, new_status)
            runtime.recorder.post(_policy_ref(policy), "Warning", "InvalidSpec", str(e), [str(generation)], now)
        return now + RESYNC

    bundle, problems = _trust_bundle(runtime, BundleSource.of(spec.get("requirements")))
    managed = _manage_ca_bundles_issuance(runtime, policy, spec, status, requirements, memory, now, bundle)
    problems += managed.problems
    if bundle is None and managed.trusted and not (spec.get("requirements") or {}).get("trustBundle"):
        bundle = tuple(managed.trusted)  # no explicit bundle: leaves must chain to the policy's own CAs
    selector = spec.get("selector") or {}
    selection = select(runtime.inventory, selector)
    for ns, n in selection.missing:
        problems.append(Problem("SecretNotFound", f"the Secret {ns}/{n} named in spec.selector.names does not exist"))

    secrets = list(selection.secrets)
    evaluations = runtime.evaluator.evaluate_many(requirements, [rec.material for rec in secrets], bundle, now)
    results = [SecretResult(rec.namespace, rec.name, ev) for rec, ev in zip(secrets, evaluations)]
    records = {(rec.namespace, rec.name): rec for rec in secrets}
    report = build_report(results, now, degraded=problems, resync=RESYNC)

    _post_secret_events(runtime, name, memory, results, records, now)
    subpath = _subpath_mounts(runtime, name, memory, selection, now)
    new_status = _status(report, status, generation, now, subpath, managed.conditions)
    new_status.update(managed.status)
    if managed.next_at and (report.next_evaluation is None or managed.next_at < report.next_evaluation):
        new_status["nextEvaluationTime"] = rfc3339(managed.next_at)
        report = dataclasses.replace(report, next_evaluation=managed.next_at)
    _post_policy_transition(runtime, policy, status, new_status, report, now)

    change = describe_change(status, new_status)
    if change:
        log.info("policy %s: %s", name, change)
    wrote = False
    if (status_changed(status, new_status) or memory.last_status_write is None
            or time.monotonic() - memory.last_status_write > RESYNC.total_seconds()):
        patch_status(runtime.raw, name, new_status)
        memory.last_status_write = time.monotonic()
        STATUS_WRITES.inc()
        wrote = True
    COLLECTOR.update(name, report)
    runtime.sweep_caches()
    RECONCILE_DURATION.observe(time.monotonic() - started)
    log.debug("policy %s: %d selected, %d violating, status %s", name, report.selected, report.violating,
              "written" if wrote else "unchanged")
    return report.next_evaluation


def report_failure(runtime: Runtime, name: str, error: BaseException) -> None:
    """A pass that raised still leaves its trace on the policy: ``Degraded=True/ReconcileFailed``
    with the error's type and first line (redacted like API errors), so nobody has to read the
    operator's log to learn why a policy has no status or a stale one. Best effort: if the API is
    what failed, this fails too and the next attempt reports."""
    now = dt.datetime.now(dt.timezone.utc)
    first = (str(error).splitlines() or [""])[0]
    message = redact(f"the evaluation pass failed ({type(error).__name__}: {first}); it is retried every "
                     f"{int(ERROR_RETRY.total_seconds())} s")
    try:
        policy = runtime.raw.get(policy_path(name))
        status = policy.get("status") or {}
        conditions = merge_conditions(status.get("conditions"), [Condition(DEGRADED, True, "ReconcileFailed", message)],
                                      policy["metadata"].get("generation"), now)
        if conditions != status.get("conditions"):
            patch_status(runtime.raw, name, {"conditions": conditions})
            runtime.recorder.post(_policy_ref(policy), "Warning", "ReconcileFailed", message,
                                  ["ReconcileFailed", type(error).__name__, first[:100]], now)
    except Exception:  # noqa: BLE001 - the loop logs the original error; this one adds nothing
        log.debug("could not report the failure on policy %s", name, exc_info=True)


@dataclasses.dataclass
class Managed:
    """What the CA, bundle and issuance stages produced for this pass."""

    trusted: list = dataclasses.field(default_factory=list)
    problems: list[Problem] = dataclasses.field(default_factory=list)
    status: dict[str, Any] = dataclasses.field(default_factory=dict)
    conditions: list[Condition] = dataclasses.field(default_factory=list)
    next_at: dt.datetime | None = None


def _manage_ca_bundles_issuance(runtime: Runtime, policy: Mapping[str, Any], spec: Mapping[str, Any],
                                status: Mapping[str, Any], requirements, memory: PolicyMemory,
                                now: dt.datetime, explicit_bundle: tuple | None = None) -> Managed:
    """The CA, its rotation, the trust bundles and the issued leaves, in that order."""
    out = Managed()
    if not spec.get("ca"):
        return out
    name = policy["metadata"]["name"]
    owner = Owner.of(policy)
    ca_status = dict(status.get("ca") or {})
    history = list(ca_status.get("history") or [])
    ca, problems = ensure_ca(runtime.raw, owner, spec["ca"], now, history)
    out.problems += problems
    for p in problems:
        if p.reason == "CAMissing":
            runtime.recorder.post(_policy_ref(policy), "Warning", "CAMissing", p.message,
                                  [p.reason, p.message], now)

    # --- the rotation machine: observe, decide, act ------------------------------------------------
    running = False
    new_pair = None
    if ca is not None:
        try:
            state = RotationState.from_dict(status.get("rotation"))
        except StateError as e:
            state = RotationState()
            out.problems.append(Problem("RotationStateUnreadable", f"status.rotation was reset: {e}"))
        try:
            settings = RotationSettings.from_spec(spec)
        except PolicySpecError as e:
            out.problems.append(Problem("RotationSettingsInvalid", str(e)))
            return out
        passwords = {}
        for i, entry in enumerate(spec.get("trustBundles") or ()):
            p12 = (entry.get("formats") or {}).get("pkcs12")
            if p12:
                passwords[i], _ = read_truststore_password(runtime.raw, p12.get("passwordSecretRef"))
        annotations = policy["metadata"].get("annotations") or {}
        obs, pairs = observe(runtime.raw, runtime.inventory, spec, annotations, state, settings, memory.rotation,
                             now, passwords, owner)
        decision = decide(state, obs, settings, now)
        outcome = perform(runtime.raw, runtime.inventory, runtime.recorder, policy, spec, requirements, decision,
                          pairs, memory.rotation, now)
        out.problems += outcome.problems
        out.status["rotation"] = decision.state.to_dict()
        out.conditions.append(decision.condition)
        out.next_at = decision.next_wake
        current = decision.state.current
        running = current is not None
        COLLECTOR.set_rotation_step(name, current.step if current else 0, decision.state.history)
        if any(isinstance(a, PromoteNewCA) for a in decision.actions):
            ca, problems = ensure_ca(runtime.raw, owner, spec["ca"], now, history)  # it holds the new CA now
            out.problems += problems
        if running and current.new_ca and current.new_ca_secret_name in pairs:
            new_pair = pairs[current.new_ca_secret_name]
        retired = set(decision.state.retired_fingerprints())
    else:
        retired = set()

    issuer = ca
    if ca is not None:
        history = record_history(history, ca, now)
        s = summarize(ca.key_pair.cert)
        ca_status.update({"secretName": ca.secret_name, "fingerprint": ca.fingerprint,
                          "notAfter": rfc3339(s.not_after), "subject": s.subject})
    if new_pair is not None and (ca is None or new_pair.fingerprint != ca.fingerprint):
        history = record_history(history, new_pair, now, state="next")
    history = retire(history, retired, now)
    ca_status["history"] = history
    out.status["ca"] = ca_status
    out.trusted = trusted_certificates(history)
    retired |= retired_fingerprints(history)
    if running:
        return out  # bundles and leaves move only through the rotation's own actions meanwhile

    if spec.get("trustBundles") and out.trusted:
        bundles = distribute(runtime.raw, runtime.inventory, owner, spec["trustBundles"], out.trusted, retired,
                             issuer.fingerprint if issuer else None)
        out.problems += bundles.problems
        for t in bundles.targets:
            if t.state in TARGET_FAILURES:
                out.problems.append(Problem(TARGET_FAILURES[t.state], f"{t.kind} {t.namespace}/{t.name}: {t.message}"))
        out.status["bundleTargets"] = bundles.status()
    if spec.get("issuance") and issuer is not None:
        limit = int((spec.get("issuanceLimits") or {}).get("perMinute", 60))
        if memory.limiter is None or memory.limiter.per_minute != limit:
            memory.limiter = RateLimiter(limit)
        # Judge a new leaf against the bundle its peers use: the explicit trust bundle when the
        # policy names one (a leaf from a CA it lacks would be untrusted), else the policy's CAs.
        issued = issue_all(runtime.raw, runtime.inventory, owner, spec["issuance"], requirements, issuer,
                           list(explicit_bundle) if explicit_bundle else out.trusted, memory.limiter, now)
        out.problems += issued.problems
        out.status["issued"] = issued.status()
        out.next_at = min(filter(None, [out.next_at, issued.next_renewal]), default=None)
        if issued.rate_limited:
            retry = now + dt.timedelta(seconds=memory.limiter.next_token_in() + 0.1)
            out.next_at = min(filter(None, [out.next_at, retry]))
    return out


def _status(report: PolicyReport, old: Mapping[str, Any], generation: int | None, now: dt.datetime,
            subpath: list[dict], extra: list[Condition]) -> dict[str, Any]:
    if report.degraded:
        worst = report.degraded[0]
        msgs = "; ".join(p.message for p in report.degraded[:5])
        degraded = Condition(DEGRADED, True, worst.reason, msgs)
    else:
        degraded = Condition(DEGRADED, False, "AsExpected", "The operator can read everything this policy needs.")
    conditions = merge_conditions(old.get("conditions"), [
        Condition(READY, True, "Reconciled", f"Evaluated {report.selected} selected Secrets."),
        Condition(COMPLIANT, report.is_compliant, report.compliant_reason, report.compliant_message),
        degraded,
        *extra,
    ], generation, now)
    return {
        "observedGeneration": generation,
        "conditions": conditions,
        "summary": report.summary(),
        "violations": list(report.violations),
        "subPathMounts": subpath,
        "lastEvaluationTime": rfc3339(now),
        "nextEvaluationTime": rfc3339(report.next_evaluation) if report.next_evaluation else None,
    }


def _post_policy_transition(runtime: Runtime, policy: Mapping[str, Any], old_status: Mapping[str, Any],
                            new_status: Mapping[str, Any], report: PolicyReport, now: dt.datetime) -> None:
    old = find(old_status.get("conditions"), COMPLIANT) or {}
    new = find(new_status["conditions"], COMPLIANT) or {}
    if old.get("status") == new.get("status") and old.get("reason") == new.get("reason"):
        return
    key = [new["status"], new["reason"], str(old.get("lastTransitionTime"))]
    if new["status"] == "True":
        runtime.recorder.post(_policy_ref(policy), "Normal", "PolicyCompliant", new["message"], key, now)
    elif new["status"] == "Unknown":
        runtime.recorder.post(_policy_ref(policy), "Warning", new["reason"], new["message"], key, now)
    else:
        runtime.recorder.post(_policy_ref(policy), "Warning", "PolicyViolated", new["message"], key, now)

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
import traceback
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from cryptography import x509
from kubernetes.client import ApiException

from certpolicy.conditions import COMPLIANT, DEGRADED, ENFORCED, READY, Condition, find, merge_conditions, without
from certpolicy.environment import ERROR_RETRY, operator_namespace
from certpolicy.handlers.bundles import bundles_stage, entry_namespaces
from certpolicy.handlers.ca import ca_status_stage, ensure_ca
from certpolicy.handlers.certmanager import certificate_spec_stage
from certpolicy.handlers.context import PassContext, StageOutput, policy_object_ref
from certpolicy.handlers.deletion import expired_ca_keys_stage
from certpolicy.handlers.echoes import LastPass
from certpolicy.handlers.enforced import enforced_condition, post_enforced_transition
from certpolicy.handlers.issuance import issuance_stage
from certpolicy.handlers.problems import Problem, degraded_condition
from certpolicy.handlers.renewal import renewal_stage
from certpolicy.handlers.rotation import rotation_stage
from certpolicy.handlers.runtime import Runtime
from certpolicy.handlers.truststores import keystores_with_password, leaf_anchors, trust_stores_stage
from certpolicy.inventory.interest import Reads, bundle_source
from certpolicy.inventory.records import SecretRecord
from certpolicy.inventory.selection import Selection, select, selected_record
from certpolicy.kube.events import ObjectRef
from certpolicy.kube.ownership import Owner
from certpolicy.kube.rawapi import api_error_text, redact
from certpolicy.kube.status import describe_change, patch_status, policy_path, status_changed
from certpolicy.metrics import COLLECTOR, EVENTS_POSTED, RECONCILE_DURATION, STATUS_WRITES
from certpolicy.policy.bundleref import BundleRef
from certpolicy.policy.certmanager import name_owner
from certpolicy.policy.report import UNCHECKED_REASONS, PolicyReport, SecretResult, Unchecked, build_report
from certpolicy.policy.spec import PolicySpecError, requirements_from_spec
from certpolicy.timestamps import rfc3339

log = logging.getLogger("certpolicy.reconcile")

MAX_EVENTS_PER_PASS = 100
MAX_SUBPATH = 50
MAX_KEYS_LISTED = 10  # keys named in a TrustBundleMissing message
RESYNC = dt.timedelta(minutes=10)
SYNC_RETRY = dt.timedelta(seconds=1)


def policy_pass(runtime: Runtime, name: str) -> dt.datetime | None:
    """One pass, holding the policy's pass lock (``Runtime.exclusive``: its deletion clean-up
    waits for a pass in flight)."""
    with runtime.exclusive(name):
        return reconcile_policy(runtime, name)


def reconcile_policy(runtime: Runtime, name: str) -> dt.datetime | None:
    """Evaluate the policy and write its status; returns when it must run again (None: deleted)."""
    started = time.monotonic()
    now = dt.datetime.now(dt.UTC)
    try:
        policy = runtime.raw.get(policy_path(name))
    except ApiException as e:
        if e.status == 404:
            return None
        raise
    if policy["metadata"].get("deletionTimestamp"):
        return None  # being deleted (deletionPolicy: Delete): the delete handler owns it now
    spec = policy.get("spec") or {}
    status = policy.get("status") or {}
    generation = policy["metadata"].get("generation")
    owner = Owner.of(policy)
    # No verdict from a partial view: what the policy reads is held (named Secrets read now) and
    # it is judged only once all of it is synced; until then its status is left as it is.
    if not runtime.inventory.declare(name, Reads.of(spec, operator_namespace())):
        log.debug("policy %s: waiting for the sources it reads to sync", name)
        return now + SYNC_RETRY
    COLLECTOR.count_pass(name)
    memory = runtime.memory(name)
    memory.last_pass = read = LastPass.read(policy)

    try:
        requirements = requirements_from_spec(spec.get("requirements") or {})
    except PolicySpecError as e:
        conditions = merge_conditions(status.get("conditions"), [
            Condition(READY, False, "InvalidSpec", str(e)),
            Condition(COMPLIANT, None, "InvalidSpec", "Compliance is unknown: spec.requirements cannot be parsed, "
                                                      "so nothing was checked."),
        ], generation, now)
        COLLECTOR.not_checked(name, Unchecked("InvalidSpec", str(e)))
        new_status = {"observedGeneration": generation, "conditions": conditions}
        memory.last_pass = read.deciding(new_status)  # before the write: its echo finds it
        if status_changed(status, new_status):
            patch_status(runtime.raw, name, new_status)
            runtime.recorder.post(policy_object_ref(owner), "Warning", "InvalidSpec", str(e), [str(generation)], now)
        return now + RESYNC

    ctx = PassContext(raw=runtime.raw, inventory=runtime.inventory, recorder=runtime.recorder, policy=owner,
                      generation=generation, spec=spec, status=status, annotations=policy["metadata"].get("annotations") or {},
                      requirements=requirements, memory=memory, now=now,
                      namespace=operator_namespace(), wake=lambda: runtime.wake_threadsafe([name]))
    # The stages, in order: what the chains must lead to, then the policy's own CA, its rotation,
    # its bundles and leaves, then the evaluation of every selected Secret.
    bundle = trust_bundle_stage(ctx)
    trusted = own_ca_stages(ctx, explicit_bundle=bundle)
    if bundle is None and trusted and not (spec.get("requirements") or {}).get("trustBundle"):
        bundle = tuple(trusted)  # no explicit bundle: leaves must chain to the policy's own CAs
    def catch_up() -> None:
        _changed_secrets_first(ctx, runtime, bundle)

    catch_up()
    selection = select(ctx.inventory, spec.get("selector") or {})
    for ns, n in selection.missing:
        ctx.out.problems.append(Problem("SecretNotFound",
                                        f"the Secret {ns}/{n} named in spec.selector.names does not exist"))

    catch_up()
    results, records = _judge_secrets(ctx, runtime, selection.secrets, bundle, between=catch_up)
    # Trust stores and caBundles, each judged on its own; trustedBy stores must anchor every leaf.
    stores = trust_stores_stage(ctx, leaves=lambda: leaf_anchors(results, {k: r.material for k, r in records.items()}, bundle))
    report = build_report(results + stores, now, resync=RESYNC, unchecked=_unchecked(ctx, own_anchors=bool(trusted)),
                          nothing_selected=selection.why_empty)
    _post_store_events(ctx, stores)

    catch_up()
    _post_secret_events(ctx, results, records)
    subpath = _subpath_mounts(ctx, selection)
    enforced = enforced_condition(spec, runtime.enforcement, name)
    if enforced is not None:
        ctx.out.conditions.append(enforced)
    new_status = _status(ctx, report, subpath)
    if enforced is None:  # Audit: a condition left from an earlier Warn/Deny no longer applies
        new_status["conditions"] = without(new_status["conditions"], ENFORCED)
    new_status.update(ctx.out.status)
    next_at = ctx.out.next_at
    if next_at and (report.next_evaluation is None or next_at < report.next_evaluation):
        new_status["nextEvaluationTime"] = rfc3339(next_at)
        report = dataclasses.replace(report, next_evaluation=next_at)
    _post_policy_transition(ctx, new_status)
    _post_degraded_transition(ctx, new_status)
    post_enforced_transition(ctx, new_status)

    memory.last_pass = read.deciding(new_status)  # before the write: its echo finds it
    change = describe_change(status, new_status)
    if change:
        log.info("policy %s: %s", name, change)
    # The metrics before the status: a reader who sees the new status and then scrapes finds the
    # same verdict, never the previous (possibly green) one. A write that fails raises, and the
    # failure's report (report_failure) sets them to "not checked".
    COLLECTOR.update(name, report)
    COLLECTOR.set_degraded(name, ctx.out.problems[0].reason if ctx.out.problems else None)
    wrote = False
    if (status_changed(status, new_status) or memory.last_status_write is None
            or time.monotonic() - memory.last_status_write > RESYNC.total_seconds()):
        patch_status(runtime.raw, name, new_status)
        memory.last_status_write = time.monotonic()
        STATUS_WRITES.inc()
        wrote = True
    runtime.sweep_caches()
    RECONCILE_DURATION.observe(time.monotonic() - started)
    log.debug("policy %s: %d selected, %d violating, status %s", name, report.selected, report.violating,
              "written" if wrote else "unchanged")
    return report.next_evaluation


def _judge_secrets(ctx: PassContext, runtime: Runtime, selected: Sequence[SecretRecord],
                   bundle: tuple[x509.Certificate, ...] | None, *, whole: bool = True,
                   between: Callable[[], None] = lambda: None,
                   ) -> tuple[list[SecretResult], dict[tuple[str, str], SecretRecord]]:
    """Every judgement of the selected Secrets: the checks, renewal regressions against each
    Secret's baseline, and for a Secret that cert-manager writes, findings naming its Certificate
    plus what its spec will put into the next leaf. ``whole``: ``selected`` is the pass's whole
    selection, so the baselines are recorded and the engine's caches sized for it; a few Secrets
    judged ahead of the walk do neither. ``between`` runs between the steps (each a walk over
    every selected Secret): the pass's catch-up with Secrets changed since it began."""
    secrets = keystores_with_password(ctx, selected)  # spec.selector.passwordSecretRef
    evaluations = runtime.evaluator.evaluate_many(ctx.requirements, [rec.material for rec in secrets], bundle,
                                                  ctx.now, whole=whole, batch=ctx.name)
    between()
    results = [SecretResult(rec.namespace, rec.name, ev) for rec, ev in zip(secrets, evaluations)]
    records = {(rec.namespace, rec.name): rec for rec in secrets}
    between()
    results = renewal_stage(ctx, results, records, record=whole)
    between()
    results = [r if (cm_owner := records[(r.namespace, r.name)].cert_manager) is None
               else dataclasses.replace(r, evaluation=name_owner(r.evaluation, cm_owner)) for r in results]
    results = certificate_spec_stage(ctx, results, records)
    return results, records


def _changed_secrets_first(ctx: PassContext, runtime: Runtime, bundle: tuple[x509.Certificate, ...] | None) -> None:
    """The Secrets whose change woke this pass (at most MAX_CHANGED_SECRETS) are judged alone and
    their Warning events posted before the pass walks every selected Secret: at 100,000 selected
    Secrets that walk takes a second, and the event is what tells someone a renewal went bad. The
    judgement is the pass's own (same stages, baselines read but not written, what a stage reports
    about the policy kept out of the status), so the full walk finds the same signature and posts
    nothing twice. A Secret that now complies is left to the walk: a green word waits for all.

    Called again between the walk's steps, so a Secret changed while the walk runs is judged
    within one step (~0.3 s at 100,000 Secrets), not after the whole walk and the next pass's
    start. The walk then holds an older record of that Secret than the one judged here; its
    events skip such records (see :func:`_post_secret_events`)."""
    keys = ctx.inventory.take_changed_secrets(ctx.name)
    if not keys:
        return
    selector = ctx.spec.get("selector") or {}
    chosen = [rec for key in sorted(keys) if (rec := selected_record(ctx.inventory, selector, key)) is not None]
    if ctx.inventory.certificates_listing():
        # Their Certificates are judged by the walk, which waits (at most 5 s) for cert-manager's
        # Certificates to be listed; a catch-up between the walk's steps must not wait each time.
        chosen = [rec for rec in chosen if rec.cert_manager is None]
    if not chosen:
        return
    scratch = dataclasses.replace(ctx, out=StageOutput())  # problems about the policy: the walk reports them
    scratch.passwords, scratch.cas = ctx.passwords, ctx.cas  # still each Secret read once per pass
    results, records = _judge_secrets(scratch, runtime, chosen, bundle, whole=False)
    warnings = [r for r in results if r.signature]
    if warnings:
        _post_secret_events(ctx, warnings, records, sweep=False)
    log.debug("policy %s: %d changed Secrets judged ahead of the walk, %d with problems", ctx.name, len(results),
              len(warnings))


def report_failure(runtime: Runtime, name: str, error: BaseException) -> None:
    """A pass that raised still leaves its trace on the policy: ``Degraded=True/ReconcileFailed``
    with the error's type and first line (redacted like API errors), so nobody has to read the
    operator's log to learn why a policy has no status or a stale one."""
    # Writing this condition changes the policy, which wakes its loop: the first retry is at once.
    message = (f"the evaluation pass failed ({error_line(error)}); it is retried at once, then every "
               f"{ERROR_RETRY.seconds():g} s while it fails")
    # A pass that raised checked nothing: the last verdict is not repeated as a green one. The
    # metric first: whoever reads the status's Unknown and then scrapes must not find it green
    # (a test that did so saw the old 1 in the window between the two).
    COLLECTOR.not_checked(name, Unchecked("ReconcileFailed", message))
    unknown = Condition(COMPLIANT, None, "ReconcileFailed", f"Compliance is unknown: {message}.")
    report_problem(runtime, name, Problem("ReconcileFailed", message), [type(error).__name__, error_line(error)[:100]],
                   also=[unknown])


def error_line(error: BaseException) -> str:
    """``Type: first line`` of an exception, redacted like API errors: what a condition, an event or
    a log line may say. An API error says which request failed and the server's (redacted) message,
    not only its code."""
    if isinstance(error, ApiException):
        return redact(f"{type(error).__name__}: {api_error_text(error)}")
    first = (str(error).splitlines() or [""])[0]
    return redact(f"{type(error).__name__}: {first}")


def error_trace(error: BaseException) -> str:
    """:func:`error_line` and where the error was raised (the traceback's frames, not the text of
    the exception or of those it chains, which may echo Secret data): what the operator's log says
    about a failed pass instead of ``log.exception``."""
    frames = "".join(traceback.format_tb(error.__traceback__)).rstrip()
    return f"{error_line(error)}\n{frames}" if frames else error_line(error)


def report_problem(runtime: Runtime, name: str, problem: Problem, key_parts: list[str], *,
                   also: Sequence[Condition] = ()) -> None:
    """``Degraded=True`` with the problem's reason and message on the policy, and a Warning event of
    that reason when the condition changed: for a failure outside a pass's own status write (a
    pass that raised, a clean-up on deletion). Best effort: if the API is what failed, this fails
    too and the next attempt reports."""
    now = dt.datetime.now(dt.UTC)
    message = redact(problem.message)
    COLLECTOR.set_degraded(name, problem.reason)  # the problem stands whether or not the write below succeeds
    try:
        policy = runtime.raw.get(policy_path(name))
        status = policy.get("status") or {}
        conditions = merge_conditions(status.get("conditions"),
                                      [Condition(DEGRADED, True, problem.reason, message), *also],
                                      policy["metadata"].get("generation"), now)
        if conditions != status.get("conditions"):
            patch_status(runtime.raw, name, {"conditions": conditions})
            runtime.recorder.post(policy_object_ref(Owner.of(policy)), "Warning", problem.reason, message,
                                  [problem.reason, *key_parts], now)
    except Exception:  # noqa: BLE001 - the caller logs the original error; this one adds nothing
        log.debug("could not report %s on policy %s", problem.reason, name, exc_info=True)


def trust_bundle_stage(ctx: PassContext) -> tuple[x509.Certificate, ...] | None:
    """The certificates of ``spec.requirements.trustBundle`` (watched by the inventory), or None
    with a problem when it names none or cannot be read."""
    requirements = ctx.spec.get("requirements") or {}
    if not requirements.get("trustBundle"):
        return None
    ref = bundle_source(requirements)
    if ref is None:
        ctx.out.problems.append(Problem("TrustBundleUnreadable", "spec.requirements.trustBundle must name a "
                                                                 "configMap or a secret, with its namespace and name"))
        return None
    where = ref.where
    record, read = ctx.inventory.bundle(ref.kind, ref.namespace, ref.name)
    if record is None:
        problem = (Problem("TrustBundleUnreadable",
                           f"the trust bundle {where} could not be read yet (access denied or API error)")
                   if not read else
                   Problem("TrustBundleMissing", f"the trust bundle {where} does not exist; "
                                                 "chains are not checked until it does"))
    elif not record.has_key(ref.key):
        problem = Problem("TrustBundleMissing", f"the trust bundle {where} has no key {ref.key!r} "
                                                f"({_keys_held(record.keys())})")
    elif not (certs := record.certs(ref.key)):
        problem = Problem("TrustBundleEmpty", f"the trust bundle {where} key {ref.key!r} holds no certificate")
    else:
        return tuple(certs)
    ctx.out.problems.append(problem)
    return None


def _keys_held(keys: tuple[str, ...]) -> str:
    """Which keys a bundle object holds, names only and at most MAX_KEYS_LISTED of them."""
    if not keys:
        return "it holds no PEM key"
    more = f" and {len(keys) - MAX_KEYS_LISTED} more" if len(keys) > MAX_KEYS_LISTED else ""
    return "its PEM keys: " + ", ".join(repr(k[:63]) for k in keys[:MAX_KEYS_LISTED]) + more


def _unchecked(ctx: PassContext, *, own_anchors: bool) -> list[Unchecked]:
    """What this pass could not check (``policy.report.compliance``): the problems whose reason is
    in UNCHECKED_REASONS, and chains that must lead to the policy's own CA while it has none."""
    out = [Unchecked(p.reason, p.message) for p in ctx.out.problems if p.reason in UNCHECKED_REASONS]
    if ctx.spec.get("ca") and not (ctx.spec.get("requirements") or {}).get("trustBundle") and not own_anchors:
        out.append(Unchecked("OwnCANotAvailable", "the policy's own CA is not available (see Degraded), so no "
                                                  "chain could be checked against it"))
    return out


def own_ca_stages(ctx: PassContext, *, explicit_bundle: tuple[x509.Certificate, ...] | None
                  ) -> list[x509.Certificate]:
    """The policy's own CA, its rotation, its trust bundles and its issued leaves, in that order.
    Returns the CA certificates the policy trusts (empty without ``spec.ca``)."""
    if not ctx.spec.get("ca"):
        return []
    rotation = rotation_stage(ctx, ca=ensure_ca(ctx))
    if rotation is None:
        return []
    trusted, retired = ca_status_stage(ctx, ca=rotation.ca, next_ca=rotation.next_ca, retired=rotation.retired)
    if rotation.running:
        return trusted  # bundles and leaves move only through the rotation's own actions meanwhile
    issuer = rotation.ca
    if issuer is not None:
        expired_ca_keys_stage(ctx, keep={issuer.fingerprint})
    if ctx.spec.get("trustBundles") and trusted:
        bundles_stage(ctx, trusted=trusted, retired=retired, primary=issuer.fingerprint if issuer else None)
    if ctx.spec.get("issuance") and issuer is not None:
        # Judge a new leaf against the bundle its peers use: the explicit trust bundle when the
        # policy names one (a leaf from a CA it lacks would be untrusted), else the policy's CAs.
        issuance_stage(ctx, issuer=issuer, trusted=list(explicit_bundle) if explicit_bundle else trusted)
    return trusted


def _post_secret_events(ctx: PassContext, results: list[SecretResult],
                        records: Mapping[tuple[str, str], SecretRecord], *, sweep: bool = True) -> None:
    """An event on each Secret whose problems changed; ``sweep``: ``results`` are all selected
    Secrets, so what is remembered of the others is dropped.

    A record the inventory has replaced since the pass selected it is not reported: its judgement
    is older than what the catch-up may have posted already (a Warning for the new certificate,
    which the old one's verdict would follow with a false "now complies"), and the change that
    replaced it has woken the next pass, which judges the current record."""
    policy_name, signatures = ctx.name, ctx.memory.signatures
    posted = 0
    seen: set[str] = set()  # of the Secrets remembered with problems (a compliant one is not remembered)
    for result in results:
        rec = records[(result.namespace, result.name)]
        sig = result.signature
        previous = signatures.get(rec.uid, ())
        if previous:
            seen.add(rec.uid)
        if previous == sig:
            continue
        if _superseded(ctx, rec):
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
            if ctx.recorder.post(obj, "Warning", problems[0].reason, message,
                                 [policy_name, rec.resource_version, *sig], ctx.now):
                EVENTS_POSTED.labels("Warning").inc()
            posted += 1
        elif previous:  # known violating before, compliant now
            if ctx.recorder.post(obj, "Normal", "Compliant",
                                 f"CertificatePolicy {policy_name}: the certificate now complies",
                                 [policy_name, rec.resource_version, "compliant"], ctx.now):
                EVENTS_POSTED.labels("Normal").inc()
            posted += 1
        if sig:
            signatures[rec.uid] = sig
            seen.add(rec.uid)
        else:  # at 100,000 compliant Secrets, an entry each was ~10 MB remembering nothing
            signatures.pop(rec.uid, None)
    if not sweep:
        return
    for uid in [u for u in signatures if u not in seen]:
        del signatures[uid]


def _superseded(ctx: PassContext, rec: SecretRecord) -> bool:
    """Whether the inventory no longer holds this version of the Secret (changed or deleted)."""
    current = ctx.inventory.secret((rec.namespace, rec.name))
    return current is None or current.resource_version != rec.resource_version


def _post_store_events(ctx: PassContext, stores: list[SecretResult]) -> None:
    """An event on a trust store or caBundle holder when its problems change (like a Secret's)."""
    signatures = ctx.memory.store_signatures
    seen = set()
    for result in stores[:MAX_EVENTS_PER_PASS]:
        key = f"{result.kind}/{result.namespace}/{result.name}"
        seen.add(key)
        sig = result.signature
        previous = signatures.get(key)
        if previous == sig or (not sig and not previous):
            signatures[key] = sig
            continue
        obj = ObjectRef(kind=result.kind, name=result.name, namespace=result.namespace,
                        api_version=_API_VERSIONS.get(result.kind, "v1"))
        if sig:
            detail = "; ".join(f.message for f in result.problems[:3])
            if ctx.recorder.post(obj, "Warning", result.problems[0].reason, f"CertificatePolicy {ctx.name}: {detail}",
                                 [ctx.name, "store", *sig], ctx.now):
                EVENTS_POSTED.labels("Warning").inc()
        signatures[key] = sig
    for key in [k for k in signatures if k not in seen]:
        del signatures[key]


_API_VERSIONS = {
    "ValidatingWebhookConfiguration": "admissionregistration.k8s.io/v1",
    "MutatingWebhookConfiguration": "admissionregistration.k8s.io/v1",
    "APIService": "apiregistration.k8s.io/v1",
    "CustomResourceDefinition": "apiextensions.k8s.io/v1",
}


def _subpath_mounts(ctx: PassContext, selection: Selection) -> list[dict[str, str]]:
    """Pods that mount a selected Secret, or one of the policy's ConfigMap/Secret bundle targets,
    through subPath: a copy made when the container started, never updated (a rotation waits for
    such Pods to restart)."""
    found = [(ns, secret, m.pod, "Secret", "a renewed certificate")
             for (ns, secret), mounts in sorted(selection.mounts.items()) for m in mounts if m.sub_path]
    for entry in ctx.spec.get("trustBundles") or ():
        ref = BundleRef.parse(entry)
        if ref.kind not in ("ConfigMap", "Secret"):
            continue
        index = ctx.inventory.mounts(ref.kind)
        for ns in entry_namespaces(ctx.inventory, entry):
            found += [(ns, ref.name, m.pod, ref.kind, "an updated trust bundle")
                      for m in index.get((ns, ref.name), ()) if m.sub_path]
    entries = []
    for ns, obj_name, pod, kind, what in sorted(dict.fromkeys(found)):
        entries.append({"namespace": ns, "pod": pod, "kind": kind, "name": obj_name})
        key = (ns, pod, obj_name)
        if key not in ctx.memory.subpath_reported:
            ctx.memory.subpath_reported.add(key)
            ctx.recorder.post(
                ObjectRef(kind="Pod", name=pod, namespace=ns), "Warning", "SubPathMount",
                f"CertificatePolicy {ctx.name}: {kind} {obj_name} is mounted with subPath; "
                f"the Pod will never see {what} until it is restarted",
                [ctx.name, obj_name], ctx.now)
    return entries[:MAX_SUBPATH]


def _status(ctx: PassContext, report: PolicyReport, subpath: list[dict[str, str]]) -> dict[str, Any]:
    conditions = merge_conditions(ctx.status.get("conditions"), [
        Condition(READY, True, "Reconciled", f"Evaluated {report.selected} selected Secrets."),
        Condition(COMPLIANT, report.is_compliant, report.compliant_reason, report.compliant_message),
        degraded_condition(ctx.out.problems),
        *ctx.out.conditions,
    ], ctx.generation, ctx.now)
    return {
        "observedGeneration": ctx.generation,
        "conditions": conditions,
        "summary": report.summary(),
        "violations": list(report.violations),
        "subPathMounts": subpath,
        "lastEvaluationTime": rfc3339(ctx.now),
        "nextEvaluationTime": rfc3339(report.next_evaluation) if report.next_evaluation else None,
    }


def _post_policy_transition(ctx: PassContext, new_status: Mapping[str, Any]) -> None:
    old = find(ctx.status.get("conditions"), COMPLIANT) or {}
    new = find(new_status["conditions"], COMPLIANT) or {}
    if old.get("status") == new.get("status") and old.get("reason") == new.get("reason"):
        return
    key = [new["status"], new["reason"], str(old.get("lastTransitionTime"))]
    if new["status"] == "True":
        ctx.policy_event("Normal", "PolicyCompliant", new["message"], key)
    elif new["status"] == "Unknown":
        ctx.policy_event("Warning", new["reason"], new["message"], key)
    else:
        ctx.policy_event("Warning", "PolicyViolated", new["message"], key)


def _post_degraded_transition(ctx: PassContext, new_status: Mapping[str, Any]) -> None:
    """A Warning event on the policy when it becomes Degraded or its reason changes: every problem a
    stage records is a condition *and* an event (unless the stage posted that reason itself)."""
    old = find(ctx.status.get("conditions"), DEGRADED) or {}
    new = find(new_status["conditions"], DEGRADED) or {}
    if new.get("status") != "True" or (old.get("status") == "True" and old.get("reason") == new.get("reason")):
        return
    if new["reason"] not in ctx.out.warned:
        ctx.policy_event("Warning", new["reason"], new["message"], ["Degraded", new["reason"],
                                                                    str(old.get("lastTransitionTime"))])

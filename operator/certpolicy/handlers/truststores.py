"""The trust-store stage of a pass: label-selected trust stores and caBundles, each judged on its own.

Glue only: the inventory holds the label-selected ConfigMaps, Secrets and caBundle holders
(:mod:`certpolicy.inventory.labelled`); :mod:`certpolicy.policy.truststores` judges them. Each
store becomes one result in the policy's report, of its own kind (``ConfigMap``, ``Secret``,
``ValidatingWebhookConfiguration``, ...), so a ``TruststoreMissingAnchor`` makes the policy
non-compliant and names the store in ``status.violations``.

Passwords: a store's sibling data key was tried when the inventory read it. A store that needs a
password it did not find is read again here with ``passwordSecretRef`` (a Secret in the store's
namespace): one GET of the store and one of the password Secret (once per pass, however many
stores share it: :class:`~certpolicy.handlers.passwords.PasswordSecrets`), remembered by resourceVersion,
so an unchanged store is not read twice. The password never leaves the pass. A selected
Secret's own keystore (``spec.selector.passwordSecretRef``) is read again the same way, by
:func:`keystores_with_password`, with the same password reader.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as dt
import fnmatch
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from cryptography import x509
from kubernetes.client import ApiException

from certpolicy.handlers.context import PassContext
from certpolicy.handlers.problems import Problem
from certpolicy.inventory.labelled import CABUNDLE_KINDS, TRUSTSTORE_KINDS, watch_key
from certpolicy.inventory.records import CABundleRecord, SecretRecord, TruststoreDataKey, TruststoreRecord
from certpolicy.kube.selectors import LabelSelector
from certpolicy.pki.certstores import is_truststore_key, read_certstore
from certpolicy.pki.load import LoadProblem
from certpolicy.pki.secretdata import KeyStatus, SecretMaterial, material_from_secret
from certpolicy.policy.evaluate import Evaluation
from certpolicy.policy.findings import Finding
from certpolicy.policy.report import SecretResult
from certpolicy.policy.spec import TruststoreSelection, password_ref_from_spec, truststore_selection_from_spec
from certpolicy.policy.truststores import LeafAnchor, check_truststore, missing_anchors

T = TypeVar("T")

log = logging.getLogger("certpolicy.stores")
MAX_TRUSTSTORES = 500  # stores (and caBundle holders) judged per policy and pass: the rest are counted in a problem
STORES_NOT_JUDGED = "TrustStoresNotJudged"  # that problem's reason (Degraded; Compliant=Unknown)
MAX_PASSWORD_READS = 50  # stores re-read with a passwordSecretRef per pass


def _selected_truststores(ctx: PassContext, sel: TruststoreSelection) -> list[TruststoreRecord]:
    query = LabelSelector.from_spec(sel.selector_spec()).to_query()
    ns_sel = LabelSelector.from_spec(sel.namespace_selector_spec())
    out: dict[tuple[str, str, str], TruststoreRecord] = {}
    for kind in TRUSTSTORE_KINDS:
        for (ns, name), rec in ctx.inventory.labelled_records(watch_key(kind, query)).items():
            if ns_sel.empty or ns_sel.matches(ctx.inventory.namespace_labels(ns)):
                out[(rec.kind, ns, name)] = rec
    return [out[k] for k in sorted(out)]


def _wanted(entry: TruststoreDataKey, sel: TruststoreSelection) -> bool:
    if sel.keys:
        return any(fnmatch.fnmatchcase(entry.key, p) for p in sel.keys)
    return is_truststore_key(entry.key)


def _password(ctx: PassContext, namespace: str, secret: str, key: str) -> tuple[bytes | None, str | None, str]:
    """(password, the password Secret's resourceVersion, why not) from ``passwordSecretRef``:
    the one place a keystore or trust store password is read from a Secret. ``why`` names the
    Secret and the reason, never the password."""
    try:
        pw_obj = ctx.passwords.get(namespace, secret)  # once per pass, however many stores share it
    except ApiException as e:
        return None, None, f"the password Secret {namespace}/{secret} could not be read (HTTP {e.status})"
    if pw_obj is None:
        return None, None, f"the password Secret {namespace}/{secret} does not exist"
    version = (pw_obj.get("metadata") or {}).get("resourceVersion")
    try:
        password = base64.b64decode((pw_obj.get("data") or {}).get(key) or "", validate=True).strip()
    except (binascii.Error, ValueError):
        password = None
    if not password:
        return None, version, f"the password Secret {namespace}/{secret} has no usable key {key!r}"
    return password, version, ""


def _remember(ctx: PassContext, cache_key: tuple, versions: tuple, result: T) -> T:
    ctx.memory.store_reads.put(cache_key, (versions, result))
    return result


def _with_password(ctx: PassContext, rec: TruststoreRecord, entry: TruststoreDataKey, sel: TruststoreSelection,
                   budget: list[int]) -> TruststoreDataKey:
    """Re-read a store that needs a password, with ``passwordSecretRef``; else the entry as it was."""
    if not entry.needs_password or not sel.password_secret or budget[0] <= 0:
        return entry
    cache_key = (rec.kind, rec.namespace, rec.name, entry.key, sel.password_secret, sel.password_key)
    password, pw_version, why = _password(ctx, rec.namespace, sel.password_secret, sel.password_key)
    versions = (rec.resource_version, pw_version)
    if password is None:
        return TruststoreDataKey(entry.key, entry.format, (), (LoadProblem("KeystoreUnreadable", why, entry.key),))
    hit = ctx.memory.store_reads.get(cache_key)
    if hit is not None and hit[0] == versions:
        return hit[1]
    budget[0] -= 1
    plural = "configmaps" if rec.kind == "ConfigMap" else "secrets"
    obj = ctx.raw.get(f"/api/v1/namespaces/{rec.namespace}/{plural}/{rec.name}")
    field = "binaryData" if rec.kind == "ConfigMap" else "data"
    value = (obj.get(field) or {}).get(entry.key)
    raw = (obj.get("data") or {}).get(entry.key, "").encode() if value is None else base64.b64decode(value)
    store = read_certstore(raw, password, source=entry.key)
    del raw, password
    return _remember(ctx, cache_key, versions,
                     TruststoreDataKey(entry.key, store.format, store.certificates, store.problems, False))


def _needs_password(material: SecretMaterial) -> bool:
    return material.key_status is KeyStatus.ENCRYPTED or any(p.reason == "KeystoreUnreadable" for p in material.problems)


def keystores_with_password(ctx: PassContext, secrets: Sequence[SecretRecord]) -> list[SecretRecord]:
    """The selected Secrets, those whose keystore (or encrypted key) could not be opened with a
    sibling password read again with ``spec.selector.passwordSecretRef`` (a Secret in each
    keystore's namespace), at most :data:`MAX_PASSWORD_READS` per pass. Remembered by the two
    resourceVersions, so an unchanged keystore is not decrypted again on every pass."""
    problems: list[str] = []
    name, key = password_ref_from_spec((ctx.spec.get("selector") or {}).get("passwordSecretRef"), "selector", problems)
    if name is None:
        return list(secrets)
    budget = [MAX_PASSWORD_READS]
    out = [_keystore_with_password(ctx, rec, name, key, budget) if _needs_password(rec.material) else rec
           for rec in secrets]
    # The password Secret is watched by name in every namespace (inventory/interest.py Reads
    # .keystore_passwords): creating, changing or deleting it wakes this policy at once.
    return out


def _keystore_with_password(ctx: PassContext, rec: SecretRecord, secret: str, key: str,
                            budget: list[int]) -> SecretRecord:
    source = rec.material.certificate_source or rec.material.key_source or ""
    cache_key = ("SecretKeystore", rec.namespace, rec.name, secret, key)
    password, pw_version, why = _password(ctx, rec.namespace, secret, key)
    if password is None:
        problem = LoadProblem("KeystoreUnreadable", why, source)
        return dataclasses.replace(rec, material=dataclasses.replace(
            rec.material, problems=(problem, *rec.material.problems)))
    versions = (rec.resource_version, pw_version)
    hit = ctx.memory.store_reads.get(cache_key)
    if hit is not None and hit[0] == versions:
        return dataclasses.replace(rec, material=hit[1])
    if budget[0] <= 0:
        return rec
    budget[0] -= 1
    obj = ctx.raw.get(f"/api/v1/namespaces/{rec.namespace}/secrets/{rec.name}")
    material = material_from_secret(obj.get("type") or "Opaque", obj.get("data") or {}, password=password)
    del obj, password
    return dataclasses.replace(rec, material=_remember(ctx, cache_key, versions, material))


def _result(kind: str, namespace: str, name: str, findings: Sequence, valid_until, now) -> SecretResult:
    ev = Evaluation(findings=tuple(sorted(findings, key=lambda f: f.sort_key())), anchor_fingerprint=None,
                    certificates=(), valid_until=valid_until, evaluated_at=now)
    return SecretResult(namespace, name, ev, kind=kind, store=True)


def _earliest(*ts: dt.datetime | None) -> dt.datetime | None:
    known = [t for t in ts if t is not None]
    return min(known) if known else None


def trust_stores_stage(ctx: PassContext, *, leaves: Callable[[], Sequence[LeafAnchor]]) -> list[SecretResult]:
    """Every store selected by ``spec.trustStores`` or ``requirements.trustedBy`` (checked on its
    own; ``trustedBy`` stores must also anchor each of the leaves ``leaves()`` returns) and every
    caBundle selected by ``spec.caBundles``, as report results.

    ``leaves`` is called at most once, and only when a ``trustedBy`` store holds certificates:
    building every selected leaf's anchors costs a signature check per leaf and CA certificate it
    carries (~150 µs each the first time; ``signed_by`` caches the answer by fingerprint pair since), which every pass of every policy paid before, trustedBy or
    not: 75% of a steady pass at 2,000 Secrets, and the 10,000-Secret Secret change → Warning
    event latency went from p95 0.5 s to 3-10 s (issue 28; docs/benchmarks-cluster.md)."""
    wanted = functools.cache(leaves)
    results: list[SecretResult] = []
    seen: set[tuple[str, str, str]] = set()
    budget = [MAX_PASSWORD_READS]
    selections: list[tuple[TruststoreSelection, bool]] = []
    for value, anchored in ((ctx.spec.get("trustStores"), False),
                            ((ctx.spec.get("requirements") or {}).get("trustedBy"), True)):
        try:
            sel = truststore_selection_from_spec(value, "trustedBy" if anchored else "trustStores")
        except ValueError:
            sel = None  # reported by requirements_from_spec / rejected by the CRD schema
        if sel is not None:
            selections.append((sel, anchored))
    skipped = 0
    for sel, anchored in selections:
        for rec in _selected_truststores(ctx, sel):
            if len(results) >= MAX_TRUSTSTORES:
                skipped += 1
                continue
            key = (rec.kind, rec.namespace, rec.name)
            entries = [_with_password(ctx, rec, e, sel, budget) for e in rec.entries if _wanted(e, sel)]
            if not entries:
                continue
            findings: list[Finding] = []
            until: dt.datetime | None = None
            for e in entries:
                what = f"{rec.kind} {rec.namespace}/{rec.name} key {e.key}"
                check = check_truststore(ctx.requirements, e.certificates, e.problems, ctx.now, what=what)
                findings.extend(check.findings)
                until = _earliest(until, check.valid_until)
                if anchored and e.certificates:
                    findings.extend(missing_anchors(e.certificates, wanted(), what=what))
            if key in seen:
                # selected by both: keep the anchored verdict, which includes the plain one
                results = [r for r in results if (r.kind, r.namespace, r.name) != key]
            seen.add(key)
            results.append(_result(rec.kind, rec.namespace, rec.name, _dedupe(findings), until, ctx.now))
    ca_bundles, not_judged = _ca_bundles(ctx)
    results.extend(ca_bundles)
    skipped += not_judged
    if skipped:
        # Not judged is not compliant: the policy's Compliant is Unknown (policy.report.UNCHECKED_REASONS).
        ctx.out.problems.append(Problem(STORES_NOT_JUDGED, f"{skipped} selected trust stores or caBundle holders "
                                                           f"were not judged: a policy judges at most {MAX_TRUSTSTORES} "
                                                           "of each per pass; narrow its selectors"))
    return results


def _dedupe(findings: list[Finding]) -> list[Finding]:
    return list(dict.fromkeys(findings))


def _ca_bundles(ctx: PassContext) -> tuple[list[SecretResult], int]:
    """The judged caBundle holders (at most MAX_TRUSTSTORES) and how many more were not judged."""
    cab = ctx.spec.get("caBundles")
    if not isinstance(cab, Mapping) or not cab.get("selector"):
        return [], 0
    query = LabelSelector.from_spec(cab["selector"]).to_query()
    if not query:
        return [], 0
    records = [rec for kind in CABUNDLE_KINDS
               for _key, rec in sorted(ctx.inventory.labelled_records(watch_key(kind, query)).items())]
    return [_ca_bundle_result(ctx, rec) for rec in records[:MAX_TRUSTSTORES]], max(0, len(records) - MAX_TRUSTSTORES)


def _ca_bundle_result(ctx: PassContext, rec: CABundleRecord) -> SecretResult:
    served = None
    if rec.serving_secret is not None:
        secret = ctx.inventory.secret(rec.serving_secret)
        if secret is not None:
            served = LeafAnchor.of("/".join(rec.serving_secret), secret.material)
    findings: list[Finding] = []
    until: dt.datetime | None = None
    for where, certs, problems in rec.bundles:
        what = f"the caBundle at {where} of {rec.kind} {rec.name}"
        check = check_truststore(ctx.requirements, certs, problems, ctx.now, what=what)
        findings.extend(check.findings)
        until = _earliest(until, check.valid_until)
        if served is not None and certs:
            findings.extend(missing_anchors(certs, [served], what=what))
    return _result(rec.kind, "", rec.name, _dedupe(findings), until, ctx.now)


def leaf_anchors(results: Sequence[SecretResult], materials: Mapping[tuple[str, str], Any],
                 bundle: Sequence[x509.Certificate] | None) -> list[LeafAnchor]:
    """What the peers' stores must anchor: each selected Secret's leaf."""
    out = []
    for r in results:
        m = materials.get((r.namespace, r.name))
        if m is None:
            continue
        a = LeafAnchor.of(f"{r.namespace}/{r.name}", m, r.evaluation.chain_path, bundle or ())
        if a is not None:
            out.append(a)
    return out

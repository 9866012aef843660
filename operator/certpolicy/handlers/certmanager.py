"""The cert-manager stage: judge the ``Certificate`` that writes each selected Secret.

After the evaluation (and after ``name_owner`` has named the Certificate in the leaf's own
findings): what the Certificate's spec asks for its next leaf (``policy/certmanager.
judge_certificate_spec``) joins that Secret's findings as ``CertificateSpecViolates``, so it
reaches the status's violations, the Secret's Warning event (on a change of its reasons only) and
the metrics through the same path as every other finding. The Certificates come from the
inventory's watch (``inventory/wakes.py``, source ``certificates``), so an edit of one wakes the
policies that select its Secret.

When the cluster serves Certificates but the operator cannot list them (RBAC refused, or the
first list is not done), and a selected Secret carries cert-manager's annotations, the pass says
so as a ``CertificatesUnreadable`` problem (the ``Degraded`` condition and its event): the leaf
itself is fully checked, so ``Compliant`` stays what the leaf earns; what is missing is the
forecast of the next leaf, and that is stated, never silently taken as compliant.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping

from certpolicy.handlers.context import PassContext
from certpolicy.handlers.problems import Problem
from certpolicy.inventory.records import SecretRecord
from certpolicy.policy.certmanager import judge_certificate_spec
from certpolicy.policy.findings import Finding
from certpolicy.policy.report import SecretResult


def certificate_spec_stage(ctx: PassContext, results: list[SecretResult],
                           records: Mapping[tuple[str, str], SecretRecord]) -> list[SecretResult]:
    """``results`` with each Secret's Certificate judged; a problem when Certificates are unreadable."""
    unreadable = ctx.inventory.certificates_unreadable()
    if unreadable:
        owned = [k for k, rec in records.items() if rec.cert_manager is not None]
        if owned:
            ns, name = owned[0]
            more = f" and {len(owned) - 1} more" if len(owned) > 1 else ""
            ctx.out.problems.append(Problem(
                "CertificatesUnreadable",
                f"{unreadable}: the Certificates that write {ns}/{name}{more} are not judged "
                "(their leaves are); grant get/list/watch on certificates.cert-manager.io"))
        return results
    if not len(ctx.inventory.certificates):
        return results
    by_secret = functools.cache(ctx.inventory.certificates_by_secret)  # built at most once, only if needed
    out = []
    for r in results:
        cert = ctx.inventory.certificate_for(records[(r.namespace, r.name)], by_secret)
        ahead = judge_certificate_spec(cert.as_object(), ctx.requirements) if cert is not None else []
        if ahead:
            findings = sorted((*r.evaluation.findings, *ahead), key=Finding.sort_key)
            r = dataclasses.replace(r, evaluation=dataclasses.replace(r.evaluation, findings=tuple(findings)))
        out.append(r)
    return out

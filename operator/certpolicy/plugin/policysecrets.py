"""``kubectl certpolicy status POLICY``: one policy's Secrets, worst first.

A policy's status holds counts and at most 50 violations, never the compliant Secrets. This view
lists every Secret the policy selects, chosen by the operator's own selection code run on what
the selector can select (``plugin/scoped.py``: no other Secret is read) and judged by the operator's evaluation against the bundle the
policy uses, so it agrees with the policy's status. Worst first: a Secret named in
``selector.names`` that does not exist, then Critical, then Warning, then compliant; within a rank
the one that breaks first (the earliest notAfter on its path), then namespace/name.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from certpolicy.checkcmd import UsageError
from certpolicy.plugin.blast import TargetError
from certpolicy.plugin.output import dump, structured, table
from certpolicy.plugin.reads import MAX_ITEMS, read
from certpolicy.policy.evaluate import Evaluation
from certpolicy.policy.spec import PolicySpecError, requirements_from_spec
from certpolicy.timestamps import rfc3339

RANKS = ("Missing", "Critical", "Warning", "OK")


def secret_row(namespace: str, name: str, ev: Evaluation | None) -> dict[str, Any]:
    """One Secret's line; ``ev`` None: named by the policy, not found."""
    if ev is None:
        return {"namespace": namespace, "name": name, "state": "Missing", "compliant": False,
                "reasons": ["SecretNotFound"], "firstBreaks": None, "anchor": None}
    worst = ev.worst_severity
    state = "OK" if ev.compliant or worst is None else worst.label
    path = [e for e in ev.certificates if e.on_path]
    first = min((e.summary.not_after for e in path), default=None)
    return {"namespace": namespace, "name": name, "state": state, "compliant": ev.compliant,
            "reasons": list(ev.reasons) if not ev.compliant else [],
            "firstBreaks": rfc3339(first) if first else None, "anchor": ev.anchor_fingerprint}


def worst_first(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(rows, key=lambda r: (RANKS.index(r["state"]), r["firstBreaks"] or "~", r["namespace"], r["name"]))


def run(args: argparse.Namespace, raw) -> int:
    from certpolicy.plugin.live import policy_bundle, select_live
    from certpolicy.plugin.policyrows import row as policy_row
    from certpolicy.policy.evaluate import evaluate

    objects = read(raw, {"CertificatePolicy": True})
    policy = next((p for p in objects.of("CertificatePolicy") if p["metadata"]["name"] == args.policy), None)
    if policy is None:
        raise TargetError(f"no CertificatePolicy named {args.policy!r}")
    spec = policy.get("spec") or {}
    try:
        requirements = requirements_from_spec(spec.get("requirements") or {})
    except PolicySpecError as e:
        raise TargetError(f"CertificatePolicy {args.policy} is invalid: {e}") from None
    now = dt.datetime.now(dt.UTC)
    try:
        bundle, note = policy_bundle(spec, policy, args.kubeconfig, args.context)
        selection, capped = select_live(raw, spec, args.namespace)
    except UsageError as e:
        raise TargetError(str(e)) from None
    for what in capped:
        print(f"warning: more than {MAX_ITEMS} {what}: only the first were examined", file=sys.stderr)
    rows = [secret_row(rec.namespace, rec.name, evaluate(requirements, rec.material, bundle, now))
            for rec in selection.secrets]
    rows += [secret_row(ns, name, None) for ns, name in selection.missing]
    rows = [r for r in rows if not args.namespace or r["namespace"] == args.namespace]
    p, ordered = policy_row(policy), worst_first(rows)
    if structured(args):
        dump({"policy": p, "evaluatedAt": rfc3339(now), "note": note, "secrets": ordered}, sys.stdout, args.output)
        return 0
    sys.stdout.write(f"CertificatePolicy {p['name']}: {p['rank']}, Compliant={p['compliant']}, "
                     f"{len(rows)} Secrets selected{f' in namespace {args.namespace}' if args.namespace else ''} "
                     "(judged now, as the operator judges them)\n")
    if note:
        sys.stdout.write(f"note: {note}\n")
    if not rows:
        sys.stdout.write("It selects no Secret.\n")
        return 0
    table(["namespace", "name", "state", "first breaks", "reasons"],
          [[r["namespace"], r["name"], r["state"], r["firstBreaks"] or "-", ",".join(r["reasons"]) or "-"]
           for r in ordered], sys.stdout)
    return 0

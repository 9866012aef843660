"""``kubectl certpolicy check --cluster --policy FILE [--at +90d]``: a new or changed policy, over the live cluster.

A what-if for GitOps pre-merge gates: the Secrets the policy *would* select — chosen by the
operator's own selection code (on what the selector can select, ``plugin/scoped.py``), so ``names``, ``namespaceSelector``,
``secretSelector`` and ``mountedOnly`` mean exactly what they mean to the operator — judged by
the operator's evaluation at ``--at``, and reported like ``certpolicy check`` (same table, same
JSON results, same exit codes: 0 compliant, 1 warnings, 2 critical, 3 unknown). Read-only: it
gets and lists, never watches or writes.

The exit code follows the operator's ``Compliant`` rule (``certpolicy.policy.report.compliance``):
0 only when Secrets were selected and every requirement was checked on each; a violation wins
(1 or 2) even when a part was not checked; otherwise 3 — nothing selected, a name in
``selector.names`` that does not exist, a trust bundle that cannot be read.

The trust bundle the chains must lead to: ``--trust-bundle FILE``; else the policy's
``requirements.trustBundle``, read from the cluster; else, for a policy with ``spec.ca``, the CAs
the live policy of that name trusts (its status), which a new policy does not have yet — its
Secrets are then reported as not chaining to it, as the operator would.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from cryptography import x509

from certpolicy.checkcmd import (
    EXIT_OK,
    EXIT_UNKNOWN,
    Target,
    UsageError,
    _now,
    _read_bundle,
    _read_policy,
    _use_color,
    exit_code,
    write_table,
)
from certpolicy.plugin.live import policy_bundle
from certpolicy.plugin.output import dump, structured
from certpolicy.plugin.reads import MAX_ITEMS
from certpolicy.policy.evaluate import evaluate
from certpolicy.policy.report import Unchecked, compliance
from certpolicy.policy.spec import PolicySpecError, requirements_from_spec
from certpolicy.timestamps import rfc3339


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("What a new or changed CertificatePolicy would say about the live cluster, without "
                          "applying it. Exit 0 compliant, 1 warnings, 2 critical, 3 could not check.")
    parser.add_argument("--cluster", action="store_true", required=True,
                        help="judge the Secrets the policy would select in the cluster (required: this verb reads the cluster)")
    parser.add_argument("--policy", metavar="FILE", required=True, help="CertificatePolicy YAML")
    parser.add_argument("--policy-name", metavar="NAME", help="which policy, when FILE holds several")
    parser.add_argument("--at", metavar="TIME", help="judge at this time: RFC 3339 or an offset ('+90d', '+720h')")
    parser.add_argument("--trust-bundle", metavar="FILE", help="CA bundle the chains must lead to (default: the policy's)")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    parser.epilog = ("Reads: what the policy's selector can select (list Namespaces (metadata only); TLS Secrets by fieldSelector and "
                     "its secretSelector, in the namespaces its namespaceSelector matches; Secrets of other types "
                     "with its labels; get each Secret in selector.names; Pods only for mountedOnly); get its "
                     "requirements.trustBundle, or the live policy of that name for spec.ca. Secrets are parsed as "
                     "they arrive: no tls.key is kept or printed.")


def _live_policy(raw, name: str) -> Mapping[str, Any] | None:
    from kubernetes.client import ApiException

    from certpolicy import GROUP, PLURAL, VERSION

    try:
        return raw.get(f"/apis/{GROUP}/{VERSION}/{PLURAL}/{name}")
    except ApiException as e:
        if e.status == 404:
            return None
        raise


def _select(raw, spec: Mapping[str, Any]):
    """The operator's selection of this spec in the live cluster (what it can select, read)."""
    from certpolicy.plugin.live import select_live

    selection, capped = select_live(raw, spec)
    for what in capped:
        print(f"warning: more than {MAX_ITEMS} {what}: only the first were examined", file=sys.stderr)
    return selection


def run(args: argparse.Namespace, raw) -> int:
    try:
        doc = _read_policy(args.policy, args.policy_name)
        spec = doc.get("spec") if isinstance(doc.get("spec"), Mapping) else None
        if spec is None or not isinstance(spec.get("selector"), Mapping):
            raise UsageError(f"policy {args.policy}: --cluster needs a whole CertificatePolicy (spec.selector)")
        name = str((doc.get("metadata") or {}).get("name") or "unnamed")
        requirements = requirements_from_spec(spec.get("requirements") or {})
        now = _now(args.at)
        notes: list[str] = []
        unchecked: list[Unchecked] = []
        bundle: list[x509.Certificate] | None
        if args.trust_bundle:
            bundle = _read_bundle(args.trust_bundle)
        else:
            try:
                bundle, note = policy_bundle(spec, _live_policy(raw, name) if spec.get("ca") else None,
                                             args.kubeconfig, args.context)
            except UsageError as e:  # as the operator: the Secrets are judged, the chains are not
                bundle, note = None, None
                unchecked.append(Unchecked("TrustBundleUnreadable", f"requirements.trustBundle: {e}; chains are "
                                                                    "not checked"))
            notes += [note] if note else []
        selection = _select(raw, spec)
    except UsageError as e:
        print(f"kubectl certpolicy check: {e}", file=sys.stderr)
        return EXIT_UNKNOWN
    except PolicySpecError as e:
        print("kubectl certpolicy check: invalid policy:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        return EXIT_UNKNOWN

    targets = [Target(f"secret {rec.namespace}/{rec.name}", "secret", rec.material,
                      evaluate(requirements, rec.material, bundle, now)) for rec in selection.secrets]
    targets += [Target(f"secret {ns}/{n}", "secret", error="named in spec.selector.names but does not exist")
                for ns, n in selection.missing]
    unchecked += [Unchecked("SecretNotFound", f"{ns}/{n} is named in spec.selector.names but does not exist")
                  for ns, n in selection.missing]
    code = verdict_exit_code(targets, len(selection.secrets), unchecked)
    if not selection.secrets:
        notes.append(f"policy {name} selects no Secret in this cluster"
                     f"{f' ({selection.why_empty})' if selection.why_empty else ''}: compliance unknown")
    notes += [f"not checked: {u.message}" for u in unchecked if u.reason != "SecretNotFound"]
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if structured(args):
        dump({"exitCode": code, "evaluatedAt": rfc3339(now), "policy": name, "selected": len(selection.secrets),
              "results": [t.to_dict() for t in targets]}, sys.stdout, args.output)
    else:
        write_table(targets, sys.stdout, color=_use_color(args.color, sys.stdout))
    return code


def verdict_exit_code(targets: list[Target], selected: int, unchecked: list[Unchecked]) -> int:
    """The operator's Compliant rule as an exit code: False -> the worst judged severity (1 or 2),
    None (nothing selected, a part not checked) -> 3, True -> 0."""
    judged = [t for t in targets if t.evaluation is not None]
    verdict = compliance(selected, sum(1 for t in judged if t.evaluation is not None and not t.evaluation.compliant),
                         unchecked)
    if verdict is False:
        return exit_code(judged)
    return EXIT_OK if verdict else EXIT_UNKNOWN

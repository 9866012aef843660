"""``certpolicy check --baseline OLD NEW``: the renewal guard's comparison, offline.

For pipelines that renew certificates outside the cluster (a CI job, an ACME client's deploy
hook): before NEW replaces OLD, is it a regression? The comparison is the operator's own
(:func:`certpolicy.policy.renewal.regressions`), so a pipeline and the cluster agree.

Exit codes of this mode: 0 — NEW loses nothing OLD had; 1 — at least one regression (whatever its
severity: a renewal that loses something is refused); 3 — a file cannot be read, holds no
certificate, or a leaf's extensions cannot be parsed (nothing could be compared).

Anchors are compared only with ``--trust-bundle``: each chain is verified against it, OLD at the
middle of its validity (or now, if that is earlier: an expired OLD still tells where it chained to),
NEW now (or ``--at``). ``--policy FILE`` contributes its ``spec.requirements.renewal.ignore``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from certpolicy.policy.evaluate import evaluate
from certpolicy.policy.findings import Finding
from certpolicy.policy.renewal import LeafBaseline, baseline_of, regressions
from certpolicy.policy.spec import renewal_guard_from_spec

EXIT_SAME, EXIT_REGRESSION, EXIT_UNKNOWN = 0, 1, 3


def run_baseline(args: argparse.Namespace, opts: Any, policy_doc: Mapping[str, Any] | None, *,
                 read_target: Any, stdout: TextIO | None = None) -> int:
    """Compare ``args.baseline`` (OLD) with the one path given (NEW). ``opts`` and ``read_target``
    are checkcmd's (trust bundle, time, password; one file → a Target), so files are read exactly
    as ``certpolicy check`` reads them."""
    out = stdout or sys.stdout
    if len(args.paths) != 1 or args.secret or Path(args.paths[0]).is_dir():
        return _fail(args, out, "--baseline OLD compares with exactly one NEW certificate file: "
                                "certpolicy check --baseline OLD.pem NEW.pem")
    ignore: frozenset[str] = frozenset()
    if policy_doc is not None:
        spec = policy_doc.get("spec", policy_doc) if isinstance(policy_doc, Mapping) else {}
        ignore = renewal_guard_from_spec(spec if isinstance(spec, Mapping) else {}).ignore
    baselines: list[LeafBaseline] = []
    for role, path in (("OLD", args.baseline), ("NEW", args.paths[0])):
        target = read_target(Path(path), None, None, opts)
        leaf = target.material.leaf if target.material is not None else None
        if target.error or leaf is None:
            return _fail(args, out, f"{role} {path}: {target.error or 'no certificate could be read'}")
        at = opts.now
        if role == "OLD":
            middle = leaf.not_valid_before_utc + (leaf.not_valid_after_utc - leaf.not_valid_before_utc) / 2
            at = min(at, middle)
        anchor = None
        if opts.trust_bundle is not None:
            anchor = evaluate(opts.requirements, target.material, opts.trust_bundle, at).anchor_fingerprint
        try:
            baselines.append(baseline_of(leaf, anchor))
        except ValueError as e:
            return _fail(args, out, f"{role} {path}: {e}")
    old, new = baselines
    found = regressions(old, new, ignore=ignore)
    code = EXIT_REGRESSION if found else EXIT_SAME
    if args.output == "json":
        json.dump({"exitCode": code, "error": None, "old": _facts(old), "new": _facts(new),
                   "regressions": [f.to_dict() for f in found]}, out, indent=2)
        out.write("\n")
    else:
        _table(args.baseline, args.paths[0], old, new, found, out)
    return code


def _facts(b: LeafBaseline) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(b).items()}


def _table(old_path: str, new_path: str, old: LeafBaseline, new: LeafBaseline, found: list[Finding],
           out: TextIO) -> None:
    out.write(f"{new_path} against {old_path}: {'REGRESSION' if found else 'OK'}\n")
    if old.anchor is None or new.anchor is None:
        out.write("  (anchors not compared: pass --trust-bundle FILE to verify both chains)\n")
    if not found:
        out.write("  the renewed leaf keeps every usage, name and key strength, its anchor and its lifetime\n")
        return
    w_sev = max(len("SEVERITY"), *(len(f.severity.label) for f in found))
    w_reason = max(len("REASON"), *(len(f.reason) for f in found))
    out.write(f"  {'SEVERITY':<{w_sev}}  {'REASON':<{w_reason}}  MESSAGE\n")
    for f in found:
        out.write(f"  {f.severity.label:<{w_sev}}  {f.reason:<{w_reason}}  {f.message}\n")


def _fail(args: argparse.Namespace, out: TextIO, message: str) -> int:
    print(f"certpolicy check: {message}", file=sys.stderr)
    if getattr(args, "output", None) == "json":
        json.dump({"exitCode": EXIT_UNKNOWN, "error": message, "regressions": []}, out, indent=2)
        out.write("\n")
    return EXIT_UNKNOWN

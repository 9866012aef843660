"""``kubectl certpolicy status``: every CertificatePolicy, worst first, from its status.

The verdict is the operator's (the policy's status): nothing is re-evaluated here. Worst first
means: Critical violations, then Warning violations, then Degraded, then not Ready (or never
evaluated), then Unknown (``Compliant`` not True: nothing selected, or a part not checked), then
OK; within a rank, more violating Secrets first. OK means exactly what ``Compliant=True`` means
(``certpolicy.policy.report.compliance``): never a policy the operator reports as Unknown.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from certpolicy.plugin.output import dump, structured, table
from certpolicy.plugin.policyrows import rows


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Every CertificatePolicy, worst first (from the operator's status); with POLICY, "
                          "that policy's Secrets, worst first.")
    parser.add_argument("policy", nargs="?", metavar="POLICY",
                        help="list the Secrets this policy selects, worst first (plugin/policysecrets.py); with -n NS, "
                             "only those in NS")
    parser.epilog = ("Reads: list CertificatePolicies. With POLICY, also what its selector can select: list Namespaces (metadata only); "
                     "list TLS Secrets by fieldSelector and its secretSelector, in the namespaces its "
                     "namespaceSelector matches (with -n: in NS only); Secrets of other types with its labels; get "
                     "each Secret in selector.names; list Pods only for mountedOnly; get its "
                     "requirements.trustBundle. Secrets are parsed as they arrive: no tls.key is kept or printed.")


def run(args: argparse.Namespace, raw) -> int:
    from certpolicy.plugin.reads import read

    if args.policy:
        from certpolicy.plugin import policysecrets

        return policysecrets.run(args, raw)

    objects = read(raw, {"CertificatePolicy": True})
    result = rows(objects.of("CertificatePolicy"))
    if structured(args):
        dump({"policies": result}, sys.stdout, args.output)
    elif not result:
        print("No CertificatePolicies.")
    else:
        table(["name", "state", "compliant", "violating", "selected", "expiring", "rotation", "worst"],
              [[r["name"], _state(r), r["compliant"],
                r["violating"], r["selected"], r["expiringSoon"], r["rotation"] or "-",
                _worst(r)] for r in result], sys.stdout)
    return 0


def _state(r: Mapping[str, Any]) -> str:
    """STATE: the rank, with the reason where the rank alone does not say why."""
    if r["rank"] == "Degraded":
        return f"Degraded/{r['degraded']}"
    if r["rank"] == "Unknown" and r["compliantReason"]:
        return f"Unknown/{r['compliantReason']}"
    return str(r["rank"])


def _worst(r: Mapping[str, Any]) -> str:
    w = r["worst"]
    if not w:
        return "-"
    return f"{w['namespace']}/{w['name']} {','.join(w['reasons'])}"

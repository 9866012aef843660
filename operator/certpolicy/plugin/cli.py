"""``kubectl-certpolicy``: the kubectl plugin's entry point (``kubectl certpolicy VERB``).

Each verb lives in its own module with ``configure_parser(parser)`` and ``run(args, raw) -> int``.
Exit codes: 0 done; 3 the question could not be answered (no kubeconfig, forbidden, the CRD not
installed, unknown CA, policy or Secret, bad usage); 141 the reader of stdout closed it (``| head``),
as for any tool a SIGPIPE ends, without a traceback. Verbs that judge certificates use ``certpolicy check``'s codes (0 OK,
1 warnings, 2 critical, 3 unknown).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from certpolicy.checkcmd import EXIT_UNKNOWN

VERBS: dict[str, tuple[str, str]] = {
    "status": ("certpolicy.plugin.status", "the policies, worst first (with POLICY: its Secrets, worst first)"),
    "why": ("certpolicy.plugin.why", "why a Secret or Pod is judged as it is, and when it first breaks"),
    "blast-radius": ("certpolicy.plugin.blast", "everything that depends on a CA or bundle"),
    "rotate": ("certpolicy.plugin.plan", "--plan: what a CA rotation would do, what would stall it, how long"),
    "check": ("certpolicy.plugin.whatif", "what a new or changed policy would say about the live cluster"),
    "leftovers": ("certpolicy.plugin.leftovers", "what a policy, present or deleted, left in the cluster, and how to "
                                                 "remove it"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 3 (UNKNOWN), as in `certpolicy check`
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_UNKNOWN)


def parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)  # the subparsers' type: parents only lend their arguments
    common.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    common.add_argument("--context", metavar="NAME", help="kubeconfig context")
    common.add_argument("-o", "--output", choices=("table", "json"), default="table", help="table (default) or JSON")
    top = _Parser(prog="kubectl certpolicy", description="Read-only questions about the cluster's certificates "
                                                         "and CertificatePolicies.")
    sub = top.add_subparsers(dest="verb", required=True, metavar="VERB", parser_class=_Parser)
    for verb, (module, help_text) in VERBS.items():
        sp = sub.add_parser(verb, help=help_text, description=help_text, parents=[common])
        sp.set_defaults(_module=module)
        importlib.import_module(module).configure_parser(sp)
    return top


def main(argv: Sequence[str] | None = None) -> int:
    from certpolicy.plugin.blast import TargetError
    from certpolicy.plugin.output import until_reader_gone
    from certpolicy.plugin.reads import ReadError, connect

    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    module = importlib.import_module(args._module)
    try:
        return until_reader_gone(lambda: int(module.run(args, connect(args.kubeconfig, args.context)) or 0))
    except (ReadError, TargetError) as e:
        print(f"kubectl certpolicy {args.verb}: {e}", file=sys.stderr)
        return EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())

"""``kubectl-certpolicy``: the kubectl plugin's entry point (``kubectl certpolicy [FLAGS] VERB``).

Each verb lives in its own module with ``configure_parser(parser)`` and ``run(args, raw) -> int``
(``raw`` None for a verb whose module sets ``CLUSTER = False``: it connects itself, or never).
The global flags, as kubectl's, go before the verb or after it: ``--kubeconfig``, ``--context``,
``-n/--namespace``, ``-A/--all-namespaces``, ``--operator-namespace``, ``-o table|json|yaml``.
Exit codes: 0 done; 3 the question could not be answered (no kubeconfig, forbidden, the CRD not
installed, unknown CA, policy or Secret, bad usage); 141 the reader of stdout closed it (``| head``),
as for any tool a SIGPIPE ends, without a traceback. Verbs that judge certificates use ``certpolicy check``'s codes (0 OK,
1 warnings, 2 critical, 3 unknown).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from certpolicy.checkcmd import EXIT_UNKNOWN
from certpolicy.environment import DEFAULT_OPERATOR_NAMESPACE, OPERATOR_NAMESPACE_ENV
from certpolicy.plugin.output import FORMATS

VERBS: dict[str, tuple[str, str]] = {
    "status": ("certpolicy.plugin.status", "the policies, worst first (with POLICY: its Secrets, worst first)"),
    "why": ("certpolicy.plugin.why", "why a Secret or Pod is judged as it is, and when it first breaks"),
    "blast-radius": ("certpolicy.plugin.blast", "everything that depends on a CA or bundle"),
    "rotate": ("certpolicy.plugin.plan", "plan POLICY: what a CA rotation would do, what would stall it, how long"),
    "check": ("certpolicy.plugin.whatif", "what a new or changed policy would say about the live cluster"),
    "leftovers": ("certpolicy.plugin.leftovers", "what a policy, present or deleted, left in the cluster, and how to "
                                                 "remove it"),
    "version": ("certpolicy.plugin.version", "the plugin's version and the operator's (its Deployment's image)"),
    "completion": ("certpolicy.plugin.completion", "shell completion: source <(kubectl certpolicy completion bash)"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # usage errors exit 3 (UNKNOWN), as in `certpolicy check`
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_UNKNOWN)


def _global_flags(parser: argparse.ArgumentParser, *, top: bool) -> None:
    """The flags kubectl users type before the verb; also taken after it. After the verb they
    default to SUPPRESS, so a flag given before the verb is not reset by the verb's parser."""

    def default(value: object) -> object:
        return value if top else argparse.SUPPRESS

    parser.add_argument("--kubeconfig", metavar="FILE", default=default(None),
                        help="kubeconfig (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    parser.add_argument("--context", metavar="NAME", default=default(None), help="kubeconfig context")
    parser.add_argument("-n", "--namespace", metavar="NS", default=default(None),
                        help="the namespace of a target given without one (default: the context's namespace, else "
                             "default); for listing verbs, only what lives in NS")
    parser.add_argument("-A", "--all-namespaces", action="store_true", default=default(False),
                        help="every namespace (the default of the listing verbs)")
    parser.add_argument("--operator-namespace", metavar="NS", default=default(None),
                        help=f"where the operator keeps its CA Secrets (default: ${OPERATOR_NAMESPACE_ENV}, else "
                             f"{DEFAULT_OPERATOR_NAMESPACE})")
    parser.add_argument("-o", "--output", choices=FORMATS, default=default("table"), help="table (default), json or yaml")


def parser() -> argparse.ArgumentParser:
    common = _Parser(add_help=False)  # the subparsers' type: parents only lend their arguments
    _global_flags(common, top=False)
    top = _Parser(prog="kubectl certpolicy", description="Read-only questions about the cluster's certificates "
                                                         "and CertificatePolicies. Each verb's --help says what it reads.")
    _global_flags(top, top=True)
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

    top = parser()
    args = top.parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.namespace and args.all_namespaces:
        top.error("-n/--namespace and -A/--all-namespaces exclude each other")
    if args.operator_namespace:  # the one place the operator's namespace is read (environment.operator_namespace)
        os.environ[OPERATOR_NAMESPACE_ENV] = args.operator_namespace
    module = importlib.import_module(args._module)
    try:
        if not getattr(module, "CLUSTER", True):
            return until_reader_gone(lambda: int(module.run(args, None) or 0))
        return until_reader_gone(lambda: int(module.run(args, connect(args.kubeconfig, args.context)) or 0))
    except (ReadError, TargetError) as e:
        print(f"kubectl certpolicy {args.verb}: {e}", file=sys.stderr)
        return EXIT_UNKNOWN


if __name__ == "__main__":
    sys.exit(main())

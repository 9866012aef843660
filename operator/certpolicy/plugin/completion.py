"""``kubectl certpolicy completion bash|zsh|fish``: a completion script for the shell, made by
shtab from this plugin's own argument parser, so it always matches the verbs and flags.

bash: ``source <(kubectl-certpolicy completion bash)``; zsh: ``kubectl-certpolicy completion zsh >
"${fpath[1]}/_kubectl-certpolicy"``; fish: ``kubectl-certpolicy completion fish | source``. The
scripts complete the ``kubectl-certpolicy`` command (kubectl completes a plugin's arguments
through a ``kubectl_complete-certpolicy`` executable, which this plugin does not ship).
"""

from __future__ import annotations

import argparse
import sys

CLUSTER = False
SHELLS = ("bash", "zsh", "fish")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("shell", choices=SHELLS)
    parser.epilog = "Reads nothing from the cluster."


def run(args: argparse.Namespace, _raw) -> int:
    import shtab

    from certpolicy.plugin.cli import parser

    p = parser()
    p.prog = "kubectl-certpolicy"
    sys.stdout.write(shtab.complete(p, shell=args.shell))
    return 0

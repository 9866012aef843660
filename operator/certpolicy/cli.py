"""The ``certpolicy`` command: ``run``, ``check``, ``local-cluster`` and ``demo``.

Each subcommand lives in its own module and is imported only when chosen, so ``certpolicy check``
on a laptop never imports kopf and ``certpolicy run`` never builds a control plane.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

DESCRIPTION = "certpolicy-operator: check TLS certificates against CertificatePolicies, run the operator, or try it locally."

# subcommand -> (module, one-line help). Each module has configure_parser(parser) and run(args) -> int.
COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("certpolicy.runcmd", "run the operator against the current kubeconfig or in-cluster config"),
    "check": ("certpolicy.checkcmd", "check certificate files or live Secrets against a policy"),
    "local-cluster": ("certpolicy.localcluster.command", "start a local kube-apiserver + etcd and print its kubeconfig"),
    "demo": ("certpolicy.democmd", "start a local control plane, install the CRD, run the operator on the examples"),
}


#: Subcommands built on certpolicy.localcluster, the root-only development tooling the operator's
#: image leaves out (.dockerignore): there they say so instead of failing on an import.
DEVELOPMENT_ONLY = {"local-cluster", "demo"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    if chosen in DEVELOPMENT_ONLY and importlib.util.find_spec("certpolicy.localcluster") is None:
        print(f"certpolicy {chosen}: not in this installation (the operator image leaves out the local "
              "cluster tooling); run it from a source checkout: make deps && .venv/bin/certpolicy "
              f"{chosen}", file=sys.stderr)
        return 2
    parser = argparse.ArgumentParser(prog="certpolicy", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sp = sub.add_parser(name, help=help_text, description=help_text)
        sp.set_defaults(_module=module_name)
        if name == chosen:
            importlib.import_module(module_name).configure_parser(sp)
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    from certpolicy.plugin.output import until_reader_gone  # no dependency: json, os, sys

    return until_reader_gone(lambda: int(module.run(args) or 0))


if __name__ == "__main__":
    sys.exit(main())

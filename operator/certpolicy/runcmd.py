"""``certpolicy run``: the operator process (a thin wrapper over kopf's runner)."""

from __future__ import annotations

import argparse
import logging
import os


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--liveness", default=os.environ.get("CERTPOLICY_LIVENESS", "http://0.0.0.0:8080/healthz"),
                        help="kopf liveness endpoint URL (default: %(default)s)")
    parser.add_argument("--namespace", default=None,
                        help="the operator's own namespace, where CA Secrets live (env CERTPOLICY_NAMESPACE; "
                             "default certpolicy-system)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def run(args: argparse.Namespace) -> int:
    import kopf

    import certpolicy.handlers  # noqa: F401  (registers handlers)

    if args.namespace:
        os.environ["CERTPOLICY_NAMESPACE"] = args.namespace
    kopf.configure(debug=args.verbose, verbose=args.verbose)
    logging.getLogger("kopf.objects").setLevel(logging.INFO)
    # standalone: one replica, no kopf peering (peering is not leader election; see docs/operations.md)
    kopf.run(clusterwide=True, standalone=True, liveness_endpoint=args.liveness)
    return 0

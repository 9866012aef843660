"""``certpolicy run``: the operator process (a thin wrapper over kopf's runner)."""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--liveness", default=os.environ.get("CERTPOLICY_LIVENESS", "http://0.0.0.0:8080/healthz"),
                        help="kopf liveness endpoint URL (default: %(default)s)")
    parser.add_argument("--namespace", default=None,
                        help="the operator's own namespace, where CA Secrets live (env CERTPOLICY_NAMESPACE; "
                             "default certpolicy-system)")
    parser.add_argument("--metrics-port", type=int, default=None, metavar="PORT",
                        help="port of the Prometheus /metrics endpoint (env CERTPOLICY_METRICS_PORT; default 9090; "
                             "0 = any free port, -1 = none). A port in use stops the operator with exit 2.")
    parser.add_argument("--allow-system-namespaces", action="store_true",
                        default=os.environ.get("CERTPOLICY_ALLOW_SYSTEM_NAMESPACES", "").lower() in ("1", "true", "yes"),
                        help="let bundles and issued leaves go to kube-system, kube-public and kube-node-lease "
                             "(env CERTPOLICY_ALLOW_SYSTEM_NAMESPACES; default: refused)")
    parser.add_argument("--probe-allow", default=None, metavar="PATTERNS",
                        help="comma-separated host patterns (name, *.suffix) and CIDRs that rotation probes may "
                             "connect to (env CERTPOLICY_PROBE_ALLOW; default: *.svc,*.svc.<cluster domain>)")
    parser.add_argument("--verbose", action="store_true", help="debug logging")


def tune_gc() -> None:
    """Keep the cyclic garbage collector off the hot path of a (re)list.

    Parsing 10,000 Secrets allocates millions of short-lived objects (JSON, certificate
    summaries); with CPython's default threshold of 700 the collector ran ~800 times and took about
    a quarter of the initial list (measured: 4.4 s -> 3.5 s for 10,000 Secrets). Almost all of
    that garbage is freed by reference counting anyway. The modules imported by now live for the
    whole process, so they are frozen out of every future collection.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 10, 10)


def run(args: argparse.Namespace) -> int:
    from certpolicy import metrics

    # The metrics endpoint first: a port in use must stop the operator with a clear message, not
    # leave kopf retrying its start-up every 60 s while the liveness probe answers (see
    # metrics.MetricsUnavailable for why there is no fallback port).
    if args.metrics_port is not None:
        os.environ[metrics.PORT_ENV] = str(args.metrics_port)
    try:
        port = metrics.configured_port()
        bound = metrics.serve(port, metrics.configured_addr()) if port >= 0 else None
    except metrics.MetricsUnavailable as e:
        print(f"certpolicy run: {e}", file=sys.stderr)
        return 2
    if bound is not None:
        os.environ[metrics.PORT_ENV] = str(bound)  # what kopf's start-up handler finds already served

    # The inventory's initial LIST starts before kopf is even imported: the API server encodes
    # pages on another core while this process loads kopf (~0.6 s). start_runtime adopts it.
    from certpolicy.inventory.inventory import Inventory
    from certpolicy.kube.client import new_api_client

    tune_gc()
    api_client = new_api_client()
    inventory = Inventory(api_client).start()

    import kopf

    import certpolicy.handlers  # noqa: F401  (registers handlers)

    gc.freeze()  # kopf's modules too
    if args.namespace:
        os.environ["CERTPOLICY_NAMESPACE"] = args.namespace
    if args.probe_allow is not None:
        os.environ["CERTPOLICY_PROBE_ALLOW"] = args.probe_allow
    if args.allow_system_namespaces:
        os.environ["CERTPOLICY_ALLOW_SYSTEM_NAMESPACES"] = "true"
    kopf.configure(debug=args.verbose, verbose=args.verbose)
    logging.getLogger("kopf.objects").setLevel(logging.INFO)
    if bound is not None:
        logging.getLogger("certpolicy.operator").info("metrics on http://%s:%d/metrics", metrics.configured_addr(), bound)
    # standalone: one replica, no kopf peering (peering is not leader election; see docs/operations.md)
    kopf.run(clusterwide=True, standalone=True, liveness_endpoint=args.liveness,
             memo=kopf.Memo(api_client=api_client, inventory=inventory))
    return 0

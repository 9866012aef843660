"""``kubectl certpolicy version``: the plugin's version and the operator's build.

The client is this package's version (``certpolicy.__version__``, what the operator's
``certpolicy_build_info{version}`` metric reports for the same build) and its Python. The
operator's build is read from its Deployments in the operator's namespace (``--operator-namespace``,
default ``$CERTPOLICY_NAMESPACE``, else ``certpolicy-system``), found by the label every install
carries (``app.kubernetes.io/name=certpolicy-operator``, kustomize and Helm alike; ``--selector``
for a Helm release with ``nameOverride``): each one's container images and ready replicas.
``--client`` reads nothing from the cluster.

Exit 0 when both are known; 3 when the operator's Deployment cannot be read or there is none
(the client's version is still printed): "green means checked".
"""

from __future__ import annotations

import argparse
import platform
import sys
from typing import Any

from certpolicy import __version__
from certpolicy.checkcmd import EXIT_UNKNOWN
from certpolicy.plugin.output import dump, structured

CLUSTER = False  # connects only without --client
OPERATOR_LABEL = "app.kubernetes.io/name=certpolicy-operator"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client", action="store_true", help="the plugin's version only; nothing is read")
    parser.add_argument("-l", "--selector", default=OPERATOR_LABEL, metavar="LABELS",
                        help=f"the operator's Deployments (default: {OPERATOR_LABEL}; a Helm release with "
                             "nameOverride: app.kubernetes.io/name=<nameOverride>)")
    parser.epilog = ("Reads: list the Deployments matching --selector in the operator's namespace (nothing with "
                     "--client).")


def operator_builds(raw, namespace: str, selector: str = OPERATOR_LABEL) -> list[dict[str, Any]]:
    """The operator's Deployments in ``namespace``: name, images, replicas ready/wanted."""
    from certpolicy.plugin.reads import list_items

    items, _capped = list_items(raw, f"/apis/apps/v1/namespaces/{namespace}/deployments",
                                {"labelSelector": selector}, limit=100)
    out = []
    for d in items:
        containers = (((d.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or ()
        status = d.get("status") or {}
        out.append({"name": (d.get("metadata") or {}).get("name"), "namespace": namespace,
                    "images": [c.get("image") for c in containers],
                    "readyReplicas": int(status.get("readyReplicas") or 0),
                    "replicas": int((d.get("spec") or {}).get("replicas") or 0)})
    return sorted(out, key=lambda d: str(d["name"]))


def run(args: argparse.Namespace, raw) -> int:
    from kubernetes.client import ApiException

    from certpolicy.environment import operator_namespace
    from certpolicy.plugin.reads import ReadError, connect

    doc: dict[str, Any] = {"client": {"version": __version__, "python": platform.python_version()}}
    code = 0
    if not args.client:
        namespace = operator_namespace()
        doc["operator"] = {"namespace": namespace, "deployments": [], "error": None}
        try:
            doc["operator"]["deployments"] = operator_builds(connect(args.kubeconfig, args.context), namespace,
                                                             args.selector)
            if not doc["operator"]["deployments"]:
                doc["operator"]["error"] = (f"no Deployment labelled {args.selector} in namespace {namespace} "
                                            "(--operator-namespace, --selector)")
        except ApiException as e:
            doc["operator"]["error"] = f"cannot list Deployments in {namespace}: HTTP {e.status} {e.reason or ''}".rstrip()
        except ReadError as e:
            doc["operator"]["error"] = str(e)
        code = EXIT_UNKNOWN if doc["operator"]["error"] else 0
    if structured(args):
        dump(doc, sys.stdout, args.output)
        return code
    print(f"Client Version: {__version__} (Python {doc['client']['python']})")
    if "operator" in doc:
        op = doc["operator"]
        for d in op["deployments"]:
            print(f"Operator: {d['namespace']}/{d['name']} {', '.join(d['images'])} "
                  f"({d['readyReplicas']}/{d['replicas']} ready)")
        if op["error"]:
            print(f"Operator: unknown: {op['error']}")
    return code

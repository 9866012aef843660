"""``kubectl certpolicy leftovers [POLICY]``: what a policy, present or deleted, left in the cluster, and how to remove it.

Under ``deletionPolicy: Retain`` (the default) deleting a policy removes nothing: its CA Secrets
(keys valid for ten years by default, retired ones included), its bundle targets and its issued
leaves stay. A present policy leaves retired CA keys too: the operator deletes one only once its
certificate has expired. This verb lists them, from metadata only — the operator labels what it
creates ``certpolicy.io/managed-by=<policy>`` with the policy's UID in an annotation, so a
label-selected, paged, capped list of ``PartialObjectMetadata`` (``kube/policyobjects.py``) finds
everything without any Secret's data leaving the cluster:

* objects of a **deleted** policy (no policy of that name exists): every CA Secret, bundle target
  and leaf (and any object the garbage collector should have deleted with it through an
  ownerReference, such as the renewal guard's baselines, still there);
* objects of an **earlier policy of the same name** (the name exists with another UID): the same,
  which ``spec.ca.adopt: true`` would take over instead;
* a **present** policy's CA Secrets that are neither its active CA nor part of a running rotation:
  retired CA keys;
* targets the operator does not own but wrote a deleted policy's CAs into (opted in with
  ``certpolicy.io/inject-ca-from``; their ``certpolicy.io/bundle-policies`` annotation names it):
  the certificates are to be removed from them by hand, the object is its owner's.

For each it prints what it is and the command that removes it. Read-only; exit 0, or 3 when the
cluster cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping
from typing import Any

from certpolicy.plugin.output import dump, structured, table

DELETED, EARLIER, PRESENT = "deleted", "re-created", "present"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Every object a CertificatePolicy (present or deleted) left in the cluster — CA keys, "
                          "retired CA keys, bundle targets, leaves — with the command that removes it.")
    parser.add_argument("policy", metavar="POLICY", nargs="?", help="one policy's name (default: every policy)")
    parser.epilog = ("Reads: list CertificatePolicies; list Secrets, ConfigMaps and ClusterTrustBundles labelled "
                     "certpolicy.io/managed-by or certpolicy.io/bundle as metadata only (PartialObjectMetadata: no "
                     "Secret data). With -n NS: only what lives in NS (cluster-scoped objects are still listed).")


def _in_use(policy: Mapping[str, Any]) -> set[str]:
    """The CA Secrets a present policy uses: its active CA, a running rotation's new and retired
    CA, and the spare copy the operator is about to delete after a rotation."""
    spec, status = policy.get("spec") or {}, policy.get("status") or {}
    rotation = status.get("rotation") or {}
    names = {(spec.get("ca") or {}).get("secretName"), (spec.get("rotation") or {}).get("newCASecretName")}
    if rotation.get("id"):
        names |= {rotation.get("newCASecretName"), rotation.get("retiredCASecretName")}
    for h in (rotation.get("history") or ())[:1]:
        names.add(h.get("cleanupSecretName"))
    return {n for n in names if n}


def _command(kind: str, namespace: str, name: str) -> str:
    return f"kubectl delete {kind.lower()} " + (f"-n {namespace} " if namespace else "") + name


_WHAT = {
    "ca": "CA Secret: a CA private key",
    "bundle": "bundle target: Pods that mount it lose the trust bundle",
    "leaf": "issued leaf: the application's certificate and key",
    "renewal-baseline": "renewal guard baselines (fingerprints, no keys)",
}


def leftovers(objects, holders, policies: Mapping[str, Mapping[str, Any]], only: str | None) -> list[dict[str, Any]]:
    """The rows: ``objects`` labelled for policies, ``holders`` every bundle target (for opted-in
    ones holding a deleted policy's CAs), ``policies`` the present ones by name."""
    rows = []
    for o in objects:
        policy = policies.get(o.policy)
        uid = ((policy or {}).get("metadata") or {}).get("uid")
        what = _WHAT.get(o.role, f"object with role {o.role or '(none)'}")
        if policy is None:
            state = DELETED
            if o.collected:
                what += ("; the garbage collector deletes it with its policy (ownerReference): still here, it was "
                         "orphaned or not collected yet")
        elif o.uid and uid and o.uid != uid:
            state = EARLIER
            what += f"; created for an earlier policy of this name (uid {o.uid}): spec.ca.adopt: true takes it over"
        elif o.role == "ca" and o.namespace and o.name not in _in_use(policy):
            state = PRESENT
            what = ("retired CA key: not the active CA nor a running rotation's; the operator deletes it only once "
                    "its certificate has expired")
        else:
            continue
        rows.append({"policy": o.policy, "policyState": state, "kind": o.kind, "namespace": o.namespace,
                     "name": o.name, "role": o.role, "what": what, "command": _command(o.kind, o.namespace, o.name)})
    for o in holders:
        for p in o.bundle_policies:
            if p == o.policy or p in policies or (only and p != only):
                continue
            rows.append({"policy": p, "policyState": DELETED, "kind": o.kind, "namespace": o.namespace,
                         "name": o.name, "role": "opted-in target",
                         "what": f"holds the CA certificates of {p} (its owner opted in with certpolicy.io/inject-ca-from); "
                                 "the object is not the operator's: remove those certificates, and the policy's name from its "
                                 "certpolicy.io/bundle-policies annotation, by hand",
                         "command": None})
    return sorted(rows, key=lambda r: (r["policy"], r["policyState"], r["kind"], r["namespace"], r["name"]))


def run(args: argparse.Namespace, raw) -> int:
    from certpolicy.kube.policyobjects import BUNDLE_TARGETS, list_policy_objects
    from certpolicy.plugin.reads import read

    policies = {p["metadata"]["name"]: p for p in read(raw, {"CertificatePolicy": True}).of("CertificatePolicy")}
    labelled = list_policy_objects(raw, args.policy)
    holders = list_policy_objects(raw, selector=BUNDLE_TARGETS)
    for listing in (labelled, holders):
        for kind, why in listing.unavailable.items():
            print(f"note: {kind} not listed: {why}", file=sys.stderr)
        for kind in listing.capped:
            print(f"note: more {kind} than could be listed; only the first were looked at", file=sys.stderr)
    rows = [r for r in leftovers(labelled.objects, holders.objects, policies, args.policy)
            if not args.namespace or r["namespace"] in ("", args.namespace)]
    if structured(args):
        dump({"policy": args.policy, "leftovers": rows}, sys.stdout, args.output)
        return 0
    who = f"CertificatePolicy {args.policy}" if args.policy else "any CertificatePolicy"
    if not rows:
        sys.stdout.write(f"Nothing left behind by {who}.\n")
        return 0
    table(["policy", "state", "kind", "namespace", "name", "what"],
          [[r["policy"], r["policyState"], r["kind"], r["namespace"] or "-", r["name"], r["what"]] for r in rows],
          sys.stdout)
    commands = [r["command"] for r in rows if r["command"]]
    if commands:
        sys.stdout.write("\nTo remove them (read WHAT first: a bundle target or leaf may still be in use):\n")
        sys.stdout.writelines(f"  {c}\n" for c in commands)
    return 0

"""``kubectl certpolicy rotate POLICY --plan``: what a CA rotation of this policy would do, and what would stall it.

A dry run (nothing is written; a rotation itself is requested with the ``certpolicy.io/rotate``
annotation, docs/rotation.md). From the live policy and cluster it lists:

* the bundle targets the new CA is added to (step 1) and later removed from (step 5), from the
  policy's status;
* the managed leaves re-issued from the new CA (step 3, ``spec.issuance``), at most
  ``issuanceLimits.perMinute`` a minute;
* the **unmanaged leaves** — Secrets the policy selects whose certificate chains to the current
  CA but that the operator does not issue: step 4 waits for their owners to re-issue them, and
  turns ``Stalled`` after ``rotation.leafTimeout``;
* the **Pods to restart** — Pods using a bundle target or a leaf through ``subPath``, ``env`` or
  ``envFrom``, which never see an update: step 4 waits for those using a leaf to restart (the
  operator restarts their owners only with ``rotation.restartWorkloads``); those holding a
  bundle stop trusting the new leaves;
* the expected duration with the configured delays (``propagationDelay``, probes, re-issue rate,
  ``leafPropagationDelay``), and the worst case (``leafTimeout``) when something would stall.

Exit status: 0 nothing needs attention; 1 it would stall (unmanaged leaves, or Pods using a leaf
that must restart, without ``restartWorkloads``) or break Pods (a Pod holding a copy of a bundle
target keeps only the old CA and stops trusting the new leaves); 3 the
plan cannot be made (no such policy, no CA yet, invalid settings).
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
from collections.abc import Mapping
from typing import Any, TypedDict

from certpolicy.plugin.blast import CHAINS, KINDS, TargetError, radius
from certpolicy.plugin.output import dump, table
from certpolicy.plugin.reads import read
from certpolicy.policy.spec import PolicySpecError

PLAN = "kubectl-certpolicy-plan"
EXIT_ATTENTION = 1


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Dry run of a CA rotation: targets, leaves to re-issue, unmanaged leaves and subPath Pods "
                          "that would stall it, expected duration. Exit 1 when it would stall.")
    parser.add_argument("policy", metavar="POLICY")
    parser.add_argument("--plan", action="store_true", required=True,
                        help="required: only the plan is made here (a rotation is requested with the "
                             "certpolicy.io/rotate annotation)")


class _Step(TypedDict):
    step: int
    phase: str
    seconds: int
    what: str


def _seconds(d: dt.timedelta) -> int:
    return int(d.total_seconds())


def _human(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    h, rem = divmod(seconds, 3600)
    return f"{h}h{rem // 60:02d}m" if h else f"{rem // 60}m{rem % 60:02d}s" if rem % 60 else f"{rem // 60}m"


def make_plan(policy: Mapping[str, Any], selection, secret_mounts: Mapping, configmap_mounts: Mapping, objects,
              operator_namespace: str, now: dt.datetime) -> dict[str, Any]:
    """The plan, from the live policy, its selection, the Pods' mounts and the cluster's objects."""
    from certpolicy.pki.fingerprint import certificate_fingerprint
    from certpolicy.plugin.live import trusted_by_policy
    from certpolicy.rotation.model import RotationSettings

    name = policy["metadata"]["name"]
    spec, status = policy.get("spec") or {}, policy.get("status") or {}
    try:
        settings = RotationSettings.from_spec(spec)
    except PolicySpecError as e:
        raise TargetError(f"policy {name} cannot rotate: {'; '.join(e.problems)}") from None
    ca_fp = (status.get("ca") or {}).get("fingerprint")
    ca_cert = next((c for c in trusted_by_policy(policy) if certificate_fingerprint(c) == ca_fp), None)
    if ca_cert is None:
        raise TargetError(f"policy {name} has no CA in its status yet: nothing to rotate")

    targets = [dict(t) for t in ((status.get("bundleTargets") or {}).get("targets") or ())]
    managed = sorted({(i.get("namespace", ""), i.get("secretName", "")) for i in spec.get("issuance") or ()})
    selected = {(rec.namespace, rec.name) for rec in selection.secrets}
    chaining = {(d.namespace, d.name) for d in radius([ca_cert], objects, now)
                if d.kind == "Secret" and d.via.startswith(CHAINS)}
    ca_secret = (operator_namespace, settings.ca_secret_name)
    unmanaged = sorted((chaining & selected) - set(managed) - {ca_secret})

    # Pods that never see an update of what they use: subPath mounts, env and envFrom
    restart = []
    used = [(t["kind"], t.get("namespace", ""), t["name"], "bundle target")
            for t in targets if t["kind"] in ("ConfigMap", "Secret")]
    used += [("Secret", ns, n, "managed leaf") for ns, n in managed]
    used += [("Secret", ns, n, "unmanaged leaf") for ns, n in unmanaged]
    for kind, ns, n, role in used:
        for m in (configmap_mounts if kind == "ConfigMap" else secret_mounts).get((ns, n), ()):
            how = "subPath" if m.sub_path else m.via if m.via in ("env", "envFrom") else None
            if how:
                restart.append({"namespace": m.namespace, "pod": m.pod, "kind": kind, "name": n, "role": role, "how": how})

    leaf_pods = [p for p in restart if p["role"] != "bundle target"]
    reissue = math.ceil(len(managed) / settings.reissue_per_minute) * 60 if managed else 0
    probes = max((_seconds(p.timeout) for p in settings.probes), default=0)
    steps: list[_Step] = [
        {"step": 1, "phase": "AddNewCA", "seconds": 0, "what": f"add the new CA to {len(targets)} bundle targets"},
        {"step": 2, "phase": "VerifyBundles", "seconds": _seconds(settings.propagation_delay) + probes,
         "what": f"read every target back, then wait propagationDelay {_human(_seconds(settings.propagation_delay))}"
                 + (f" and {len(settings.probes)} probe handshakes" if settings.probes else "")},
        {"step": 3, "phase": "IssueFromNewCA", "seconds": reissue,
         "what": f"promote the new CA, re-issue {len(managed)} managed leaves ({settings.reissue_per_minute}/min)"},
        {"step": 4, "phase": "AwaitLeaves", "seconds": _seconds(settings.leaf_delay),
         "what": f"wait leafPropagationDelay {_human(_seconds(settings.leaf_delay))} after the last leaf moved"
                 + (f"; {len(unmanaged)} unmanaged leaves must be re-issued by their owners (Stalled after "
                    f"leafTimeout {_human(_seconds(settings.leaf_timeout))})" if unmanaged else "")
                 + (f"; {len(leaf_pods)} Pods using a leaf must restart"
                    + (" (restartWorkloads does it)" if settings.restart_workloads else "") if leaf_pods else "")},
        {"step": 5, "phase": "RemoveOldCA", "seconds": 0, "what": f"remove the old CA from {len(targets)} targets"},
    ]
    expected = sum(s["seconds"] for s in steps)
    stalls = bool(unmanaged) or (bool(leaf_pods) and not settings.restart_workloads)
    # a Pod holding a copy of a bundle target keeps the old CA only: it stops trusting the new
    # leaves from step 3 on, unless restarted after step 2
    breaks = any(p["role"] == "bundle target" for p in restart)
    running = (status.get("rotation") or {}).get("step")
    return {
        "policy": name, "ca": {"fingerprint": ca_fp, "secretName": settings.ca_secret_name},
        "running": {"step": running, "phase": (status.get("rotation") or {}).get("phase")} if running else None,
        "settings": {"propagationDelay": _human(_seconds(settings.propagation_delay)),
                     "leafPropagationDelay": _human(_seconds(settings.leaf_delay)),
                     "leafTimeout": _human(_seconds(settings.leaf_timeout)),
                     "restartWorkloads": settings.restart_workloads,
                     "issuancePerMinute": settings.reissue_per_minute, "probes": len(settings.probes),
                     "paused": settings.paused},
        "targets": targets,
        "managedLeaves": [{"namespace": ns, "name": n} for ns, n in managed],
        "unmanagedLeaves": [{"namespace": ns, "name": n} for ns, n in unmanaged],
        "podsToRestart": restart,
        "steps": steps,
        "expectedSeconds": expected,
        "worstCaseSeconds": expected - steps[3]["seconds"] + _seconds(settings.leaf_timeout) if stalls else expected,
        "wouldStall": stalls,
        "wouldBreak": breaks,
    }


def run(args: argparse.Namespace, raw) -> int:
    from certpolicy.checkcmd import UsageError
    from certpolicy.environment import operator_namespace
    from certpolicy.plugin.live import LiveInventory

    objects = read(raw, KINDS)
    policy = next((p for p in objects.of("CertificatePolicy") if p["metadata"]["name"] == args.policy), None)
    if policy is None:
        raise TargetError(f"CertificatePolicy {args.policy} not found")
    try:
        with LiveInventory(raw.api_client) as live:
            selection = live.select(f"{PLAN}/{args.policy}", policy.get("spec") or {})
            secret_mounts, cm_mounts = live.inventory.mounts("Secret"), live.inventory.mounts("ConfigMap")
    except UsageError as e:
        raise TargetError(str(e)) from None
    doc = make_plan(policy, selection, secret_mounts, cm_mounts, objects, operator_namespace(),
                    dt.datetime.now(dt.UTC))
    if args.output == "json":
        dump(doc, sys.stdout)
    else:
        write(doc, sys.stdout)
    return EXIT_ATTENTION if doc["wouldStall"] or doc["wouldBreak"] else 0


def write(doc: Mapping[str, Any], out) -> None:
    out.write(f"Rotation plan for CertificatePolicy {doc['policy']} (CA {doc['ca']['fingerprint'][:19]}…, "
              f"Secret {doc['ca']['secretName']})\n")
    if doc["running"]:
        out.write(f"note: a rotation is already at step {doc['running']['step']} ({doc['running']['phase']})\n")
    s = doc["settings"]
    out.write(f"settings: propagationDelay {s['propagationDelay']}, leafPropagationDelay {s['leafPropagationDelay']}, "
              f"leafTimeout {s['leafTimeout']}, {s['issuancePerMinute']} leaves/min, {s['probes']} probes"
              + (", restartWorkloads" if s["restartWorkloads"] else "") + (", PAUSED" if s["paused"] else "") + "\n\n")
    table(["step", "phase", "takes", "what"], [[st["step"], st["phase"], _human(st["seconds"]), st["what"]]
                                               for st in doc["steps"]], out)
    out.write(f"\nexpected: {_human(doc['expectedSeconds'])}"
              + (f"; worst case {_human(doc['worstCaseSeconds'])} (step 4 until leafTimeout)" if doc["wouldStall"] else "")
              + "\n")
    for title, rows, headers in (
        ("bundle targets", [[t["kind"], t.get("namespace") or "-", t["name"], t.get("state", "")] for t in doc["targets"]],
         ["kind", "namespace", "name", "state"]),
        ("managed leaves (re-issued in step 3)", [[m["namespace"], m["name"]] for m in doc["managedLeaves"]],
         ["namespace", "name"]),
        ("unmanaged leaves on this CA (step 4 waits for their owners)",
         [[m["namespace"], m["name"]] for m in doc["unmanagedLeaves"]], ["namespace", "name"]),
        ("Pods that never see an update (subPath, env, envFrom): restart them (a leaf's: step 4 waits; "
         "a bundle's: they stop trusting the new leaves from step 3)",
         [[p["namespace"], p["pod"], f"{p['kind']} {p['name']}", p["role"], p["how"]] for p in doc["podsToRestart"]],
         ["namespace", "pod", "uses", "as", "through"]),
    ):
        out.write(f"\n{title}: {len(rows) or 'none'}\n")
        if rows:
            table(headers, rows, out)
    verdict = [w for w, on in (("WOULD STALL", doc["wouldStall"]), ("WOULD BREAK Pods", doc["wouldBreak"])) if on]
    out.write("\n" + (" and ".join(verdict) + ": see above.\n" if verdict else "Nothing would stall or break it.\n"))

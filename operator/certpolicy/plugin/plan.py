"""``kubectl certpolicy rotate plan POLICY`` (formerly ``rotate POLICY --plan``): what a CA rotation of this policy would do, and where it would stop.

A dry run (nothing is written; a rotation itself is requested with the ``certpolicy.io/rotate``
annotation, docs/rotation.md). The plan has no rules of its own: it builds the observation the
operator builds (``inventory/observation.py``: the leaves in scope and the CA each chains to, the
Pods that read a leaf or bundle only at start, the bundle targets) and runs the operator's own
decision function forward on it (``rotation/forecast.py``). So it stops where the operator would
stop, for the reason the operator would give, in the operator's words:

* **Completed** — every step finishes; the plan says when (the delays, the re-issue rate and the
  probe retries are the machine's own timers);
* **Stalled at step N** — the machine reports ``Stalled`` after ``leafTimeout``: leaves the
  operator does not issue, Pods that read a bundle (step 2) or a leaf (step 4) only at start
  without ``restartWorkloads``;
* **Held at step N** — it waits for ever without stalling: a probe the operator's allow-list
  refuses (``ProbeNotAllowed``), a bundle target the operator may not write, ``paused``.

What the plan reads instead of what the operator reads, and assumes (printed with the plan): the
CAs' fingerprints from the policy's status (CA Secrets only checked to exist, metadata only: no
key leaves the cluster); the targets' state from ``status.bundleTargets`` (a target in an error
state is one the operator cannot write); the operator's probe allow-list from ``--probe-allow``
(default: ``CERTPOLICY_PROBE_ALLOW``, else the operator's default) and its probe retry from
``CERTPOLICY_PROBE_RETRY`` (default 30 s, as the operator's); probes it admits accept the canary
and then serve a leaf from the new CA; restarted Pods start within a second.

Exit status: 0 it would complete; 1 it would stall, be held, or not start; 3 the plan cannot be
made (no such policy, no CA yet, invalid settings).
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from certpolicy.plugin.blast import TargetError
from certpolicy.plugin.output import dump, structured, table
from certpolicy.plugin.reads import MAX_ITEMS
from certpolicy.policy.durations import format_duration
from certpolicy.policy.spec import PolicySpecError

EXIT_ATTENTION = 1
#: Target states (status.bundleTargets) in which the operator cannot write the target.
UNWRITABLE = frozenset({"Error", "NotManaged", "Refused", "Conflict", "TooLarge", "NotServed"})


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("rotate plan POLICY: dry run of a CA rotation with the operator's own decision code: the "
                          "steps, how long, and where and why it would stall or be held. Exit 1 when it would not "
                          "complete.")
    parser.epilog = ("Reads: get the CertificatePolicy; list Namespaces (metadata only); the Secrets its selector can select (TLS "
                     "Secrets by fieldSelector and its secretSelector, in the namespaces its namespaceSelector "
                     "matches; Secrets of other types with its labels; get each Secret in selector.names and "
                     "issuance); list Pods; get each CA Secret as metadata only; with spec.ca.certManager, list "
                     "cert-manager Certificates (the Issuer's namespace; for a ClusterIssuer every namespace, paged "
                     "and capped) and get the Secret of each one the Issuer signs. Secrets are parsed as they "
                     "arrive: no tls.key is kept or printed.")
    parser.add_argument("--cert-manager-namespace", metavar="NS", default=None,
                        help="cert-manager's cluster resource namespace, where a ClusterIssuer's CA Secret lives "
                             "(default: $CERTPOLICY_CERT_MANAGER_NAMESPACE, else cert-manager), as the operator's "
                             "--cert-manager-namespace")
    parser.add_argument("words", nargs="+", metavar="plan POLICY",
                        help="plan POLICY: make the plan (a rotation itself is requested with the "
                             "certpolicy.io/rotate annotation)")
    parser.add_argument("--plan", action="store_true",
                        help="deprecated (kept for one release): `rotate POLICY --plan` is `rotate plan POLICY`")
    parser.add_argument("--request", metavar="ID", default="plan",
                        help="the certpolicy.io/rotate value you will set: the rotation's id in the plan's messages "
                             "(default: plan)")
    parser.add_argument("--probe-allow", metavar="PATTERNS", default=None,
                        help="the operator's --probe-allow (default: $CERTPOLICY_PROBE_ALLOW, else the operator's "
                             "default *.svc,*.svc.<cluster domain>)")


def _secret_exists(raw, namespace: str, name: str) -> bool:
    """Whether a Secret exists, read as metadata only (its data never leaves the cluster)."""
    from kubernetes.client import ApiException

    from certpolicy.kube.rawapi import METADATA_ONLY_WATCH

    try:  # PartialObjectMetadata, the same Accept as a watch's
        raw.get(f"/api/v1/namespaces/{namespace}/secrets/{name}", accept=METADATA_ONLY_WATCH)
        return True
    except ApiException as e:
        if e.status == 404:
            return False
        raise TargetError(f"cannot read Secret {namespace}/{name}: HTTP {e.status}") from None


def observed_cas(raw, status: Mapping[str, Any], state, settings, namespace: str):
    """What ``Observation.ca_secrets`` holds, from the status instead of the Secrets' keys: the CA
    each Secret the machine looks at holds, as the operator last recorded it. Returns
    (cas, absent)."""
    from certpolicy.policy.cahistory import history_certificates
    from certpolicy.rotation import CAInfo, secrets_to_observe

    ca = status.get("ca") or {}
    certs = history_certificates(ca.get("history"))
    known: dict[str, str | None] = {settings.ca_secret_name: ca.get("fingerprint")}
    if settings.supplied_ca_secret_name:  # its certificate is not read: named, not fingerprinted
        known[settings.supplied_ca_secret_name] = f"sha256:supplied-in-{settings.supplied_ca_secret_name}"
    cur = state.current
    if cur is not None:
        known[cur.new_ca_secret_name] = cur.new_ca
        known[cur.retired_ca_secret_name] = cur.old_ca
    elif state.history and state.history[0].cleanup_secret_name:
        known[state.history[0].cleanup_secret_name] = state.history[0].new_ca
    cas: dict[str, Any] = {}
    absent: set[str] = set()
    for name in secrets_to_observe(state, settings):
        fp = known.get(name)
        if not _secret_exists(raw, namespace, name):
            cas[name] = None
            absent.add(name)
        elif fp:
            cert = certs.get(fp)
            cas[name] = CAInfo(fp, cert.not_valid_after_utc if cert is not None else None)
        else:
            cas[name] = None
    return cas, absent


def target_reader(status: Mapping[str, Any], state, active: str | None):
    """``ReadTarget`` from ``status.bundleTargets``: a target in an error state is unreadable and
    unwritable; any other holds the CAs the policy's state says it does. Truststore primaries
    are not modelled: the machine rewrites a wrong bare alias in the same action that adds the CA,
    so they never change where a rotation stops. Returns (reader, unwritable ids)."""
    from certpolicy.inventory.bundletargets import target_id
    from certpolicy.inventory.observation import TargetReading
    from certpolicy.policy.bundleref import BundleRef

    states = {(t.get("kind"), t.get("namespace", ""), t.get("name")): t.get("state")
              for t in (status.get("bundleTargets") or {}).get("targets") or ()}
    held = {active} if active else set()
    cur = state.current
    if cur is not None and not cur.rolling_back:
        held = {cur.old_ca, cur.new_ca} - {None} if cur.step < 5 else {cur.new_ca} - {None}
    unwritable: set[str] = set()

    def read(entry: Mapping[str, Any], namespace: str) -> TargetReading:
        ref = BundleRef.parse(entry)
        if states.get((ref.kind, namespace, ref.name)) in UNWRITABLE:
            unwritable.add(target_id(ref.kind, namespace, ref.name, ref.key))
            return TargetReading(None)
        return TargetReading(frozenset(f for f in held if f))

    return read, unwritable


def issuer_certificates(raw, spec: Mapping[str, Any], cluster_resource_namespace: str):
    """With ``spec.ca.certManager``: (the Issuer, the Certificates it signs by their Secret), read
    as the operator's rotation reads them (one bounded list); None without the field."""
    from kubernetes.client import ApiException

    from certpolicy.kube.certmanager import IssuerRef, list_issued

    ref = IssuerRef.from_spec(spec, cluster_resource_namespace)
    if ref is None:
        return None
    try:
        return ref, list_issued(raw, ref)
    except ApiException as e:
        if e.status == 404:
            raise TargetError(f"the policy rotates {ref}, but this cluster serves no certificates.cert-manager.io "
                              "(cert-manager's CRDs are not installed)") from None
        raise TargetError(f"cannot list certificates.cert-manager.io for {ref}: HTTP {e.status}") from None


def make_plan(raw, policy: Mapping[str, Any], inventory, operator_namespace: str, now: dt.datetime,
              probe_allow: str | None, request: str = "plan", issuer=None) -> dict[str, Any]:
    """The plan, from the live policy and an inventory of the cluster (synced, its reads declared);
    ``issuer``: :func:`issuer_certificates` of the policy (its Certificates are managed leaves)."""
    from certpolicy.environment import PROBE_RETRY
    from certpolicy.inventory.observation import build_observation
    from certpolicy.kube.certmanager import is_ready
    from certpolicy.rotation import RotationSettings, RotationState, StateError
    from certpolicy.rotation.forecast import forecast
    from certpolicy.rotation.probeallow import AllowList

    name = policy["metadata"]["name"]
    spec, status = policy.get("spec") or {}, policy.get("status") or {}
    try:  # the probe retry as the operator sets it (handlers/rotation.py), from the same variable
        settings = replace(RotationSettings.from_spec(spec), probe_retry=PROBE_RETRY.delta())
    except PolicySpecError as e:
        raise TargetError(f"policy {name} cannot rotate: {'; '.join(e.problems)}") from None
    except ValueError as e:
        raise TargetError(str(e)) from None
    try:
        state = RotationState.from_dict(status.get("rotation"))
    except StateError as e:
        raise TargetError(f"policy {name}: {e}") from None
    active = (status.get("ca") or {}).get("fingerprint")
    if not active:
        raise TargetError(f"policy {name} has no CA in its status yet: nothing to rotate")
    cas, absent = observed_cas(raw, status, state, settings, operator_namespace)
    read_target, unwritable = target_reader(status, state, active)
    annotations = (policy.get("metadata") or {}).get("annotations") or {}
    issued = issuer[1].by_secret if issuer is not None else None
    obs = build_observation(inventory, spec, status, annotations, now, settings, cas=cas, absent=absent,
                            ca_certs=(), read_target=read_target,
                            issuer_leaves=None if issued is None else {k: is_ready(c) for k, c in issued.items()})
    allow = AllowList.parse(probe_allow) if probe_allow is not None else AllowList.from_env()
    fc = forecast(state, obs, settings, now, probe_verdict=lambda p: allow.refusal(p.host),
                  unwritable=frozenset(unwritable), request=request)
    leaves = sorted(obs.leaves, key=lambda leaf: leaf.id)
    by_id = {leaf.id: leaf for leaf in leaves}
    return {
        "policy": name, "ca": {"fingerprint": active, "secretName": settings.ca_secret_name},
        "running": ({"id": state.current.id, "step": state.current.step, "phase": state.current.phase}
                    if state.current else None),
        "settings": {"propagationDelay": format_duration(settings.propagation_delay),
                     "leafPropagationDelay": format_duration(settings.leaf_delay),
                     "leafTimeout": format_duration(settings.leaf_timeout),
                     "restartWorkloads": settings.restart_workloads,
                     "issuancePerMinute": settings.reissue_per_minute, "probes": len(settings.probes),
                     "probeAllow": allow.describe(), "paused": settings.paused},
        "forecast": {"outcome": fc.outcome, "step": fc.step, "phase": fc.phase, "reason": fc.reason,
                     "message": fc.message, "afterSeconds": int(fc.after.total_seconds()),
                     "steps": [{"step": s.step, "phase": s.phase, "afterSeconds": int(s.after.total_seconds())}
                               for s in fc.steps],
                     "events": [{"reason": r, "message": m} for r, m in fc.events]},
        "targets": [{"id": t, "writable": t not in unwritable} for t in sorted(obs.targets)],
        "managedLeaves": [leaf.id for leaf in leaves if leaf.managed],
        "issuerCertificates": None if issuer is None or issued is None else {
            "issuer": str(issuer[0]), "capped": issuer[1].capped,
            "certificates": [{"certificate": f"{k.partition('/')[0]}/{(c.get('metadata') or {}).get('name')}",
                              "secret": k, "ready": is_ready(c),
                              "chainsTo": by_id[k].issuer if k in by_id else None,
                              "onActiveCA": k in by_id and by_id[k].issuer == active}
                             for k, c in sorted(issued.items())]},
        "unmanagedLeaves": [leaf.id for leaf in leaves if not leaf.managed and leaf.issuer == active],
        "podsReadingAtStart": [{"pod": p.id, "owner": p.owner, "leaves": sorted(p.leaves),
                                "bundles": sorted(p.bundles)} for p in obs.pods],
        "completes": fc.finishes,
        "expectedSeconds": int(fc.after.total_seconds()) if fc.finishes else None,
    }


def run(args: argparse.Namespace, raw) -> int:
    from kubernetes.client import ApiException

    from certpolicy import GROUP, PLURAL, VERSION
    from certpolicy.checkcmd import UsageError
    from certpolicy.environment import operator_namespace
    from certpolicy.plugin.scoped import for_policy

    args.policy = policy_argument(args)
    try:
        policy = raw.get(f"/apis/{GROUP}/{VERSION}/{PLURAL}/{args.policy}")
    except ApiException as e:
        raise TargetError(f"CertificatePolicy {args.policy} not found" if e.status == 404
                          else f"cannot read CertificatePolicy {args.policy}: HTTP {e.status}") from None
    spec = policy.get("spec") or {}
    issued = [(i["namespace"], i["secretName"]) for i in spec.get("issuance") or ()
              if isinstance(i, dict) and i.get("namespace") and i.get("secretName")]
    # What the operator's observation reads: the policy's selection, its issued leaves, every Pod
    # (which ones read a leaf or bundle only at start); no other Secret.
    from certpolicy.environment import cert_manager_namespace

    issuer = issuer_certificates(raw, spec, args.cert_manager_namespace or cert_manager_namespace())
    if issuer is not None:  # the Secrets of the Issuer's Certificates are leaves too, selected or not
        issued += [(k.partition("/")[0], k.partition("/")[2]) for k in issuer[1].by_secret]
    inventory = for_policy(raw, spec, extra_names=issued, pods=True)
    for what in inventory.capped:
        print(f"warning: more than {MAX_ITEMS} {what}: only the first were examined", file=sys.stderr)
    try:
        doc = make_plan(raw, policy, inventory, operator_namespace(), dt.datetime.now(dt.UTC),
                        args.probe_allow, args.request, issuer=issuer)
    except UsageError as e:
        raise TargetError(str(e)) from None
    if structured(args):
        dump(doc, sys.stdout, args.output)
    else:
        write(doc, sys.stdout)
    return 0 if doc["completes"] else EXIT_ATTENTION


def policy_argument(args: argparse.Namespace) -> str:
    """POLICY of ``rotate plan POLICY``, or of the deprecated ``rotate POLICY --plan`` (with a
    warning on stderr); anything else is a usage error (exit 3)."""
    words = list(args.words)
    if len(words) == 2 and words[0] == "plan":
        return str(words[1])
    if len(words) == 1 and args.plan:
        print("warning: `kubectl certpolicy rotate POLICY --plan` is deprecated and goes in the next release; use "
              f"`kubectl certpolicy rotate plan {words[0]}`", file=sys.stderr)
        return str(words[0])
    raise TargetError("usage: kubectl certpolicy rotate plan POLICY (only the plan is made here; a rotation is "
                      "requested with the certpolicy.io/rotate annotation)")


def _human(seconds: int) -> str:
    return format_duration(dt.timedelta(seconds=seconds))


def write(doc: Mapping[str, Any], out) -> None:
    fc, s = doc["forecast"], doc["settings"]
    out.write(f"Rotation plan for CertificatePolicy {doc['policy']} (CA {doc['ca']['fingerprint'][:19]}…, "
              f"Secret {doc['ca']['secretName']})\n")
    if doc["running"]:
        out.write(f"note: rotation {doc['running']['id']} is running, at step {doc['running']['step']} "
                  f"({doc['running']['phase']}); the plan goes on from there\n")
    out.write(f"settings: propagationDelay {s['propagationDelay']}, leafPropagationDelay {s['leafPropagationDelay']}, "
              f"leafTimeout {s['leafTimeout']}, {s['issuancePerMinute']} leaves/min, {s['probes']} probes "
              f"(allow-list: {s['probeAllow']})" + (", restartWorkloads" if s["restartWorkloads"] else "")
              + (", PAUSED" if s["paused"] else "") + "\n\n")
    table(["step", "phase", "entered after"], [[st["step"], st["phase"], _human(st["afterSeconds"])]
                                               for st in fc["steps"]], out)
    for title, rows, headers in (
        ("bundle targets", [[t["id"], "yes" if t["writable"] else "NO (see status.bundleTargets)"]
                            for t in doc["targets"]], ["target", "writable"]),
        ("managed leaves (re-issued in step 3)", [[m] for m in doc["managedLeaves"]], ["leaf"]),
        *([(f"Certificates of {cm['issuer']} (cert-manager re-issues them in step 3"
            + ("; MORE WERE NOT LISTED, the list was capped" if cm["capped"] else "") + ")",
            [[c["certificate"], c["secret"], "yes" if c["ready"] else "NO", (c["chainsTo"] or "-")[:19],
              "yes" if c["onActiveCA"] else "no"] for c in cm["certificates"]],
            ["certificate", "secret", "ready", "chains to", "on the active CA"])]
          if (cm := doc["issuerCertificates"]) is not None else []),
        ("unmanaged leaves on this CA (step 4 waits for their owners)", [[m] for m in doc["unmanagedLeaves"]],
         ["leaf"]),
        ("Pods that read a leaf or bundle only at start (subPath, env, envFrom, trust-loaded-at-start)",
         [[p["pod"], p["owner"] or "-", ", ".join(p["bundles"]) or "-", ", ".join(p["leaves"]) or "-"]
          for p in doc["podsReadingAtStart"]], ["pod", "owner", "bundles", "leaves"]),
    ):
        out.write(f"\n{title}: {len(rows) or 'none'}\n")
        if rows:
            table(headers, rows, out)
    after = _human(fc["afterSeconds"])
    where = f"step {fc['step']}/5 {fc['phase']}" if fc["step"] else ""
    verdict = {
        "Completed": f"Completes after {after}.",
        "Aborted": f"Rolls back after {after}.",
        "Stalled": f"WOULD STALL at {where} after {after}.",
        "Held": f"WOULD BE HELD at {where}, with no end (no progress after {after}).",
        "NotStarted": "WOULD NOT START.",
    }[fc["outcome"]]
    out.write(f"\n{verdict}\nThe operator would say ({fc['reason']}): {fc['message']}\n")

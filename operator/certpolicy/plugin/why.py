"""``kubectl certpolicy why NS/SECRET | pod/NS/NAME``: everything the operator knows about one Secret.

Which policies select it (the operator's selection), its findings under each (the operator's
evaluation, against the trust bundle that policy uses), its chain and the CA it anchors to, the
trust bundles and caBundles holding that CA (where its peers get their trust), and when it will
first break: the earliest notAfter on its path. For a Pod: the same for every Secret it uses.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from certpolicy.checkcmd import EXIT_UNKNOWN, UsageError
from certpolicy.plugin.blast import CHAINS, KINDS, TargetError, pod_references, radius
from certpolicy.plugin.output import dump, table
from certpolicy.plugin.reads import read
from certpolicy.policy.evaluate import CertificateEntry, evaluate
from certpolicy.policy.report import Unchecked, compliance
from certpolicy.policy.spec import PolicySpecError, requirements_from_spec
from certpolicy.timestamps import rfc3339

WHY = "kubectl-certpolicy-why"
BUNDLE_KINDS = ("ConfigMap", "Secret", "ClusterTrustBundle", "ValidatingWebhookConfiguration",
                "MutatingWebhookConfiguration", "APIService", "CustomResourceDefinition")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Why a Secret (NS/NAME) or a Pod (pod/NS/NAME) is judged as it is: selecting policies, "
                          "findings, chain and anchor, the bundles holding its CA, when it first breaks.")
    parser.add_argument("target", metavar="NS/SECRET|pod/NS/NAME")


def _secrets_of(target: str, objects) -> tuple[str, list[tuple[str, str]]]:
    parts = target.split("/")
    if len(parts) == 3 and parts[0].lower() in ("pod", "pods", "po"):
        pod = next((p for p in objects.of("Pod") if (p["metadata"].get("namespace"), p["metadata"]["name"]) == (parts[1], parts[2])), None)
        if pod is None:
            raise TargetError(f"Pod {parts[1]}/{parts[2]} not found")
        refs = sorted({(ns, name) for kind, ns, name, _how in pod_references(pod) if kind == "Secret"})
        return f"pod {parts[1]}/{parts[2]}", refs
    if len(parts) == 3 and parts[0].lower() in ("secret", "secrets"):
        parts = parts[1:]
    if len(parts) != 2 or not all(parts):
        raise TargetError(f"{target}: expected NAMESPACE/SECRET or pod/NAMESPACE/NAME")
    return f"secret {parts[0]}/{parts[1]}", [(parts[0], parts[1])]


def explain(secret_key: tuple[str, str], objects, selections: Mapping[str, Any], bundles: Mapping[str, Any],
            now: dt.datetime) -> dict[str, Any]:
    """The explanation of one Secret, from objects already read and each policy's selection and
    trust bundle (the I/O is in :func:`run`)."""
    from certpolicy.pki.secretdata import material_from_manifest

    ns, name = secret_key
    obj = next((s for s in objects.of("Secret") if (s["metadata"].get("namespace"), s["metadata"]["name"]) == secret_key), None)
    out: dict[str, Any] = {"namespace": ns, "name": name, "exists": obj is not None, "policies": []}
    if obj is None:
        return out
    material = material_from_manifest(obj)
    policies = {p["metadata"]["name"]: p for p in objects.of("CertificatePolicy")}
    anchor_fp, anchor_cert = None, None
    path: list[CertificateEntry] = []
    for pname, selection in sorted(selections.items()):
        if not any((rec.namespace, rec.name) == secret_key for rec in selection.secrets):
            continue
        spec = policies[pname].get("spec") or {}
        try:
            requirements = requirements_from_spec(spec.get("requirements") or {})
        except PolicySpecError as e:
            out["policies"].append({"name": pname, "error": f"invalid policy: {'; '.join(e.problems)}"})
            continue
        bundle, note, unchecked = bundles[pname]
        ev = evaluate(requirements, material, bundle, now)
        # The operator's rule (policy.report.compliance): a violation is False; a trust bundle that
        # could not be read leaves chains unchecked, so no verdict (None), never "compliant".
        verdict = compliance(1, 0 if ev.compliant else 1, unchecked)
        out["policies"].append({"name": pname, "compliant": verdict, "note": note,
                                "findings": [{"severity": f.severity.label, "reason": f.reason, "message": f.message}
                                             for f in ev.findings]})
        if ev.anchor_fingerprint and anchor_fp is None:
            anchor_fp = ev.anchor_fingerprint
            anchor_cert = next((c for c in bundle or () if _fp(c) == anchor_fp), None)
        if not path:
            path = [e for e in ev.certificates if e.on_path]
    if not path:  # selected by no policy: the chain it carries, unverified
        ev = evaluate(requirements_from_spec({}), material, None, now)
        path = [e for e in ev.certificates if e.on_path]
    out["chain"] = [{"role": str(e.role), "subject": e.summary.subject, "fingerprint": e.summary.fingerprint,
                     "notAfter": rfc3339(e.summary.not_after), "source": e.source} for e in path]
    out["anchor"] = anchor_fp
    if path:
        first = min(path, key=lambda e: e.summary.not_after)
        out["firstBreaks"] = {"at": rfc3339(first.summary.not_after), "role": str(first.role), "subject": first.summary.subject}
    out["bundles"] = ([{"kind": d.kind, "namespace": d.namespace, "name": d.name, "via": d.via}
                       for d in radius([anchor_cert], objects, now)
                       if d.kind in BUNDLE_KINDS and (d.namespace, d.name) != secret_key and not d.via.startswith(CHAINS)]  # a peer, not a bundle
                      if anchor_cert is not None else [])
    return out


def _fp(cert) -> str:
    from certpolicy.pki.fingerprint import certificate_fingerprint

    return certificate_fingerprint(cert)


def run(args: argparse.Namespace, raw) -> int:
    from certpolicy.plugin.live import LiveInventory, policy_bundle

    objects = read(raw, KINDS)
    what, keys = _secrets_of(args.target, objects)
    now = dt.datetime.now(dt.UTC)
    try:
        bundles: dict[str, Any] = {}
        selections: dict[str, Any] = {}
        with LiveInventory(raw.api_client) as live:
            for policy in objects.of("CertificatePolicy"):
                pname, spec = policy["metadata"]["name"], policy.get("spec") or {}
                selections[pname] = live.select(f"{WHY}/{pname}", spec)
                try:
                    bundles[pname] = (*policy_bundle(spec, policy, args.kubeconfig, args.context), ())
                except UsageError as e:  # as the operator and `check --cluster`: chains not checked
                    note = f"trust bundle not read: {e}; chains are not checked"
                    bundles[pname] = (None, note, (Unchecked("TrustBundleUnreadable", note),))
    except UsageError as e:
        raise TargetError(str(e)) from None
    secrets = [explain(k, objects, selections, bundles, now) for k in keys]
    doc = {"target": what, "evaluatedAt": rfc3339(now), "secrets": secrets, "capped": objects.capped,
           "unavailable": objects.unavailable}
    if args.output == "json":
        dump(doc, sys.stdout)
    else:
        write(doc, sys.stdout)
    for kind in objects.capped:  # as blast-radius: what was not looked at is said, never left out silently
        print(f"warning: more than the first {len(objects.of(kind))} {kind}s were not examined", file=sys.stderr)
    for kind, reason in objects.unavailable.items():
        print(f"note: {kind} not examined ({reason})", file=sys.stderr)
    missing = [f"{s['namespace']}/{s['name']}" for s in secrets if not s["exists"]]
    if missing:  # the question about them could not be answered: exit 3, as documented
        sys.stdout.flush()
        print(f"kubectl certpolicy why: Secret {', '.join(missing)} not found", file=sys.stderr)
        return EXIT_UNKNOWN
    return 0


def write(doc: Mapping[str, Any], out) -> None:
    if not doc["secrets"]:
        out.write(f"{doc['target']} uses no Secret.\n")
    for i, s in enumerate(doc["secrets"]):
        if i:
            out.write("\n")
        out.write(f"Secret {s['namespace']}/{s['name']}" + ("" if s["exists"] else ": not found") + "\n")
        if not s["exists"]:
            continue
        if s.get("firstBreaks"):
            fb = s["firstBreaks"]
            out.write(f"  first breaks   {fb['at']}  ({fb['role']} {fb['subject']} expires)\n")
        out.write(f"  anchor         {s['anchor'] or 'none (not verified against any policy bundle)'}\n")
        out.write("  chain\n")
        for c in s["chain"]:
            out.write(f"    {c['role']:<12} {c['subject']}  notAfter {c['notAfter']}  {c['fingerprint'][:19]}…  ({c['source']})\n")
        if "CertificatePolicy" in doc.get("unavailable", {}):  # not "selected by none": not known
            out.write(f"  CertificatePolicies not read ({doc['unavailable']['CertificatePolicy']}): verdicts unknown\n")
        elif not s["policies"]:
            out.write("  selected by no CertificatePolicy\n")
        for p in s["policies"]:
            verdict = p.get("error") or {True: "compliant", False: "violates it"}.get(p["compliant"], "not checked")
            out.write(f"  policy {p['name']}: {verdict}\n")
            if p.get("note"):
                out.write(f"    note: {p['note']}\n")
            for f in p.get("findings") or ():
                out.write(f"    {f['severity']:<8} {f['reason']:<20} {f['message']}\n")
        if s["bundles"]:
            out.write("  its CA is in\n")
            _indent_table(["kind", "namespace", "name", "how"],
                          [[b["kind"], b["namespace"] or "-", b["name"], b["via"]] for b in s["bundles"]], out)


def _indent_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], out) -> None:
    import io

    buf = io.StringIO()
    table(headers, rows, buf)
    for line in buf.getvalue().splitlines():
        out.write(f"    {line}\n")

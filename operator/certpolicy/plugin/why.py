"""``kubectl certpolicy why [NS/]SECRET | pod/[NS/]NAME``: everything the operator knows about one Secret.

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
from certpolicy.plugin.blast import CHAINS, TargetError, certificates_only, pod_references, radius
from certpolicy.plugin.output import dump, structured, table
from certpolicy.plugin.reads import Objects, context_namespace, get_object, read
from certpolicy.policy.certmanager import GROUP as CM_GROUP
from certpolicy.policy.certmanager import CertManagerOwner, judge_certificate_spec, name_owner
from certpolicy.policy.evaluate import CertificateEntry, evaluate
from certpolicy.policy.report import Unchecked, compliance
from certpolicy.policy.spec import PolicySpecError, requirements_from_spec
from certpolicy.timestamps import rfc3339

#: Secrets named as bundles (targets in policies' status, trust bundle sources) read at most.
MAX_BUNDLE_SECRETS = 2000
BUNDLE_KINDS = ("ConfigMap", "Secret", "ClusterTrustBundle", "ValidatingWebhookConfiguration",
                "MutatingWebhookConfiguration", "APIService", "CustomResourceDefinition")


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Why a Secret ([NS/]NAME) or a Pod (pod/[NS/]NAME) is judged as it is: selecting policies, "
                          "findings, chain and anchor, the bundles holding its CA, when it first breaks. Without NS: "
                          "-n, else the context's namespace.")
    parser.add_argument("target", metavar="[NS/]SECRET|pod/[NS/]NAME")
    parser.epilog = (
        "Reads: list CertificatePolicies; get the Secret (for a Pod: get the Pod, then each Secret it uses) and its "
        "Namespace (metadata only); list Pods in that namespace only when a policy is mountedOnly; get each policy's "
        "requirements.trustBundle; list ConfigMaps, ClusterTrustBundles, webhook configurations, APIServices and "
        "CRDs (where its CA's bundles are); get the Secret bundle targets the policies' status names; for a Secret "
        "cert-manager writes, get its Certificate (cert-manager.io; not found or not allowed is said, not fatal). It "
        "never lists Secrets. The Secret's key is checked against its certificate, as the operator checks it, and dropped: only "
        "the outcome is kept, never printed.")


def _secrets_of(target: str, raw, namespace: str) -> tuple[str, list[tuple[str, str]]]:
    """The Secrets a target names: ``NS/SECRET``, ``SECRET``, ``secret/[NS/]SECRET`` or
    ``pod/[NS/]NAME`` (a Pod: every Secret it uses); ``namespace`` where the target names none."""
    parts = target.split("/")
    if parts[0].lower() in ("pod", "pods", "po") and len(parts) in (2, 3):
        ns, name = (parts[1], parts[2]) if len(parts) == 3 else (namespace, parts[1])
        pod = get_object(raw, f"/api/v1/namespaces/{ns}/pods/{name}", f"Pod {ns}/{name}") if ns and name else None
        if pod is None:
            raise TargetError(f"Pod {ns}/{name} not found")
        refs = sorted({(ref_ns, ref) for kind, ref_ns, ref, _how in pod_references(pod) if kind == "Secret"})
        return f"pod {ns}/{name}", refs
    if parts[0].lower() in ("secret", "secrets") and len(parts) in (2, 3):
        parts = parts[1:]
    if len(parts) == 1:
        parts = [namespace, parts[0]]
    if len(parts) != 2 or not all(parts):
        raise TargetError(f"{target}: expected [NAMESPACE/]SECRET or pod/[NAMESPACE/]NAME")
    return f"secret {parts[0]}/{parts[1]}", [(parts[0], parts[1])]


def bundle_objects(raw, policies: Sequence[Mapping[str, Any]]) -> Objects:
    """Where a CA's peers get their trust, read without listing Secrets: ConfigMaps,
    ClusterTrustBundles and the caBundle kinds are listed; Secrets are read one by one — the
    bundle targets the policies' status names and their ``requirements.trustBundle`` Secrets —
    each cut to its certificates (:func:`certificates_only`)."""
    objects = read(raw, {kind: False for kind in BUNDLE_KINDS if kind != "Secret"})
    names: set[tuple[str, str]] = set()
    for policy in policies:
        for t in ((policy.get("status") or {}).get("bundleTargets") or {}).get("targets") or ():
            if isinstance(t, Mapping) and t.get("kind") == "Secret" and t.get("namespace") and t.get("name"):
                names.add((t["namespace"], t["name"]))
        source = (((policy.get("spec") or {}).get("requirements") or {}).get("trustBundle") or {}).get("secret") or {}
        if source.get("namespace") and source.get("name"):
            names.add((source["namespace"], source["name"]))
    secrets = []
    for ns, name in sorted(names)[:MAX_BUNDLE_SECRETS]:
        obj = get_object(raw, f"/api/v1/namespaces/{ns}/secrets/{name}", f"Secret {ns}/{name}")
        if obj is not None:
            secrets.append({**certificates_only(obj), "kind": "Secret"})
    if len(names) > MAX_BUNDLE_SECRETS:
        objects.capped.append("Secret")
    objects.items["Secret"] = secrets
    return objects


def explain(secret_key: tuple[str, str], material, policies: Sequence[Mapping[str, Any]], objects: Objects,
            selections: Mapping[str, Any], bundles: Mapping[str, Any], now: dt.datetime,
            owner: CertManagerOwner | None = None, certificate: dict | str | None = None) -> dict[str, Any]:
    """The explanation of one Secret (``material`` None: it does not exist), from what was already
    read: the policies, the bundle objects, each policy's selection and trust bundle (the I/O is
    in :func:`run`). ``owner``: the cert-manager Certificate that writes the Secret (its
    annotations); ``certificate``: that Certificate as read, or why it was not read."""
    ns, name = secret_key
    out: dict[str, Any] = {"namespace": ns, "name": name, "exists": material is not None, "policies": []}
    if material is None:
        return out
    if owner is not None:
        out["certManager"] = {**owner.to_dict(), "spec": "judged" if isinstance(certificate, dict)
                              else certificate or "not read"}
    by_name = {p["metadata"]["name"]: p for p in policies}
    anchor_fp, anchor_cert = None, None
    path: list[CertificateEntry] = []
    for pname, selection in sorted(selections.items()):
        if not any((rec.namespace, rec.name) == secret_key for rec in selection.secrets):
            continue
        spec = by_name[pname].get("spec") or {}
        try:
            requirements = requirements_from_spec(spec.get("requirements") or {})
        except PolicySpecError as e:
            out["policies"].append({"name": pname, "error": f"invalid policy: {'; '.join(e.problems)}"})
            continue
        bundle, note, unchecked = bundles[pname]
        ev = name_owner(evaluate(requirements, material, bundle, now), owner)  # as the operator names it
        # What the Certificate's next issuance will produce (CertificateSpecViolates, Warning).
        ahead = judge_certificate_spec(certificate, requirements) if isinstance(certificate, dict) else []
        # The operator's rule (policy.report.compliance): a violation is False; a trust bundle that
        # could not be read leaves chains unchecked, so no verdict (None), never "compliant".
        verdict = compliance(1, 0 if ev.compliant and not ahead else 1, unchecked)
        out["policies"].append({"name": pname, "compliant": verdict, "note": note,
                                "findings": [{"severity": f.severity.label, "reason": f.reason, "message": f.message}
                                             for f in (*ev.findings, *ahead)]})
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


def _certificate(raw, owner: CertManagerOwner) -> dict | str:
    """The cert-manager Certificate that writes a Secret (one GET, with the caller's credentials),
    or why it could not be read."""
    from kubernetes.client import ApiException

    try:
        return raw.get(f"/apis/{CM_GROUP}/v1/namespaces/{owner.namespace}/certificates/{owner.certificate}", timeout=30)
    except ApiException as e:  # absent CRD or Certificate (404), no RBAC (403): said, not fatal
        return {404: "not found (cert-manager's CRDs absent, or the Certificate was deleted)",
                403: "not allowed to read certificates.cert-manager.io"}.get(e.status, f"not read (HTTP {e.status})")


def _fp(cert) -> str:
    from certpolicy.pki.fingerprint import certificate_fingerprint

    return certificate_fingerprint(cert)


def run(args: argparse.Namespace, raw) -> int:
    from certpolicy.inventory.selection import select
    from certpolicy.plugin.live import policy_bundle
    from certpolicy.plugin.scoped import for_secret

    policy_list = read(raw, {"CertificatePolicy": False})
    policies = policy_list.of("CertificatePolicy")
    if args.all_namespaces:
        raise TargetError("why is about one Secret or Pod: -A/--all-namespaces does not apply")
    what, keys = _secrets_of(args.target, raw, args.namespace or context_namespace(args.kubeconfig, args.context))
    now = dt.datetime.now(dt.UTC)
    chosen = []
    for key in keys:
        inventory = for_secret(raw, key, policies)
        record = inventory.secret(key)
        chosen.append((key, record, {p["metadata"]["name"]: select(inventory, (p.get("spec") or {}).get("selector") or {})
                                     for p in policies}))
    selecting = {name for _k, _r, sel in chosen for name, s in sel.items() if s.secrets}
    bundles: dict[str, Any] = {}
    for policy in policies:  # the trust bundle of each policy that selects one of them, as the operator reads it
        pname, spec = policy["metadata"]["name"], policy.get("spec") or {}
        if pname not in selecting:
            continue
        try:
            bundles[pname] = (*policy_bundle(spec, policy, args.kubeconfig, args.context), ())
        except UsageError as e:  # as the operator and `check --cluster`: chains not checked
            note = f"trust bundle not read: {e}; chains are not checked"
            bundles[pname] = (None, note, (Unchecked("TrustBundleUnreadable", note),))
    objects = bundle_objects(raw, policies)
    objects.unavailable.update(policy_list.unavailable)
    secrets = [explain(key, record.material if record else None, policies, objects, selections, bundles, now,
                       record.cert_manager if record else None,
                       _certificate(raw, record.cert_manager) if record and record.cert_manager else None)
               for key, record, selections in chosen]
    doc = {"target": what, "evaluatedAt": rfc3339(now), "secrets": secrets, "capped": objects.capped,
           "unavailable": objects.unavailable}
    if structured(args):
        dump(doc, sys.stdout, args.output)
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
        if s.get("certManager"):
            cm = s["certManager"]
            issuer = f" from {cm['issuer']}" if cm.get("issuer") else ""
            out.write(f"  written by     cert-manager Certificate {cm['certificate']}{issuer} (change it there); "
                      f"its spec: {cm['spec']}\n")
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

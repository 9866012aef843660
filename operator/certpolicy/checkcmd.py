"""``certpolicy check``: check certificate files, directories or live Secrets against a policy.

The policy is a CertificatePolicy YAML (``--policy FILE``, its ``spec.requirements``), flags, or
both (a flag replaces the policy's value for that field). The trust bundle comes from
``--trust-bundle FILE``; in ``--secret`` mode, a policy's ``trustBundle`` ConfigMap is read from the
cluster when no file is given.

Exit codes follow monitoring-plugin conventions, so ``certpolicy check`` drops into Nagios-style
checks and CI:

* 0 — compliant (Info findings at most)
* 1 — warnings only
* 2 — at least one Critical finding
* 3 — usage error or unreadable input (a missing file, a file with no certificate in it, a Secret
  that cannot be read, an invalid policy): the check could not be done, so it reports UNKNOWN. This
  wins over 1 and 2. argparse's own exit status 2 for usage errors would read as "critical", so
  usage errors are mapped to 3 here.

Only ``--secret`` touches a cluster, and only then is the kubernetes client imported.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TextIO, TypeVar

from cryptography import x509

from certpolicy.pki.load import load_certificates
from certpolicy.pki.secretdata import (
    SecretMaterial,
    classify_data_key,
    material_from_bytes,
    material_from_manifest,
    material_from_pkcs12,
)
from certpolicy.policy.bundleref import CONFIG_MAP, SECRET, BundleRef, BundleRefError
from certpolicy.policy.durations import parse_duration, resolve_at
from certpolicy.policy.evaluate import Evaluation, evaluate
from certpolicy.policy.findings import Severity
from certpolicy.policy.knobs import declared
from certpolicy.policy.spec import PolicySpecError, Requirements, requirements_from_spec
from certpolicy.timestamps import rfc3339

T = TypeVar("T")

EXIT_OK, EXIT_WARNING, EXIT_CRITICAL, EXIT_UNKNOWN = 0, 1, 2, 3
CERT_SUFFIXES = (".pem", ".crt", ".cer", ".cert", ".der", ".p12", ".pfx")
KEYSTORE_SUFFIXES = (".p12", ".pfx")


class UsageError(Exception):
    """Bad invocation or unreadable input: exit 3."""


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Check TLS certificates (files, directories, or live Secrets) against a CertificatePolicy. "
        "Exit 0 compliant, 1 warnings, 2 critical, 3 usage error or unreadable input."
    )
    parser.add_argument("paths", nargs="*", metavar="PATH", help="certificate file (PEM/DER leaf + chain, or PKCS#12) or directory of them")
    parser.add_argument("--secret", action="append", default=[], metavar="NAMESPACE/NAME", help="check a live Secret (uses the kubeconfig); repeatable")
    parser.add_argument("--policy", metavar="FILE", help="CertificatePolicy YAML; its spec.requirements are used")
    parser.add_argument("--policy-name", metavar="NAME", help="which CertificatePolicy of a --policy file holding several (required then)")
    parser.add_argument("--trust-bundle", metavar="FILE", help="CA bundle (PEM/DER) the chain must lead to")
    parser.add_argument("--baseline", metavar="OLD", help="compare the one certificate file given (NEW) with OLD, as the renewal guard does: exit 1 on a regression (see docs/check.md)")

    req = parser.add_argument_group("requirements (each replaces the policy's value)")
    _requirement_flags(req)

    inp = parser.add_argument_group("input")
    inp.add_argument("--key", metavar="FILE", help="private key for a single certificate file")
    inp.add_argument("--ca", metavar="FILE", help="CA file shipped with the certificate (like a Secret's ca.crt)")
    inp.add_argument("--password", metavar="PASSWORD", help="password for a PKCS#12 file or an encrypted key (prefer --password-file)")
    inp.add_argument("--password-file", metavar="FILE", help="read the password from this file")
    inp.add_argument("--kubeconfig", metavar="FILE", help="kubeconfig for --secret (default: $KUBECONFIG, ~/.kube/config, in-cluster)")
    inp.add_argument("--context", metavar="NAME", help="kubeconfig context for --secret")

    out = parser.add_argument_group("output")
    out.add_argument("--output", "-o", choices=("table", "json"), default="table", help="human table (default) or JSON")
    out.add_argument("--color", choices=("auto", "always", "never"), default="auto", help="colour the table (auto: only on a terminal, unless NO_COLOR is set)")
    out.add_argument("--at", metavar="TIME", help="evaluate at this time instead of now: RFC 3339 ('2026-06-01T00:00:00Z') or an offset ('+720h', '+90d')")
    _exit_3_on_usage_errors(parser)


def _exit_3_on_usage_errors(parser: argparse.ArgumentParser) -> None:
    """Make this subcommand's usage errors exit 3 (UNKNOWN) instead of argparse's 2 (CRITICAL).

    ``cli.py`` owns the top-level parser, so unknown options are caught here: the subparser keeps
    them (instead of handing them up to the top-level parser, which would exit 2) and :func:`run`
    reports them.
    """

    def error(message: str) -> NoReturn:
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_UNKNOWN)

    original = parser.parse_known_args

    def parse_known_args(args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        ns, extras = original(args, namespace)
        if extras:
            ns._unrecognized = list(extras)
        return ns, []

    # argparse's error exit has no hook: replacing the method on this one parser is the smallest way
    # to exit with EXIT_UNKNOWN instead of 2; mypy refuses assigning to a method.
    parser.error = error  # type: ignore[method-assign]
    # typeshed declares parse_known_args as two overloads (with and without a namespace); this one
    # function serves both, which mypy cannot match against an overloaded attribute.
    parser.parse_known_args = parse_known_args  # type: ignore[method-assign,assignment]


# --- targets -------------------------------------------------------------------------------------


@dataclass
class Target:
    name: str  # "path/to/file.pem" or "secret ns/name"
    kind: str  # "file" | "secret"
    material: SecretMaterial | None = None
    evaluation: Evaluation | None = None
    error: str | None = None  # unreadable: exit 3

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"target": self.name, "kind": self.kind, "error": self.error}
        if self.evaluation is not None:
            d.update(self.evaluation.to_dict())
        return d


@dataclass
class Options:
    requirements: Requirements
    trust_bundle: list[x509.Certificate] | None
    now: dt.datetime
    password: bytes | None
    notes: list[str] = field(default_factory=list)


def run(args: argparse.Namespace) -> int:
    stdout: TextIO = sys.stdout
    try:
        extras = getattr(args, "_unrecognized", None)
        if extras:
            raise UsageError(f"unrecognized arguments: {' '.join(extras)}")
        if not args.paths and not args.secret:
            raise UsageError("nothing to check: give certificate files/directories, or --secret NAMESPACE/NAME")
        if args.policy_name and not args.policy:
            raise UsageError("--policy-name needs --policy FILE")
        policy_doc = _read_policy(args.policy, args.policy_name) if args.policy else None
        requirements = _requirements(policy_doc, args)
        password = _password(args)
        now = _now(args.at)
        bundle = _read_bundle(args.trust_bundle) if args.trust_bundle else None
        opts = Options(requirements, bundle, now, password)
        if args.baseline:
            from certpolicy.checkbaseline import run_baseline

            return run_baseline(args, opts, policy_doc, read_target=_file_target, stdout=stdout)
        targets: list[Target] = []
        targets += _file_targets(args, opts)
        if args.secret:
            targets += _secret_targets(args, opts, policy_doc)
        elif policy_doc is not None and bundle is None and _bundle_ref(policy_doc):
            opts.notes.append("the policy's trustBundle lives in the cluster and cannot be read offline: pass --trust-bundle FILE to verify chains")
    except UsageError as e:
        print(f"certpolicy check: {e}", file=sys.stderr)
        return _json_error(args, stdout, str(e))
    except PolicySpecError as e:
        print("certpolicy check: invalid policy:", file=sys.stderr)
        for p in e.problems:
            print(f"  - {p}", file=sys.stderr)
        return _json_error(args, stdout, "invalid policy: " + "; ".join(e.problems))

    for t in targets:
        if t.material is not None and t.error is None:
            t.evaluation = evaluate(opts.requirements, t.material, opts.trust_bundle, opts.now)
            if t.kind == "file" and t.material.leaf is None:
                t.error = "no certificate could be read"
    code = exit_code(targets)
    for note in opts.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.output == "json":
        json.dump({"exitCode": code, "evaluatedAt": rfc3339(opts.now), "error": None,
                   "results": [t.to_dict() for t in targets]}, stdout, indent=2)
        stdout.write("\n")
    else:
        write_table(targets, stdout, color=_use_color(args.color, stdout))
    return code


def _json_error(args: argparse.Namespace, stdout: TextIO, message: str) -> int:
    """With ``-o json`` a script always gets a JSON document, also when nothing could be checked."""
    if getattr(args, "output", None) == "json":
        json.dump({"exitCode": EXIT_UNKNOWN, "evaluatedAt": rfc3339(dt.datetime.now(dt.UTC)),
                   "error": message, "results": []}, stdout, indent=2)
        stdout.write("\n")
    return EXIT_UNKNOWN


def exit_code(targets: Sequence[Target]) -> int:
    if any(t.error for t in targets):
        return EXIT_UNKNOWN
    worst = max((t.evaluation.worst_severity or Severity.INFO for t in targets if t.evaluation), default=Severity.INFO)
    return {Severity.CRITICAL: EXIT_CRITICAL, Severity.WARNING: EXIT_WARNING}.get(worst, EXIT_OK)


# --- inputs --------------------------------------------------------------------------------------


def _read_file(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise UsageError(f"{what} {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{what} {path}: is a directory") from None
    except OSError as e:
        raise UsageError(f"{what} {path}: cannot read ({e.strerror or type(e).__name__})") from None


def _read_policy(path: str, name: str | None = None) -> Mapping[str, Any]:
    """The one policy of a file. A file with several CertificatePolicies needs ``--policy-name``:
    checking every certificate against all of them would mix policies whose selectors were meant
    for different Secrets (``examples/uat-vs-prod-sans.yaml`` holds a UAT and a prod policy)."""
    import yaml

    text = _read_file(path, "policy")
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise UsageError(f"policy {path}: not valid YAML{where}") from None
    policies = [d for d in docs if isinstance(d, Mapping) and d.get("kind") == "CertificatePolicy"]
    names = [str((d.get("metadata") or {}).get("name", "")) for d in policies]
    if name is not None:
        if name not in names:
            raise UsageError(f"policy {path}: no CertificatePolicy named {name!r} (it holds {', '.join(names) or 'none'})")
        return policies[names.index(name)]
    if len(policies) > 1:
        raise UsageError(f"policy {path} holds {len(policies)} CertificatePolicies ({', '.join(names)}): "
                         "choose one with --policy-name NAME")
    if policies:
        return policies[0]
    if len(docs) == 1 and isinstance(docs[0], Mapping):
        return docs[0]  # a bare spec or requirements mapping
    raise UsageError(f"policy {path}: no CertificatePolicy in it")


def _policy_spec(doc: Mapping[str, Any] | None) -> dict[str, Any]:
    """The requirements mapping of a policy document: a CertificatePolicy, a bare ``spec`` (with
    ``requirements``) or a bare requirements mapping."""
    if doc is None:
        return {}
    if "spec" in doc:
        spec = doc.get("spec") or {}
        if not isinstance(spec, Mapping):
            raise PolicySpecError(["spec must be a mapping"])
        req = spec.get("requirements") or {}
    elif "requirements" in doc:
        req = doc.get("requirements") or {}
    else:
        req = doc
    if not isinstance(req, Mapping):
        raise PolicySpecError(["spec.requirements must be a mapping"])
    return dict(req)


def _bundle_ref(doc: Mapping[str, Any]) -> Mapping[str, Any] | None:
    ref = _policy_spec(doc).get("trustBundle")
    return ref if isinstance(ref, Mapping) else None


def _split(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [v.strip() for item in values for v in item.split(",") if v.strip()]


def _requirement_flags(group: argparse._ArgumentGroup) -> None:
    """One flag per requirement knob that declares one (``Requirements``' fields, policy/knobs.py);
    its kind follows the field's default."""
    for d in declared(Requirements):
        flag = d.knob.flag
        if flag is None:
            continue
        if isinstance(d.default, bool):
            group.add_argument(flag.name, action=argparse.BooleanOptionalAction, default=None, help=flag.help)
        elif isinstance(d.default, int):
            group.add_argument(flag.name, type=int, metavar=flag.metavar, help=flag.help)
        elif isinstance(d.default, tuple):
            group.add_argument(flag.name, action="append", metavar=flag.metavar, help=flag.help)
        else:
            group.add_argument(flag.name, metavar=flag.metavar, help=flag.help)


def _requirements(doc: Mapping[str, Any] | None, args: argparse.Namespace) -> Requirements:
    """The policy's requirements with each flag given replacing its knob's value."""
    spec = _policy_spec(doc)
    for d in declared(Requirements):
        flag = d.knob.flag
        value = getattr(args, flag.name.lstrip("-").replace("-", "_")) if flag else None
        if flag is None or value is None or value == "":
            continue
        if flag.split:
            value = _split(value)
        if isinstance(value, str) and isinstance(d.default, dt.timedelta):
            try:
                parse_duration(value)
            except ValueError as e:
                raise UsageError(f"{flag.name} {value!r}: {e}. Accepted: a Go duration, a number with a unit "
                                 f"h, m, s, ms, us or ns, e.g. 720h (30 days) or 1h30m") from None
        *outer, name = d.knob.path
        holder = spec
        for part in outer:
            holder[part] = holder = dict(holder.get(part) or {})
        holder[name] = value
    return requirements_from_spec(spec)


def _password(args: argparse.Namespace) -> bytes | None:
    if args.password_file:
        return _read_file(args.password_file, "password file").rstrip(b"\r\n")
    if args.password is not None:
        return args.password.encode()
    return None


def _now(at: str | None) -> dt.datetime:
    """``--at`` (policy.durations.resolve_at: RFC 3339, or an offset such as '+720h' or '+90d')."""
    try:
        return resolve_at(at, dt.datetime.now(dt.UTC))
    except ValueError as e:
        raise UsageError(f"--at: {e}") from None


def _read_bundle(path: str) -> list[x509.Certificate]:
    loaded = load_certificates(_read_file(path, "trust bundle"))
    if not loaded.certificates:
        why = "; ".join(loaded.problems) or "no certificate in it"
        raise UsageError(f"trust bundle {path}: {why}")
    return list(loaded.certificates)


def _file_targets(args: argparse.Namespace, opts: Options) -> list[Target]:
    files: list[tuple[Path, Path | None, Path | None]] = []  # (cert, key, ca)
    for p in args.paths:
        path = Path(p)
        if path.is_dir():
            files += _directory(path)
        elif path.exists():
            files.append((path, None, None))
        else:
            raise UsageError(f"{p}: no such file or directory")
    if args.key and len(files) != 1:
        raise UsageError("--key needs exactly one certificate file")
    if args.key:
        files = [(files[0][0], Path(args.key), files[0][2])]
    if args.ca:
        files = [(c, k, Path(args.ca)) for c, k, _ in files]
    return [_file_target(c, k, ca, opts) for c, k, ca in files]


def _directory(path: Path) -> list[tuple[Path, Path | None, Path | None]]:
    """Certificate files in ``path`` (not recursive). ``X.key`` next to ``X.crt`` is its key; a
    CA-named file (``ca.crt``, ``ca.pem``, ...) is the others' CA file rather than a target."""
    entries = sorted(p for p in path.iterdir() if p.is_file())
    ca = next((p for p in entries if p.suffix.lower() in CERT_SUFFIXES and classify_data_key(p.name, None) == "ca"), None)
    out = []
    for p in entries:
        if p.suffix.lower() not in CERT_SUFFIXES or classify_data_key(p.name, None) in ("ca", "key", "chain", "password"):
            continue
        try:
            head = p.read_bytes()[:65536]
        except OSError:
            head = b""
        if b"PRIVATE KEY-----" in head and b"CERTIFICATE-----" not in head:
            continue  # a key stored as .pem
        key = next((k for k in (p.with_suffix(".key"), p.with_name(p.stem + "-key.pem"), p.with_name(p.stem + ".key.pem")) if k.is_file()), None)
        out.append((p, key, ca))
    if not out:
        raise UsageError(f"{path}: no certificate files (*.pem, *.crt, *.cer, *.der, *.p12, *.pfx)")
    return out


def _file_target(cert: Path, key: Path | None, ca: Path | None, opts: Options) -> Target:
    t = Target(str(cert), "file")
    try:
        data = _read_file(cert, "certificate")
        key_data = _read_file(key, "key") if key else None
        ca_data = _read_file(ca, "CA file") if ca else None
    except UsageError as e:
        t.error = str(e)
        return t
    if cert.suffix.lower() in KEYSTORE_SUFFIXES or _looks_like_pkcs12(data):
        t.material = material_from_pkcs12(data, opts.password, source=cert.name)
    else:
        t.material = material_from_bytes(data, key_data, ca_data, password=opts.password, cert_source=cert.name, key_source=key.name if key else "key", ca_source=ca.name if ca else "ca.crt")
    return t


def _looks_like_pkcs12(data: bytes) -> bool:
    if data[:1] != b"\x30" or b"-----BEGIN" in data[:4096]:
        return False
    loaded = load_certificates(data)
    return not loaded.certificates


# --- live Secrets --------------------------------------------------------------------------------


class ClusterReader:
    """Reads Secrets and ConfigMaps as JSON (``kube.rawapi.RawClient``), the kubernetes client
    imported only here. Not the generated ``CoreV1Api``: importing it builds hundreds of model
    classes, 0.8 s of a 0.9 s ``kubectl certpolicy why`` (cProfile, 1,000 namespaces)."""

    def __init__(self, kubeconfig: str | None = None, context: str | None = None) -> None:
        try:
            from certpolicy.kube.client import client_for
            from certpolicy.kube.rawapi import RawClient
        except ImportError as e:  # pragma: no cover - kubernetes is a dependency
            raise UsageError("--secret needs the kubernetes Python client") from e
        try:
            self._raw = RawClient(client_for(kubeconfig, context))
        except Exception as e:
            raise UsageError(f"cannot load a kubeconfig ({type(e).__name__}: {e})") from None

    def secret(self, namespace: str, name: str) -> dict[str, Any]:
        obj = self._call(lambda: self._raw.get(f"/api/v1/namespaces/{namespace}/secrets/{name}"),
                         f"Secret {namespace}/{name}")
        return {"type": obj.get("type"), "data": obj.get("data") or {}}

    def config_map_value(self, namespace: str, name: str, key: str) -> bytes:
        obj = self._call(lambda: self._raw.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}"),
                         f"ConfigMap {namespace}/{name}")
        data, binary = obj.get("data") or {}, obj.get("binaryData") or {}
        if key in data:
            return str(data[key]).encode()
        if key in binary:
            import base64

            return base64.b64decode(binary[key])
        raise UsageError(f"ConfigMap {namespace}/{name} has no key '{key}'")

    def secret_value(self, namespace: str, name: str, key: str) -> bytes:
        import base64

        data = self.secret(namespace, name)["data"]
        if key not in data:
            raise UsageError(f"Secret {namespace}/{name} has no key '{key}'")
        return base64.b64decode(data[key])

    @staticmethod
    def _call(fn: Callable[[], T], what: str) -> T:
        try:
            return fn()
        except Exception as e:
            status = getattr(e, "status", None)
            reason = getattr(e, "reason", None) or type(e).__name__
            # Only status and reason: an API error body could echo object contents.
            raise UsageError(f"cannot read {what}: {status or ''} {reason}".replace("  ", " ")) from None


def _secret_targets(args: argparse.Namespace, opts: Options, policy_doc: Mapping[str, Any] | None) -> list[Target]:
    refs = []
    for ref in args.secret:
        ns, sep, name = ref.partition("/")
        if not sep or not ns or not name or "/" in name:
            raise UsageError(f"--secret {ref!r}: expected NAMESPACE/NAME")
        refs.append((ns, name))
    reader = ClusterReader(args.kubeconfig, args.context)
    if opts.trust_bundle is None and policy_doc is not None:
        ref = _bundle_ref(policy_doc)
        if ref is not None:
            opts.trust_bundle = _cluster_bundle(reader, ref)
    targets = []
    for ns, name in refs:
        t = Target(f"secret {ns}/{name}", "secret")
        try:
            manifest = reader.secret(ns, name)
        except UsageError as e:
            t.error = str(e)
        else:
            t.material = material_from_manifest(manifest, password=opts.password)
        targets.append(t)
    return targets


def _cluster_bundle(reader: ClusterReader, spec: Mapping[str, Any]) -> list[x509.Certificate]:
    try:
        ref = BundleRef.parse(spec)
    except BundleRefError as e:
        raise UsageError(f"trustBundle {e}") from None
    if ref.kind not in (CONFIG_MAP, SECRET):
        raise UsageError("trustBundle must name a configMap or a secret")
    if not ref.namespace:
        raise UsageError(f"trustBundle.{ref.field} needs namespace and name")
    read = reader.config_map_value if ref.kind == CONFIG_MAP else reader.secret_value
    loaded = load_certificates(read(ref.namespace, ref.name, ref.key))
    if not loaded.certificates:
        raise UsageError(f"trust bundle {ref.field} {ref.namespace}/{ref.name} key {ref.key}: no certificate in it")
    return list(loaded.certificates)


# --- output --------------------------------------------------------------------------------------

_COLORS = {Severity.CRITICAL: "\033[31;1m", Severity.WARNING: "\033[33m", Severity.INFO: "\033[36m"}
_GREEN, _BOLD, _RESET = "\033[32m", "\033[1m", "\033[0m"


def _use_color(mode: str, stream: TextIO) -> bool:
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


def write_table(targets: Sequence[Target], out: TextIO, *, color: bool = False) -> None:
    def paint(text: str, code: str) -> str:
        return f"{code}{text}{_RESET}" if color else text

    for i, t in enumerate(targets):
        if i:
            out.write("\n")
        ev = t.evaluation
        if t.error and ev is None:
            out.write(f"{paint(t.name, _BOLD)}: {paint('UNKNOWN', _COLORS[Severity.CRITICAL])} — {t.error}\n")
            continue
        assert ev is not None
        worst = ev.worst_severity
        if t.error:
            status = paint("UNKNOWN", _COLORS[Severity.CRITICAL])
        elif ev.compliant:
            status = paint("OK", _GREEN)
        else:
            status = paint(worst.label.upper(), _COLORS[worst]) if worst else "OK"
        leaf = ev.leaf
        head = f"{paint(t.name, _BOLD)}: {status}"
        if leaf is not None:
            head += f"  leaf '{leaf.display_name}' notAfter {rfc3339(leaf.not_after)}"
        if ev.anchor_fingerprint:
            head += f"  anchor {ev.anchor_fingerprint[:19]}…"
        out.write(head + "\n")
        if not ev.findings:
            continue
        rows = [(f.severity, f.reason, f"{f.cert.role}" if f.cert else "-", f.message) for f in ev.findings]
        w_sev = max(len("SEVERITY"), *(len(r[0].label) for r in rows))
        w_reason = max(len("REASON"), *(len(r[1]) for r in rows))
        w_role = max(len("CERT"), *(len(r[2]) for r in rows))
        out.write(f"  {'SEVERITY':<{w_sev}}  {'REASON':<{w_reason}}  {'CERT':<{w_role}}  MESSAGE\n")
        for sev, reason, role, message in rows:
            out.write(f"  {paint(f'{sev.label:<{w_sev}}', _COLORS[sev])}  {reason:<{w_reason}}  {role:<{w_role}}  {message}\n")
    if len(targets) > 1:
        counts = {"OK": 0, "WARNING": 0, "CRITICAL": 0, "UNKNOWN": 0}
        for t in targets:
            if t.error:
                counts["UNKNOWN"] += 1
            elif t.evaluation and not t.evaluation.compliant and t.evaluation.worst_severity:
                counts[t.evaluation.worst_severity.label.upper()] += 1
            else:
                counts["OK"] += 1
        out.write("\n" + ", ".join(f"{n} {k.lower()}" for k, n in counts.items() if n) + f" ({len(targets)} checked)\n")

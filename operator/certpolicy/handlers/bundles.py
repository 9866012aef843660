"""Writing a policy's CA certificates into every trust bundle target, and verifying each one.

The trust-manager split: the *sources* are the policy's trusted CAs (from its CA history), the
*build* is :func:`certpolicy.pki.bundle.merge` (sets, canonical order, foreign certificates kept),
the *targets* are a ConfigMap (or opt-in Secret) per selected namespace or one cluster-wide
ClusterTrustBundle, and the *encodings* are
PEM plus an optional PKCS#12 truststore. Each target is written only when its set of
certificates (or truststore entries) changes, then read back from the API and verified on its
own: one store updated and another forgotten is exactly the outage this guards against.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography import x509
from kubernetes.client import ApiException

from certpolicy.environment import NOT_MANAGED_RECHECK, allow_system_namespaces, operator_namespace
from certpolicy.handlers.context import PassContext
from certpolicy.handlers.passwords import PasswordSecrets
from certpolicy.handlers.problems import Problem
from certpolicy.inventory.bundletargets import entry_namespaces, target_id
from certpolicy.inventory.inventory import Inventory
from certpolicy.kube.managed import NotManaged, kind_served, merge_into_target, read
from certpolicy.kube.ownership import Owner, TargetConflict, refused_key, refused_namespace
from certpolicy.kube.rawapi import RawClient
from certpolicy.kube.status import policy_path
from certpolicy.kube.targets import TargetKind, target_kind
from certpolicy.pki.bundle import contains, merge, read_bundle
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.pki.load import MAX_CERTIFICATES, MAX_INPUT_BYTES
from certpolicy.pki.truststore import (
    Password,
    TruststoreEntry,
    build_jks_truststore,
    build_truststore,
    read_jks_truststore,
    read_truststore,
    truststore_matches,
)
from certpolicy.policy.bundleref import BundleRef

MAX_LISTED_TARGETS = 100
#: Bundle target states that make the policy Degraded, and the reason they are reported under.
TARGET_FAILURES = {"Error": "BundleTargetFailed", "NotManaged": "BundleTargetNotOwned",
                   "Refused": "BundleTargetRefused", "Conflict": "BundleTargetConflict",
                   "TooLarge": "BundleTooLarge"}


@dataclass(frozen=True)
class TargetState:
    kind: str
    namespace: str
    name: str
    key: str
    state: str  # Verified | Pending | Error | NotManaged | Refused | Conflict | TooLarge | NotServed
    message: str = ""
    written: bool = False

    def to_dict(self) -> dict[str, str]:
        d = {"kind": self.kind, "namespace": self.namespace, "name": self.name, "state": self.state}
        if self.message:
            d["message"] = self.message
        return d


@dataclass
class BundleReport:
    targets: list[TargetState] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    writes: int = 0

    @property
    def verified(self) -> int:
        return sum(1 for t in self.targets if t.state == "Verified")

    def status(self) -> dict[str, Any]:
        return {
            "total": len(self.targets),
            "verified": self.verified,
            "targets": [t.to_dict() for t in sorted(self.targets, key=lambda t: (t.state == "Verified", t.namespace))
                        ][:MAX_LISTED_TARGETS],
        }


# ---- truststore encodings -------------------------------------------------------------------------

@dataclass(frozen=True)
class TruststoreFormat:
    """One truststore encoding a target can carry next to its PEM (``formats.<name>`` of an entry).
    A new encoding is one more entry in :data:`TRUSTSTORE_FORMATS`."""

    build: Callable[[Sequence[x509.Certificate], str, Password, str | None], bytes]
    matches: Callable[[bytes | None, Password, Sequence[x509.Certificate], str, str | None], bool]
    read: Callable[[bytes, Password], frozenset[TruststoreEntry] | None]


TRUSTSTORE_FORMATS: dict[str, TruststoreFormat] = {
    "pkcs12": TruststoreFormat(build_truststore, truststore_matches, read_truststore),
    "jks": TruststoreFormat(build_jks_truststore, functools.partial(truststore_matches, jks=True), read_jks_truststore),
}


@dataclass(frozen=True)
class TargetTruststore:
    """One truststore of an entry: its encoding, key, alias and password (None: unreadable)."""

    format: TruststoreFormat
    key: str
    alias: str | None
    password: bytes | None


@dataclass(frozen=True)
class TargetEntry:
    """One ``spec.trustBundles`` entry, parsed once per pass, its truststore passwords read."""

    spec: Mapping[str, Any]
    ref: BundleRef
    kind: TargetKind
    stores: tuple[TargetTruststore, ...]
    problems: tuple[Problem, ...] = ()

    @property
    def exclusive(self) -> bool:
        return bool(self.spec.get("exclusive"))

    @classmethod
    def read(cls, passwords: PasswordSecrets, entry: Mapping[str, Any]) -> TargetEntry:
        ref = BundleRef.parse(entry)
        kind = target_kind(ref.kind)
        stores, problems = [], []
        for name, fmt in (entry.get("formats") or {}).items():
            if name not in TRUSTSTORE_FORMATS or not fmt or not kind.holds_truststores:
                continue
            # The password Secret is in the policy's Reads: a password created after the policy,
            # or changed, wakes it and re-encodes the truststore at once. Read once per pass.
            password, problem = passwords.truststore(fmt.get("passwordSecretRef"))
            if problem:
                problems.append(problem)
            stores.append(TargetTruststore(TRUSTSTORE_FORMATS[name], fmt["key"], fmt.get("alias"), password))
        return cls(entry, ref, kind, tuple(stores), tuple(problems))

    def namespaces(self, inventory: Inventory) -> list[str]:
        return entry_namespaces(inventory, self.spec)

    def target_id(self, namespace: str) -> str:
        return target_id(self.ref.kind, namespace, self.ref.name, self.ref.key)


def target_fingerprints(raw: RawClient, entry: TargetEntry, namespace: str,
                        default_alias: str = "") -> tuple[frozenset[str] | None, str | None]:
    """The CAs one target holds, read back from the API on its own: the fingerprints in its PEM
    that every truststore of the target holds too (None when it cannot be read); and the CA its
    first truststore names with the bare alias (``alias``, else ``default_alias``: the policy's
    name), None without a truststore or when no entry has that alias."""
    try:
        obj = read(raw, entry.kind.kind, namespace, entry.ref.name)
    except ApiException:
        return None, None
    pem = entry.kind.read_pem(obj, entry.ref.key)
    fps = frozenset(read_bundle(pem).fingerprint_set) if pem is not None else frozenset()
    if obj is None:
        return fps, None
    primary = None
    for i, store in enumerate(entry.stores):
        data = entry.kind.read_truststore_bytes(obj, store.key)
        held = store.format.read(data, store.password) if data else None
        # A CA counts only when every format of the target holds it.
        fps = fps & frozenset(e.fingerprint for e in held) if held is not None else frozenset()
        if i == 0 and held:
            bare = (store.alias or default_alias).strip().lower()
            primary = next((e.fingerprint for e in held if e.alias == bare), None)
    return fps, primary


# ---- writing ---------------------------------------------------------------------------------------

class BundleTooLarge(Exception):
    """A target's bundle was not read in full; writing a merge of the part that was would drop the rest."""


def policy_alive(raw: RawClient) -> Callable[[str], bool]:
    """Whether a CertificatePolicy of that name exists (asked once per name per pass): a claim on a
    shared target by a policy that is gone no longer blocks anyone."""
    known: dict[str, bool] = {}

    def alive(name: str) -> bool:
        if name not in known:
            try:
                raw.get(policy_path(name))
                known[name] = True
            except ApiException as e:
                known[name] = e.status != 404
        return known[name]

    return alive


def refusal(kind: TargetKind, namespace: str, key: str) -> str | None:
    """Why a target is never written, whoever owns it (None: ownership decides)."""
    if not kind.namespaced:
        return None
    return refused_key(key) or refused_namespace(namespace, operator_namespace(), allow_system_namespaces())


@dataclass(frozen=True)
class _BundleWrite:
    """What every target of one distribution gets: the same CAs, the same retired ones."""

    owner: Owner
    trusted: Sequence[x509.Certificate]
    retired: set[str]
    primary: str | None  # the active CA's fingerprint: the bare alias in truststores
    alive: Callable[[str], bool]  # whether another policy claiming a shared key still exists

    @property
    def want(self) -> set[str]:
        return {fingerprint(c) for c in self.trusted}


def distribute(raw: RawClient, inventory: Inventory, owner: Owner, entries: Sequence[Mapping[str, Any]], *,
               trusted: Sequence[x509.Certificate], retired: set[str], primary: str | None,
               only: set[str] | None = None, passwords: PasswordSecrets | None = None) -> BundleReport:
    """Merge ``trusted`` into every target (removing ``retired``), then read each back and verify.
    ``passwords``: the pass's password Secrets (read once per pass); None outside a pass."""
    passwords = passwords or PasswordSecrets(raw)
    report = BundleReport()
    job = _BundleWrite(owner, trusted, retired, primary, policy_alive(raw))
    served: dict[str, bool] = {}
    for spec in entries:
        entry = TargetEntry.read(passwords, spec)
        ref, kind = entry.ref, entry.kind
        if ref.kind not in served:
            served[ref.kind] = kind_served(raw, ref.kind)
        if not served[ref.kind]:
            message = (f"the API server does not serve {kind.api_version} {kind.plural}"
                       f"{f' ({kind.served_note})' if kind.served_note else ''}, so {ref.kind} {ref.name} "
                       "cannot be written")
            report.targets.append(TargetState(ref.kind, "", ref.name, ref.key, "NotServed", message))
            report.problems.append(Problem(f"{ref.kind}NotServed", message))
            continue
        report.problems += entry.problems
        for ns in entry.namespaces(inventory):
            if only is not None and entry.target_id(ns) not in only:
                continue
            why = refusal(kind, ns, ref.key)
            if why:
                report.targets.append(TargetState(ref.kind, ns, ref.name, ref.key, "Refused", why))
                continue
            report.targets.append(_write_target(raw, job, entry, ns))
            if report.targets[-1].written:
                report.writes += 1
    return report


def _write_target(raw: RawClient, job: _BundleWrite, entry: TargetEntry, ns: str) -> TargetState:
    kind, name, key = entry.kind, entry.ref.name, entry.ref.key
    want = job.want

    def update(current: dict[str, Any] | None) -> dict[str, Any] | None:
        if current is None and not job.trusted:
            return None  # only removing (a deleted policy's CAs): never create a target for that
        pem = kind.read_pem(current, key)
        merged = merge(pem, job.trusted, job.retired - want, exclusive=entry.exclusive)
        if merged.truncated and not entry.exclusive:
            raise BundleTooLarge(f"key {key!r} holds more certificates (or bytes) than the operator reads "
                                 f"({MAX_CERTIFICATES:,} certificates, {MAX_INPUT_BYTES // 2**20} MiB); it is not "
                                 "written, since a merge would drop the certificates that were not read")
        changed = merged.changed or pem is None
        # Same set in other formatting: keep the stored bytes (no churn that restarts pods).
        new_pem = merged.pem.encode() if changed or pem is None else pem
        stores: dict[str, bytes | None] = {}
        certs = list(read_bundle(merged.pem).certificates)
        for store in entry.stores:
            if not certs:
                # Nothing left to trust (a deleted policy's CAs removed, nothing foreign): the
                # truststore key is removed, not written empty. See docs/trust-bundles.md.
                if kind.read_truststore_bytes(current, store.key) is not None:
                    stores[store.key] = None
                    changed = True
                continue
            if store.password is None:
                continue  # its password is unreadable: reported, the truststore is left as it is
            alias = store.alias or job.owner.name
            prim = job.primary if job.primary in {fingerprint(c) for c in certs} else None
            if not store.format.matches(kind.read_truststore_bytes(current, store.key), store.password, certs, alias, prim):
                stores[store.key] = store.format.build(certs, alias, store.password, prim)
                changed = True
        if not changed:
            return None
        return kind.render(current, key, new_pem, stores)

    try:
        result = merge_into_target(raw, kind.kind, ns, name, job.owner, update, key=key, exclusive=entry.exclusive,
                                   alive=job.alive)
    except NotManaged as e:
        return TargetState(kind.kind, ns, name, key, "NotManaged", str(e))
    except TargetConflict as e:
        return TargetState(kind.kind, ns, name, key, "Conflict", str(e))
    except BundleTooLarge as e:
        return TargetState(kind.kind, ns, name, key, "TooLarge", str(e))
    except ApiException as e:
        return TargetState(kind.kind, ns, name, key, "Error", f"HTTP {e.status}: {str(e.reason)[:200]}")
    # Read back on its own, from the API, after this target's own write.
    try:
        back = read(raw, kind.kind, ns, name)
    except ApiException as e:
        return TargetState(kind.kind, ns, name, key, "Error", f"read-back failed: HTTP {e.status}", result.written)
    check = contains(kind.read_pem(back, key), want, absent=job.retired - want)
    if check.ok:
        return TargetState(kind.kind, ns, name, key, "Verified", written=result.written)
    missing = ", ".join(sorted(fp.removeprefix("sha256:")[:12] for fp in check.missing))
    return TargetState(kind.kind, ns, name, key, "Pending",
                       f"missing {missing}" if missing else "retired CA still present", result.written)


def bundles_stage(ctx: PassContext, *, trusted: Sequence[x509.Certificate], retired: set[str],
                  primary: str | None) -> None:
    """The bundles stage: the policy's CAs merged into every ``spec.trustBundles`` target, each verified."""
    report = distribute(ctx.raw, ctx.inventory, ctx.policy, ctx.spec["trustBundles"], trusted=trusted,
                        retired=retired, primary=primary, passwords=ctx.passwords)
    ctx.out.problems += report.problems
    for t in report.targets:
        if t.state in TARGET_FAILURES:
            ctx.out.problems.append(Problem(TARGET_FAILURES[t.state], f"{t.kind} {t.namespace}/{t.name}: {t.message}"))
        if t.state == "NotManaged":
            # An object someone else owns is not watched (it carries no bundle label), so its
            # owner opting in later is noticed by looking again: one read per target, no write.
            ctx.out.wake_by(ctx.now + NOT_MANAGED_RECHECK.delta())
    ctx.out.status["bundleTargets"] = report.status()

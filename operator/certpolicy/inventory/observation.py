"""The rotation machine's :class:`~certpolicy.rotation.Observation`, built in one place.

The operator's rotation stage (``handlers/rotation.py``) and ``kubectl certpolicy rotate --plan``
(``plugin/plan.py``) both feed :func:`~certpolicy.rotation.decide` what this module builds, so the
plan cannot disagree with the operator about which leaves are in scope, which chain to which CA,
which Pods read a bundle or leaf only at start, or what a lost CA is. What differs is only how
the raw facts are read, passed in by the caller: the operator reads every CA Secret and bundle
target back from the API on each pass; the plugin, which never pulls CA keys to a laptop, takes
the CAs' fingerprints from the policy's status and the targets' state from
``status.bundleTargets``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NamedTuple

from cryptography import x509

from certpolicy.inventory.bundletargets import entry_namespaces, target_id
from certpolicy.inventory.inventory import Inventory
from certpolicy.inventory.records import SecretRecord
from certpolicy.inventory.selection import select
from certpolicy.pki.chain import verify_chain
from certpolicy.policy.bundleref import BundleRef
from certpolicy.policy.cahistory import active_in_history, history_certificates
from certpolicy.rotation import CAInfo, Leaf, Observation, PodUse, ProbeResult, RotationSettings
from certpolicy.rotation.triggers import FORCE_ANNOTATION, ROTATE_ANNOTATION


class TargetReading(NamedTuple):
    """One bundle target as read: the CAs it holds (None: unreadable), the CA its first
    truststore names with the bare alias, and whether it has a truststore form at all."""

    fingerprints: frozenset[str] | None
    primary: str | None = None
    has_store: bool = False


#: (``spec.trustBundles`` entry, namespace) -> what that target holds.
ReadTarget = Callable[[Mapping[str, Any], str], TargetReading]


def build_observation(inventory: Inventory, spec: Mapping[str, Any], status: Mapping[str, Any],
                      annotations: Mapping[str, str], now: dt.datetime, settings: RotationSettings, *,
                      cas: Mapping[str, CAInfo | None], absent: set[str], ca_certs: Sequence[x509.Certificate],
                      read_target: ReadTarget, probe_results: Sequence[ProbeResult] = (),
                      issuer_leaves: Mapping[str, bool] | None = None) -> Observation:
    """``cas``: the CA each Secret of ``secrets_to_observe`` holds (None: absent or unusable);
    ``absent``: those of them that do not exist; ``ca_certs``: the CA certificates read with them
    (leaves chain to these, or to a CA the history keeps); ``issuer_leaves``: with
    ``spec.ca.certManager``, the Secrets (``namespace/name``) of the Certificates whose issuerRef
    names the Issuer, and whether each Certificate is Ready: managed leaves, re-issued by cert-manager."""
    history = (status.get("ca") or {}).get("history")
    kept = history_certificates(history)  # parsed once per pass: the lost CA and the leaves' anchors
    lost = None
    if settings.ca_secret_name in absent and (had := active_in_history(history)) is not None:
        cert = kept.get(had["fingerprint"])
        lost = CAInfo(had["fingerprint"], cert.not_valid_after_utc) if cert is not None else None
    targets: dict[str, frozenset[str] | None] = {}
    primaries: dict[str, str | None] = {}
    by_object: dict[tuple[str, str, str], list[str]] = {}
    for entry in spec.get("trustBundles") or ():
        ref = BundleRef.parse(entry)
        for ns in entry_namespaces(inventory, entry):
            tid = target_id(ref.kind, ns, ref.name, ref.key)
            reading = read_target(entry, ns)
            targets[tid] = reading.fingerprints
            if reading.has_store:
                primaries[tid] = reading.primary
            by_object.setdefault((ref.kind, ns, ref.name), []).append(tid)
    # The history's certificates too: leaves still chain to a CA whose Secret is gone.
    anchors = [*ca_certs, *kept.values()]
    leaves = []
    managed = {(i["namespace"], i["secretName"]) for i in spec.get("issuance") or ()}
    ready: dict[tuple[str, str], bool] = {}
    for leaf_id, is_ready in (issuer_leaves or {}).items():
        ns, _, name = leaf_id.partition("/")
        ready[(ns, name)] = is_ready
    managed |= set(ready)
    seen = set()
    for rec in select(inventory, spec.get("selector") or {}).secrets:
        seen.add((rec.namespace, rec.name))
        leaves.append(leaf_of(rec, anchors, now, (rec.namespace, rec.name) in managed,
                              ready.get((rec.namespace, rec.name), True)))
    for key in managed - seen:
        found = inventory.secret(key)
        if found is not None:
            leaves.append(leaf_of(found, anchors, now, True, ready.get(key, True)))
    return Observation(
        ca_secrets=cas, targets=targets, leaves=tuple(leaves), probe_results=tuple(probe_results),
        rotate_request=annotations.get(ROTATE_ANNOTATION), force=annotations.get(FORCE_ANNOTATION),
        pods=start_only_pods(inventory, {leaf.id for leaf in leaves}, by_object), primaries=primaries,
        lost_ca=lost,
    )


def start_only_pods(inventory: Inventory, leaf_ids: set[str],
                    bundles: Mapping[tuple[str, str, str], Sequence[str]]) -> tuple[PodUse, ...]:
    """Pods that read one of these leaves, or one of these bundle targets (``(kind, namespace,
    name)`` -> target ids), only when they start: through ``subPath``/``env``/``envFrom``, or any
    way for a bundle when the Pod carries the ``certpolicy.io/trust-loaded-at-start`` annotation."""
    out = []
    for pod in inventory.pods.snapshot().values():
        static_leaves: set[str] = set()
        static_bundles: set[str] = set()
        for ref in pod.references:
            if ref.kind == "Secret" and ref.read_at_start_only and f"{pod.namespace}/{ref.name}" in leaf_ids:
                static_leaves.add(f"{pod.namespace}/{ref.name}")
            if ref.read_at_start_only or pod.trust_at_start:
                static_bundles.update(bundles.get((ref.kind, pod.namespace, ref.name), ()))
        if static_leaves or static_bundles:
            out.append(PodUse(f"{pod.namespace}/{pod.name}", pod.started_at, pod.owner,
                              frozenset(static_leaves), frozenset(static_bundles)))
    return tuple(sorted(out, key=lambda p: p.id))


def leaf_of(rec: SecretRecord, anchors: Sequence[x509.Certificate], now: dt.datetime, managed: bool,
            ready: bool = True) -> Leaf:
    """A selected or managed Secret as the machine sees it: the policy CA its chain reaches."""
    issuer = None
    if rec.material.leaf is not None and anchors:
        result = verify_chain(rec.material.leaf, rec.material.intermediates, anchors, now)
        issuer = result.anchor_fingerprint if result.trusted else None
    return Leaf(f"{rec.namespace}/{rec.name}", issuer, managed, ready)

"""Every wake-up source in one table: what is watched, how, and which policies a change wakes.

Read it like a controller-runtime builder chain::

    For(CertificatePolicy)                     kopf's own watch (handlers/policy.py, policy_changed):
                                               a policy's change wakes that policy
    .Watches(TLS Secrets,   secrets_concern)   each entry of WAKES below: a source, the watch that
    .Watches(Pods,          pods_concern)      feeds it, and its map function, which says whether a
    ...                                        change concerns one policy's Reads

Each :class:`Wake` names its source, declares its watch as one of five mechanisms, and gives its
map function next to it. :class:`~certpolicy.inventory.inventory.Inventory` builds the stores and
watches from the table, holds and releases what each policy's ``Reads`` names through it, gates a
policy's pass on it (synced), and routes every store change through it: a change wakes the
policies whose map function says it concerns them, judged on the object's record before *and*
after the change (a label removed still wakes the policy that selected it). A change from a
source the table does not know wakes every policy (waking too often is safe, missing a change is
not).

The five mechanisms (how a source is watched):

- :class:`Always`: one cluster-wide list-then-watch, running from the inventory's start
  (``inventory/watch.py``), filtered by the API server;
- :class:`Served`: like :class:`Always`, for a resource the cluster may not serve (a CRD such as
  cert-manager's Certificate): started once the API server serves it and lets the operator list
  it, and gating no policy's pass;
- :class:`Named`: objects named one by one: one metadata-only watch per resource, a GET for each
  tracked object (``inventory/named.py``); with ``names`` instead of ``keys``, a name tracked in
  every namespace, metadata only, never read;
- :class:`PerTargetKind`: one list-then-watch per bundle target kind (``kube/targets.py``'s
  ``TargetKind.watched``), started when a policy first declares a target of that kind;
- :class:`Labelled`: shared, reference-counted watches by server-side label selector
  (``inventory/labelled.py``).

A new source is one entry in ``WAKES`` and its map function; if the map function needs something
of the policy's spec that ``Reads`` does not hold yet, a field in ``Reads`` filled in ``Reads.of``.
An ``Always`` watch gates every policy's pass on its first list, so it is only for resources every
cluster serves: one the cluster may lack (a CRD such as cert-manager's Certificate) would never
list, and hold every policy; watch it with :class:`Served`, which starts once the API server
says it serves it (``kube.managed.resource_served``) and gates no policy.

Not in the table, because they wake no policy: the admission webhook's own list-then-watch of the
policies (``webhook/policies.py``) and the trust bundle sources it holds through the ``bundle``
purpose of the named watches (``webhook/upkeep.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from certpolicy.inventory.interest import Reads, source_ref
from certpolicy.inventory.labelled import LABELLED, WatchKey
from certpolicy.inventory.records import (
    CertificateRecord,
    NamespaceRecord,
    PodRecord,
    SecretRecord,
    parse_bundle_object,
    parse_certificate_object,
    parse_namespace_object,
    parse_pod_object,
    parse_secret_object,
)
from certpolicy.inventory.recordstore import Change, Key
from certpolicy.kube.watched import Watched

TLS_TYPE = "kubernetes.io/tls"

# Where a change comes from (one per kind of source the inventory holds).
TLS_SECRETS = "secrets"  # every kubernetes.io/tls Secret, cluster-wide
NAMED_SECRETS = "named-secrets"  # Secrets of other types, named one by one
PODS = "pods"
NAMESPACES = "namespaces"
BUNDLE_TARGETS = "bundle-targets"  # objects carrying BUNDLE_LABEL, every target kind
BUNDLE_SOURCES = "bundle-sources"  # requirements.trustBundle objects, named one by one
PASSWORD_SECRETS = "password-secrets"  # keystore password Secrets, by name in every namespace
CERTIFICATES = "certificates"  # cert-manager's Certificates, cluster-wide, once the cluster serves them

#: Objects named one by one: which of them changed, from their metadata only (one watch per resource).
NAMED_WATCHES = {
    "Secret": Watched("named-secrets", "/api/v1/secrets", metadata_only=True),
    "ConfigMap": Watched("named-configmaps", "/api/v1/configmaps", metadata_only=True),
}


@dataclass(frozen=True)
class Seen:
    """What a map function may look at besides the change: the source it came from (a labelled
    watch's includes its key), namespace labels and Secret records as the inventory holds them."""

    source: str
    namespace_labels: Callable[[str], Mapping[str, str] | None]
    secret: Callable[[Key], SecretRecord | None]


#: ``(what a policy reads, the change, what else is seen) -> whether the change concerns it``.
MapFn = Callable[[Reads, Change, Seen], bool]


# ---- the mechanisms ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Always:
    """One cluster-wide list-then-watch, from the inventory's start, whatever policies declare."""

    watched: Watched
    kind: str
    parse: Callable[[dict], Any]


@dataclass(frozen=True)
class Named:
    """Objects named one by one, for ``purpose``, in one store per resource kind. ``keys``: the
    (kind, (namespace, name)) a policy tracks, each read before the policy may pass; ``names``:
    names tracked in every namespace (Secrets only), metadata only, never read."""

    purpose: str
    kinds: tuple[str, ...]
    parse: Callable[[str], Callable[[dict], Any]]  # kind -> its record parser
    keys: Callable[[Reads], Iterable[tuple[str, Key]]] | None = None
    names: Callable[[Reads], Iterable[str]] | None = None


@dataclass(frozen=True)
class Served:
    """An :class:`Always` watch of a resource the cluster may not serve (a CRD): started once the
    API server serves ``api_version``/``plural`` and lets the operator list it (asked at the
    inventory's start, then every ``recheck`` seconds until it does: one discovery GET each), and
    never gating a policy's pass: a cluster without the CRD holds no policy."""

    watched: Watched
    kind: str
    parse: Callable[[dict], Any]
    api_version: str  # group/version, e.g. cert-manager.io/v1
    plural: str
    recheck: float = 30.0


@dataclass(frozen=True)
class PerTargetKind:
    """A list-then-watch per bundle target kind the API server serves, started when a policy first
    declares a target of that kind (``kinds``), never stopped."""

    kinds: Callable[[Reads], Iterable[str]]


@dataclass(frozen=True)
class Labelled:
    """Shared, reference-counted watches by label selector; the change source is
    ``labelled:<watch key>``."""

    keys: Callable[[Reads], frozenset[WatchKey]]


@dataclass(frozen=True)
class Wake:
    """One wake-up source: its name, how it is watched, which policies a change concerns."""

    source: str
    watch: Always | Served | Named | PerTargetKind | Labelled
    concerns: MapFn


# ---- the map functions, each next to what it judges --------------------------------------------

def secret_concerns(reads: Reads, change: Change, seen: Seen) -> bool:
    """A Secret the policy names, owns or issues, or selects by label before or after the change."""
    return reads.owns_secret(change.key) or any(reads.selects(r, seen.namespace_labels) for r in (change.old, change.new))


def pod_concerns(reads: Reads, change: Change, seen: Seen) -> bool:
    """Mounts feed mountedOnly, the subPath report and a rotation's wait for Pods that read a leaf or
    bundle only at start: a Pod matters through the Secrets and bundle targets it references."""
    refs = set()
    for pod in (change.old, change.new):
        if isinstance(pod, PodRecord):
            refs |= {(pod.namespace, r.name) for r in pod.references if r.kind == "Secret"}
            if any((r.kind, r.name) in reads.targets for r in pod.references):
                return True
    return any(k in reads.names or k in reads.issued or reads.selects(seen.secret(k), seen.namespace_labels)
               for k in refs)


def namespace_concerns(reads: Reads, change: Change, seen: Seen) -> bool:
    """Bundle targets and labelled watches follow namespaces (created, relabelled, terminating);
    label selection follows a namespace whose labels match the policy's namespaceSelector."""
    if reads.targets or reads.labelled:
        return True
    if reads.by_label is None or reads.by_label[0].empty:
        return False
    return any(isinstance(r, NamespaceRecord) and reads.by_label[0].matches(r.label_map)
               for r in (change.old, change.new))


def bundle_target_concerns(reads: Reads, change: Change, seen: Seen) -> bool:
    return (change.kind, change.key[1]) in reads.targets


def bundle_source_concerns(reads: Reads, change: Change, seen: Seen) -> bool:
    return reads.bundle_source is not None and (change.kind, *change.key) == source_ref(reads.bundle_source)


def password_concerns(reads: Reads, change: Change, seen: Seen) -> bool:
    return change.key[1] in reads.keystore_passwords


def certificate_concerns(reads: Reads, change: Change, seen: Seen) -> bool:
    """A cert-manager Certificate is judged with the Secret it writes (``spec.secretName``): its
    change concerns the policies that select that Secret, before or after the change."""
    keys = {r.secret_key for r in (change.old, change.new) if isinstance(r, CertificateRecord) and r.secret_name}
    return any(reads.owns_secret(k) or reads.selects(seen.secret(k), seen.namespace_labels) for k in keys)


def labelled_concerns(reads: Reads, change: Change, seen: Seen) -> bool:
    return seen.source[len(LABELLED) + 1:] in {str(k) for k in reads.labelled}


def _parse_named_secret(obj: dict) -> SecretRecord | None:
    # A named TLS Secret is in the TLS watch already; this store holds the other types.
    return None if obj.get("type") == TLS_TYPE else parse_secret_object(obj)


def _password_version(meta_obj: dict) -> str:
    """A password Secret's record: its resourceVersion (from the metadata watch; never its data)."""
    return str((meta_obj.get("metadata") or {}).get("resourceVersion") or "")


def _bundle_source_keys(reads: Reads) -> list[tuple[str, Key]]:
    src = reads.bundle_source
    return [(src.kind, (src.namespace, src.name))] if src is not None else []


# ---- the table --------------------------------------------------------------------------------

WAKES: tuple[Wake, ...] = (
    Wake(TLS_SECRETS, Always(Watched(TLS_SECRETS, "/api/v1/secrets", field_selector=f"type={TLS_TYPE}"),
                             "Secret", parse_secret_object), secret_concerns),
    Wake(PODS, Always(Watched(PODS, "/api/v1/pods"), "Pod", parse_pod_object), pod_concerns),
    Wake(NAMESPACES, Always(Watched(NAMESPACES, "/api/v1/namespaces"), "Namespace", parse_namespace_object),
         namespace_concerns),
    # spec.selector.names and truststore passwords: Secrets of other types than TLS, read by name.
    Wake(NAMED_SECRETS, Named("secret", ("Secret",), lambda kind: _parse_named_secret,
                              keys=lambda r: [("Secret", k) for k in r.tracked_secrets()]), secret_concerns),
    # Keystore passwordSecretRef: a name in each keystore's own namespace, so in every namespace.
    Wake(PASSWORD_SECRETS, Named("password", ("Secret",), lambda kind: _password_version,
                                 names=lambda r: r.keystore_passwords), password_concerns),
    # requirements.trustBundle: the ConfigMap or Secret the CAs leaves must chain to are read from.
    Wake(BUNDLE_SOURCES, Named("bundle", ("ConfigMap", "Secret"),
                               lambda kind: functools.partial(parse_bundle_object, kind=kind),
                               keys=_bundle_source_keys), bundle_source_concerns),
    # cert-manager Certificates (cert-manager.io/v1), judged with the Secret each writes; a cluster
    # without cert-manager serves none, and the watch starts when the CRD appears.
    Wake(CERTIFICATES, Served(Watched(CERTIFICATES, "/apis/cert-manager.io/v1/certificates"), "Certificate",
                              parse_certificate_object, "cert-manager.io/v1", "certificates"), certificate_concerns),
    # spec.trustBundles targets: every object carrying the bundle label, so an edit is repaired at once.
    Wake(BUNDLE_TARGETS, PerTargetKind(lambda r: [kind for kind, _name in r.targets]), bundle_target_concerns),
    # secretSelector, spec.trustStores, requirements.trustedBy, spec.caBundles: by label selector.
    Wake(LABELLED, Labelled(lambda r: r.labelled), labelled_concerns),
)

BY_SOURCE = {w.source: w for w in WAKES}


def concerns(reads: Reads, change: Change, seen: Seen) -> bool:
    """Whether ``change`` (from ``seen.source``) can alter what a policy that reads ``reads``
    concludes or writes: its source's map function; True for a source the table does not know."""
    wake = BY_SOURCE.get(seen.source.split(":", 1)[0])
    return True if wake is None else wake.concerns(reads, change, seen)

"""What the plugin reads from the cluster: single objects and bounded, paginated lists.

Read-only by construction: this module only GETs. Each list is paged (``limit``) and capped at
:data:`MAX_ITEMS` objects per kind; a capped list is reported, never silently cut. A list may
keep less than the objects (``keep``: a Secret parsed into a record or cut to its certificates
as its page arrives), so no Secret body outlives its page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from certpolicy.kube.ownership import ROLE_BASELINE, ROLE_LABEL

PAGE = 500
MAX_ITEMS = 50_000

#: kind -> collection path; cluster-wide lists.
PATHS = {
    "CertificatePolicy": "/apis/certpolicy.io/v1alpha1/certificatepolicies",
    "Secret": "/api/v1/secrets",
    "ConfigMap": "/api/v1/configmaps",
    "Pod": "/api/v1/pods",
    "ClusterTrustBundle": "/apis/certificates.k8s.io/v1beta1/clustertrustbundles",
    "ValidatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    "MutatingWebhookConfiguration": "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    "APIService": "/apis/apiregistration.k8s.io/v1/apiservices",
    "CustomResourceDefinition": "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
}

#: kind -> the query every list of that kind carries. The renewal guard's baseline shards are the
#: operator's bookkeeping, ~290 bytes per selected Secret and no certificate: at 100,000 Secrets
#: they were ~30 MB of the ConfigMaps that ``why`` and ``blast-radius`` listed to find bundles.
QUERIES: dict[str, dict[str, str]] = {"ConfigMap": {"labelSelector": f"{ROLE_LABEL}!={ROLE_BASELINE}"}}


#: What a 404 on the CertificatePolicy collection means: the API server does not serve the group.
CRD_MISSING = ("the CertificatePolicy CRD (certificatepolicies.certpolicy.io) is not installed in this cluster: "
               "kubectl apply -k crds/ (or kubectl apply -k manifests/ for the operator too)")


class ReadError(Exception):
    """The cluster could not be read (no kubeconfig, forbidden, unreachable): exit 3."""


@dataclass
class Objects:
    """Lists by kind, as the API returns them; ``capped`` names kinds cut at MAX_ITEMS and
    ``unavailable`` kinds the cluster does not serve or the user may not list."""

    items: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    capped: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return self.items.get(kind, [])


def connect(kubeconfig: str | None, context: str | None):
    """A RawClient for the kubeconfig (or in-cluster config)."""
    try:
        from certpolicy.kube.client import client_for
    except ImportError as e:  # pragma: no cover - a dependency
        raise ReadError("the kubernetes Python client is needed") from e
    from certpolicy.kube.rawapi import RawClient

    try:
        return RawClient(client_for(kubeconfig, context))
    except Exception as e:
        raise ReadError(f"cannot load a kubeconfig ({type(e).__name__}: {e})") from None


def context_namespace(kubeconfig: str | None, context: str | None) -> str:
    """The namespace kubectl uses for this context (``-n`` unset): the context's ``namespace``,
    else ``default`` (also in-cluster, and when the kubeconfig cannot be read: connect says why)."""
    try:
        from kubernetes import config

        contexts, active = config.list_kube_config_contexts(config_file=kubeconfig)
    except Exception:
        return "default"
    chosen = next((c for c in contexts if c.get("name") == context), None) if context else active
    return str(((chosen or {}).get("context") or {}).get("namespace") or "default")


def list_items(raw, path: str, query: Mapping[str, Any] | None = None, *, limit: int = MAX_ITEMS,
               keep: Callable[[dict[str, Any]], Any] = lambda obj: obj,
               accept: str = "application/json") -> tuple[list[Any], bool]:
    """``keep(obj)`` of each object of a list, page by page (``PAGE``), at most ``limit``; returns
    (kept, capped). ``keep`` runs as each page arrives and what it returns is all that stays: a
    Secret parsed into a record or cut to its certificates leaves its body with the page. None is
    left out. ``accept``: ``kube.rawapi.METADATA_ONLY`` where bodies are not needed. Raises
    ApiException (the caller says what it means) and ReadError when unreachable."""
    items: list[Any] = []
    cont = None
    try:
        while True:
            page = raw.get(path, {**(query or {}), "limit": PAGE, **({"continue": cont} if cont else {})},
                           accept=accept)
            for obj in page.get("items") or ():
                kept = keep(obj)
                if kept is not None:
                    items.append(kept)
            cont = (page.get("metadata") or {}).get("continue")
            if not cont:
                return items, False
            if len(items) >= limit:
                return items[:limit], True
    except OSError as e:
        raise ReadError(f"cannot reach the API server ({type(e).__name__}: {e})") from None


def get_object(raw, path: str, what: str, accept: str = "application/json") -> dict[str, Any] | None:
    """One object (None: it does not exist); any other refusal is a ReadError naming ``what``.
    ``accept``: ``kube.rawapi.METADATA_ONLY_WATCH`` for its metadata only."""
    from kubernetes.client import ApiException

    try:
        obj: dict[str, Any] = raw.get(path, accept=accept)
        return obj
    except ApiException as e:
        if e.status == 404:
            return None
        raise ReadError(f"cannot read {what}: HTTP {e.status} {e.reason or ''}".rstrip()) from None
    except OSError as e:
        raise ReadError(f"cannot reach the API server ({type(e).__name__}: {e})") from None


def list_kind(raw, kind: str, out: Objects, *, required: bool = False, query: Mapping[str, Any] | None = None,
              keep: Callable[[dict[str, Any]], Any] | None = None, path: str | None = None) -> None:
    """List ``kind`` into ``out`` (``query``: label or field selectors; ``keep``: what to keep of
    each object, see :func:`list_items`). A kind the user may not list or the cluster does not
    serve goes to ``out.unavailable``, or raises ReadError when ``required``."""
    from kubernetes.client import ApiException

    try:
        items, capped = list_items(raw, path or PATHS[kind], {**QUERIES.get(kind, {}), **(query or {})},
                                   keep=keep or (lambda obj: obj))
    except ApiException as e:
        reason = f"HTTP {e.status} {e.reason or ''}".strip()
        if e.status == 404 and kind == "CertificatePolicy":  # the group/version is not served at all
            reason = CRD_MISSING
        if required:
            raise ReadError(reason if reason == CRD_MISSING else f"cannot list {kind}: {reason}") from None
        out.unavailable[kind] = reason
        return
    if capped:
        out.capped.append(kind)
    for obj in items:
        obj.setdefault("kind", kind)
    out.items[kind] = out.items.get(kind, []) + items


def read(raw, kinds: Mapping[str, bool]) -> Objects:
    """List each kind (``kinds``: kind -> required)."""
    out = Objects()
    for kind, required in kinds.items():
        list_kind(raw, kind, out, required=required)
    return out

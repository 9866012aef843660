"""The ValidatingWebhookConfiguration: one entry per enforcing policy, registered only for what it selects.

Each entry carries the policy's own ``namespaceSelector`` and ``objectSelector`` (its
``secretSelector``), and ``matchConditions`` for what selectors cannot say (TLS Secrets only when
the secretSelector is empty; Secrets listed in ``names``; the trust bundles a policy reads or
writes, by name), so the API server never calls the webhook for an unrelated write. Every entry
has ``failurePolicy: Ignore`` and a short timeout: an operator outage never blocks the cluster
(what slips through is reported by the policy's next pass). Deletes are never registered.

The operator writes only its own configuration (RBAC ``resourceNames``). In a cluster it is
shipped empty by the manifests and chart (RBAC cannot grant ``create`` by name); outside one,
``certpolicy run`` creates it. A hash of what was written is kept in an annotation, and the
configuration is rewritten only when that hash differs or its entries, read back, no longer hold
what was written (someone removed or changed them and kept the annotation).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from kubernetes.client import ApiException

from certpolicy.kube.managed import write_operator_object
from certpolicy.kube.rawapi import RawClient
from certpolicy.webhook.policies import EnforcedPolicy
from certpolicy.webhook.server import BUNDLE_PATH, SECRET_PATH
from certpolicy.webhook.serving import CA_SECRET, SERVING_SECRET

CONFIG_NAME = "certpolicy-operator"
CONFIG_PATH = "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations"
HASH_ANNOTATION = "certpolicy.io/configuration-hash"
#: Enforcing policies registered (each has up to three entries); the rest are reported, not enforced.
MAX_POLICIES = 64
TIMEOUT_SECONDS = 3
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

ClientConfig = Callable[[str], dict[str, Any]]  # path -> clientConfig (url or service), without caBundle


def _cel_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(i) for i in items) + "]"


def _entry_name(policy: str, what: str) -> str:
    name = f"{policy}.{what}.certpolicy.io"
    if len(name) > 253:
        name = f"{hashlib.sha256(policy.encode()).hexdigest()[:16]}.{what}.certpolicy.io"
    return name


def _entry(name: str, path: str, client: ClientConfig, ca_bundle: str, rules: list[dict[str, Any]],
           conditions: list[dict[str, str]], namespace_selector: dict[str, Any] | None = None,
           object_selector: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "admissionReviewVersions": ["v1"],
        "sideEffects": "None",
        "failurePolicy": "Ignore",
        "timeoutSeconds": TIMEOUT_SECONDS,
        "matchPolicy": "Equivalent",
        "rules": rules,
        "namespaceSelector": namespace_selector or {},
        "objectSelector": object_selector or {},
        "matchConditions": conditions,
        "clientConfig": {**client(path), "caBundle": ca_bundle},
    }


def _secret_rule(operations: Sequence[str]) -> dict[str, Any]:
    return {"apiGroups": [""], "apiVersions": ["v1"], "operations": list(operations), "resources": ["secrets"],
            "scope": "Namespaced"}


_BUNDLE_RULES = {
    "ConfigMap": {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["configmaps"], "scope": "Namespaced"},
    "Secret": {"apiGroups": [""], "apiVersions": ["v1"], "resources": ["secrets"], "scope": "Namespaced"},
    "ClusterTrustBundle": {"apiGroups": ["certificates.k8s.io"], "apiVersions": ["v1beta1"],
                           "resources": ["clustertrustbundles"], "scope": "Cluster"},
}


def entries(policy: EnforcedPolicy, client: ClientConfig, ca_bundle: str, operator_namespace: str,
            operator_user: str | None) -> list[dict[str, Any]]:
    """The configuration's entries for one enforcing policy."""
    out = []
    not_own = {"name": "not-the-webhooks-own-secrets",
               "expression": f"!(request.namespace == {json.dumps(operator_namespace)} && request.name in "
                             f"{_cel_list([CA_SECRET, SERVING_SECRET])})"}
    path = SECRET_PATH + policy.name
    if policy.by_label is not None:
        selector = policy.selector
        conditions = [not_own]
        if not (selector.get("secretSelector") or {}).get("matchLabels") and not (
                selector.get("secretSelector") or {}).get("matchExpressions"):
            conditions.append({"name": "tls-secrets-only", "expression": "object.type == 'kubernetes.io/tls'"})
        out.append(_entry(_entry_name(policy.name, "secrets"), path, client, ca_bundle, [_secret_rule(["CREATE", "UPDATE"])],
                          conditions, dict(selector.get("namespaceSelector") or {}),
                          dict(selector.get("secretSelector") or {})))
    if policy.names:
        namespaces = sorted({ns for ns, _ in policy.names})
        keys = sorted(f"{ns}/{n}" for ns, n in policy.names)
        out.append(_entry(_entry_name(policy.name, "named"), path, client, ca_bundle, [_secret_rule(["CREATE", "UPDATE"])],
                          [not_own, {"name": "named-secrets",
                                     "expression": f"(request.namespace + '/' + request.name) in {_cel_list(keys)}"}],
                          {"matchExpressions": [{"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": namespaces}]}))
    refs = ([policy.bundle_source] if policy.bundle_source else []) + list(policy.targets)
    if refs:
        kinds = sorted({r.kind for r in refs})
        names = sorted({r.name for r in refs})
        conditions = [{"name": "bundles-the-policy-reads-or-writes",
                       "expression": f"request.name in {_cel_list(names)}"}]
        if operator_user and operator_user.startswith("system:serviceaccount:"):
            # The operator's own bundle writes (a rotation's) are judged by the rotation. Only a
            # ServiceAccount is exempt: a laptop's operator shares the user's own credentials.
            conditions.append({"name": "not-the-operator", "expression":
                               f"request.userInfo.username != {json.dumps(operator_user)}"})
        rules = [{**_BUNDLE_RULES[k], "operations": ["UPDATE"]} for k in kinds if k in _BUNDLE_RULES]
        out.append(_entry(_entry_name(policy.name, "bundles"), BUNDLE_PATH + policy.name, client, ca_bundle, rules,
                          conditions))
    return out


def configuration(policies: Sequence[EnforcedPolicy], client: ClientConfig, ca_bundle: str,
                  operator_namespace: str, operator_user: str | None = None) -> dict[str, Any]:
    webhooks: list[dict[str, Any]] = []
    for policy in policies[:MAX_POLICIES]:
        webhooks += entries(policy, client, ca_bundle, operator_namespace, operator_user)
    return {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": CONFIG_NAME, "labels": {"app.kubernetes.io/name": "certpolicy-operator"}},
            "webhooks": webhooks}


def read(raw: RawClient) -> dict[str, Any] | None:
    """The configuration as the API server holds it (None: there is none)."""
    try:
        return raw.get(f"{CONFIG_PATH}/{CONFIG_NAME}")
    except ApiException as e:
        if e.status != 404:
            raise
        return None


def apply(raw: RawClient, body: dict[str, Any], existing: dict[str, Any] | None) -> dict[str, Any] | None:
    """Make the configuration ``body`` from ``existing`` (as :func:`read` returned it); returns
    what the API server stored when it was written, None when it already was so. "Already so" is
    the hash of what was last written *and* the entries held as written: a configuration whose
    entries someone else changed (a re-apply of the shipped empty one keeps the annotation) is
    written again."""
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    body = json.loads(json.dumps(body))
    body["metadata"]["annotations"] = {HASH_ANNOTATION: digest}
    if existing is None:
        return write_operator_object(raw, CONFIG_PATH, CONFIG_NAME, body, None)
    if (((existing.get("metadata") or {}).get("annotations") or {}).get(HASH_ANNOTATION) == digest
            and _holds_entries(existing, body)):
        return None
    # Keep what others annotated (kubectl's last-applied configuration, say); only the webhooks are ours.
    body["metadata"]["annotations"] = {**(existing["metadata"].get("annotations") or {}), HASH_ANNOTATION: digest}
    return write_operator_object(raw, CONFIG_PATH, CONFIG_NAME, body, existing)


def holds(live: Any, wanted: Any) -> bool:
    """Whether ``live`` holds everything of ``wanted`` (the API server adds defaults, never
    removes what was written): dicts key by key, lists item by item, the rest equal."""
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(holds(live.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, list):
        return isinstance(live, list) and len(live) == len(wanted) and all(map(holds, live, wanted))
    return bool(live == wanted)


def _holds_entries(live: dict[str, Any], body: dict[str, Any]) -> bool:
    have = {w.get("name"): w for w in live.get("webhooks") or ()}
    return len(have) == len(body["webhooks"]) and all(holds(have.get(w["name"]), w) for w in body["webhooks"])

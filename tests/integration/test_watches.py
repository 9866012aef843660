"""What the operator watches, and whom a change wakes, on the real API server.

- Every bundle target kind is watched: a user's edit that drops the policy's CA from a
  ConfigMap, a Secret or a ClusterTrustBundle target is repaired by a pass the watch wakes,
  before the policy's next scheduled pass (the time it takes is recorded: 0.1-0.5 s unloaded;
  a timing goal is a benchmark's business, not an assertion on a shared machine).
- A change wakes only the policies it concerns: an edit to policy A's Secret does not
  re-evaluate policy B (counted from the operator's one log line per evaluation pass).
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import time
import uuid

import pytest
from kubernetes import client
from test_ca_bundles_issuance import (
    RUN_LABEL,
    ca_fingerprint,
    fp,
    new_namespace,
    passes_logged,
    pem_fingerprints,
    policy_body,
)

import certgen
import figures
from certpolicy.kube.managed import BUNDLE_LABEL, MANAGED_BY
from certpolicy.kube.rawapi import RawClient
from certpolicy.timestamps import rfc3339
from crd import GROUP, PLURAL, VERSION, wait_status
from kubewait import wait_for

CTB_PATH = "/apis/certificates.k8s.io/v1beta1/clustertrustbundles"
#: How long a watch-driven repair may take on a loaded 2-core machine: generous slack, since the
#: order (repaired before the next scheduled pass) is what proves the watch did it.
REPAIR_DEADLINE = 30.0


def _pem_of(kind: str, obj: dict | None, key: str) -> str:
    if obj is None:
        return ""
    if kind == "ClusterTrustBundle":
        return (obj.get("spec") or {}).get("trustBundle") or ""
    data = obj.get("data") or {}
    if kind == "Secret":
        return base64.b64decode(data[key]).decode() if key in data else ""
    return data.get(key, "")


def _path(kind: str, ns: str, name: str) -> str:
    if kind == "ClusterTrustBundle":
        return f"{CTB_PATH}/{name}"
    return f"/api/v1/namespaces/{ns}/{'secrets' if kind == 'Secret' else 'configmaps'}/{name}"


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret", "ClusterTrustBundle"])
def test_an_edit_dropping_our_ca_is_repaired_by_the_watch(operator, policies, api_client, core_v1, custom_api,
                                                             unique_name, kind):
    raw = RawClient(api_client)
    label = uuid.uuid4().hex[:8]
    ns = "" if kind == "ClusterTrustBundle" else new_namespace(core_v1, **{RUN_LABEL: label})
    name, key = unique_name, ("trustBundle" if kind == "ClusterTrustBundle" else "ca.crt")
    field = {"ConfigMap": "configMap", "Secret": "secret", "ClusterTrustBundle": "clusterTrustBundle"}[kind]
    entry = {field: {"name": name} if kind == "ClusterTrustBundle" else {"name": name, "key": key}}
    if ns:
        entry["namespaceSelector"] = {"matchLabels": {RUN_LABEL: label}}
    policies(policy_body(unique_name, label, trustBundles=[entry], rotation={"propagationDelay": "0s"}))
    ours = ca_fingerprint(custom_api, unique_name)
    path = _path(kind, ns, name)

    def fingerprints() -> set[str]:
        try:
            return pem_fingerprints(_pem_of(kind, raw.get(path), key))
        except client.ApiException as e:
            if e.status == 404:
                return set()
            raise

    wait_for(lambda: ours in fingerprints(), what=f"our CA in the {kind} target")
    wait_status(custom_api, unique_name, lambda s: (s.get("bundleTargets") or {}).get("verified") == 1,
                "the target verified")
    obj = raw.get(path)
    assert (obj["metadata"].get("labels") or {}).get(BUNDLE_LABEL) == "true"  # what the target watch selects
    # Without a wake-up, the policy's loop sleeps until this (its CA's and leaves' checks, or the
    # periodic resync): a repair before it was woken by the target's watch.
    scheduled = custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL,
                                                     unique_name)["status"]["nextEvaluationTime"]

    # The user replaces the bundle with only their CA: ours is gone.
    theirs = certgen.root(f"Their {kind} Root", key_slot=14)
    their_pem = certgen.pem(theirs).decode()
    if kind == "ClusterTrustBundle":
        obj["spec"]["trustBundle"] = their_pem
    elif kind == "Secret":
        obj["data"][key] = base64.b64encode(their_pem.encode()).decode()
    else:
        obj["data"][key] = their_pem
    edited = raw.put(path, obj)
    edited_at = time.monotonic()
    assert pem_fingerprints(_pem_of(kind, edited, key)) == {fp(theirs.cert)}

    repaired = wait_for(lambda: (lambda got: got if ours in got else None)(fingerprints()), timeout=REPAIR_DEADLINE,
                        interval=0.02, what=f"our CA back in the {kind} target")
    took = time.monotonic() - edited_at
    repaired_at = rfc3339(dt.datetime.now(dt.UTC))
    figures.record(f"{kind} target repaired {took:.2f} s after the edit that dropped our CA")
    assert repaired == {ours, fp(theirs.cert)}  # merged: their CA is kept
    assert repaired_at < scheduled, f"repaired at {repaired_at}, not before the pass scheduled for {scheduled}"
    if kind == "Secret":
        assert raw.get(path)["metadata"]["labels"][MANAGED_BY] == unique_name


def test_a_change_wakes_only_the_policy_it_concerns(operator, policies, core_v1, custom_api):
    """Policies A and B each select their own namespace; editing A's Secret re-evaluates A only."""
    from test_reconcile import make_policy, put_secret

    names, spaces = {}, {}
    for who in ("a", "b"):
        label = uuid.uuid4().hex[:8]
        ns = new_namespace(core_v1, **{"certpolicy-test-run": label})
        leaf = certgen.leaf(certgen.root(f"Root {who}"), f"{who}.example.com")
        put_secret(core_v1, ns, "tls", certgen.tls_secret(leaf))
        name = f"wake-{who}-{uuid.uuid4().hex[:6]}"
        make_policy(policies, name, label, {"extendedKeyUsages": ["serverAuth", "clientAuth"]})
        names[who], spaces[who] = name, ns
    for who in ("a", "b"):
        wait_status(custom_api, names[who], lambda s: (s.get("summary") or {}).get("selected") == 1,
                    f"policy {who} evaluated")

    def settled() -> bool:  # no pass of either policy for a moment: both loops are idle
        before = (passes_logged(operator, names["a"]), passes_logged(operator, names["b"]))
        threading.Event().wait(0.5)
        return before == (passes_logged(operator, names["a"]), passes_logged(operator, names["b"]))

    wait_for(settled, timeout=30, what="both policies idle")
    a_before, b_before = passes_logged(operator, names["a"]), passes_logged(operator, names["b"])

    # A's Secret loses clientAuth: A turns non-compliant (its pass ran), B is not evaluated.
    leaf = certgen.leaf(certgen.root("Root a"), "a.example.com", eku=["serverAuth"])
    put_secret(core_v1, spaces["a"], "tls", certgen.tls_secret(leaf))
    wait_status(custom_api, names["a"], lambda s: (s.get("summary") or {}).get("violating") == 1,
                "policy A sees its Secret violate")
    wait_for(lambda: passes_logged(operator, names["a"]) > a_before, what="A's pass logged")
    wait_for(settled, timeout=30, what="both policies idle after the edit")
    a_passes = passes_logged(operator, names["a"]) - a_before
    b_passes = passes_logged(operator, names["b"]) - b_before
    figures.record(f"after an edit of A's Secret: A evaluated {a_passes}x, B evaluated {b_passes}x")
    assert a_passes >= 1
    assert b_passes == 0, f"policy B was re-evaluated {b_passes} times for a change to A's Secret"

    # Control: the same kind of edit in B's namespace does wake B (the count above can move).
    leaf = certgen.leaf(certgen.root("Root b"), "b.example.com", eku=["serverAuth"])
    put_secret(core_v1, spaces["b"], "tls", certgen.tls_secret(leaf))
    wait_status(custom_api, names["b"], lambda s: (s.get("summary") or {}).get("violating") == 1,
                "policy B sees its own Secret violate")
    assert passes_logged(operator, names["b"]) > b_before


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_keystore_password_secrets_wake_the_policies_that_name_them(api_client, core_v1, operator_namespace,
                                                                    namespace, unique_name):
    """spec.selector, spec.trustStores and requirements.trustedBy passwordSecretRef name a Secret
    in each keystore's namespace: its creation, change and deletion wake exactly the policies that
    name it, through the inventory's wake-up table (there is no periodic re-read to fall back on).
    A Secret of that name that existed before the policy declared it is still heard when deleted."""
    from certpolicy.inventory.interest import Reads
    from certpolicy.inventory.inventory import Inventory

    sel = {"secretSelector": {"matchLabels": {"app": f"ks-{unique_name}"}}}
    stores = {"selector": {"matchLabels": {"store": f"ts-{unique_name}"}}}
    specs = {
        "selector": {"selector": {**sel, "passwordSecretRef": {"name": "pw-selector", "key": "pw"}}},
        "trust-stores": {"selector": sel, "trustStores": {**stores, "passwordSecretRef": {"name": "pw-stores"}}},
        "trusted-by": {"selector": sel, "requirements": {"trustedBy": {**stores,
                                                                       "passwordSecretRef": {"name": "pw-peers"}}}},
        "none": {"selector": sel, "trustStores": stores},
    }
    password_of = {"selector": "pw-selector", "trust-stores": "pw-stores", "trusted-by": "pw-peers"}
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "pw-peers"}, "data": {"password": _b64(b"x")}})
    woken: list[str] = []
    lock = threading.Lock()

    def wake(policies: list[str]) -> None:
        with lock:
            woken.extend(policies)

    inventory = Inventory(api_client).start()
    inventory.wake_with(wake)
    try:
        assert inventory.wait_synced(30)
        for name, spec in specs.items():
            wait_for(lambda n=name, s=spec: inventory.declare(n, Reads.of(s, operator_namespace)), timeout=30,
                     what=f"policy {name} declared")

        def heard(policy: str, since: int) -> bool:
            with lock:
                return policy in woken[since:]

        for policy, secret_name in password_of.items():
            steps = [("patched", lambda n=secret_name: core_v1.patch_namespaced_secret(
                         n, namespace, {"data": {"password": _b64(b"changed")}})),
                     ("deleted", lambda n=secret_name: core_v1.delete_namespaced_secret(n, namespace))]
            if secret_name != "pw-peers":  # pw-peers existed before the declaration
                steps.insert(0, ("created", lambda n=secret_name: core_v1.create_namespaced_secret(
                    namespace, {"metadata": {"name": n}, "data": {"password": _b64(b"first")}})))
            for what, act in steps:
                with lock:
                    since = len(woken)
                act()
                wait_for(lambda p=policy, s=since: heard(p, s), timeout=10,
                         what=f"policy {policy} woken: its password Secret {secret_name} {what}")
                with lock:
                    others = set(woken[since:]) - {policy}
                assert "none" not in others and not (others & set(password_of)), (what, secret_name, others)
    finally:
        inventory.stop()

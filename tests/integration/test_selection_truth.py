"""No verdict from a partial view (issue 14, item 1), in the shapes the issue measured.

- A policy naming an existing Opaque Secret is judged on that Secret from its first status on:
  never ``Compliant=True/NothingSelected`` plus ``SecretNotFound`` for a moment.
- P1 names ``ks/a``; P2, created later, names the existing ``ks/b`` in the same namespace and
  finds it at once; a name whose Secret is created later is found the moment it appears.
- An operator restart (``certpolicy run`` stopped with SIGTERM and started again, as a rollout
  does) changes nothing: no condition flips, ``lastTransitionTime`` kept, 0 new events.
- What ``kubectl wait --for=condition=Compliant`` concludes, at every version of the policy
  across creation and restart: it passes for the compliant policy only, never for a violating
  or an empty selection. Checked on every version the API server stored (a watch) and with a
  real ``kubectl wait`` process running through it all.
"""

from __future__ import annotations

import datetime as dt
import subprocess
import threading
import uuid

from rotation_support import watch_versions
from test_reconcile import labelled_namespace, make_policy, put_secret

import certgen
import figures
from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.kube.rawapi import RawClient
from certpolicy.timestamps import rfc3339
from crd import GROUP, PLURAL, VERSION, condition, policy_status, wait_status
from kubewait import wait_for
from operator_process import OperatorProcess

POLICIES_PATH = f"/apis/{GROUP}/{VERSION}/{PLURAL}"
MTLS = {"extendedKeyUsages": ["serverAuth", "clientAuth"]}


class PolicyVersions:
    """Every version of the named policies the API server stores, from a watch started before them."""

    def __init__(self, api_client, names: set[str]) -> None:
        self.names = names
        self.versions: dict[str, list[dict]] = {n: [] for n in names}
        self._lock = threading.Lock()
        self.watcher = watch_versions(RawClient(api_client), POLICIES_PATH, self._seen, name="policy-versions")

    def _seen(self, etype: str, obj: dict) -> None:
        name = obj["metadata"]["name"]
        if name in self.names and etype != "DELETED":
            with self._lock:
                self.versions[name].append(obj.get("status") or {})

    def of(self, name: str) -> list[dict]:
        with self._lock:
            return list(self.versions[name])

    def stop(self) -> None:
        self.watcher.stop()


def kubectl_wait_passes(status: dict) -> bool:
    """What ``kubectl wait --for=condition=Compliant`` concludes on this status."""
    return condition(status, "Compliant").get("status") == "True"


def named_policy(name: str, keys: list[tuple[str, str]]) -> dict:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
            "spec": {"selector": {"names": [{"namespace": ns, "name": n} for ns, n in keys]}, "requirements": MTLS}}


def opaque(leaf: certgen.Issued) -> dict:
    return certgen.tls_secret(leaf, type="Opaque")


def operator_events(core_v1, namespaces: list[str], names: set[str]) -> list[tuple[str, str, str]]:
    out = []
    for ns in namespaces:
        for e in core_v1.list_namespaced_event(ns).items:
            if e.source and e.source.component == "certpolicy-operator" and e.involved_object.name in names:
                out.append((e.involved_object.name, e.reason, e.metadata.name))
    return sorted(out)


def test_first_pass_and_restart_never_lie_and_kubectl_wait_agrees(
        cluster, crd, operator_namespace, api_client, core_v1, custom_api, policies, audit, tmp_path):
    run = uuid.uuid4().hex[:6]
    ca = certgen.root("truth CA")
    # (1) the shape: an existing Opaque Secret, named, violating (no clientAuth)
    legacy_ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, legacy_ns)
    put_secret(core_v1, legacy_ns, "legacy-tls", opaque(certgen.leaf(ca, "legacy.truth.test", eku=["serverAuth"])))
    # (2) a compliant label-selected TLS Secret; (3) a selection that matches nothing
    label = uuid.uuid4().hex[:8]
    good_ns = labelled_namespace(core_v1, label)
    put_secret(core_v1, good_ns, "good-tls", certgen.tls_secret(certgen.leaf(ca, "good.truth.test")))
    violating, compliant, empty = f"truth-bad-{run}", f"truth-good-{run}", f"truth-empty-{run}"
    versions = PolicyVersions(api_client, {violating, compliant, empty})
    waits: dict[str, subprocess.Popen] = {}
    op = OperatorProcess(cluster, tmp_path / "operator.log")
    try:
        op.start()
        try:
            policies(named_policy(violating, [(legacy_ns, "legacy-tls")]))
            make_policy(policies, compliant, label, MTLS)
            make_policy(policies, empty, uuid.uuid4().hex[:8], MTLS)  # no namespace carries this label
            for name in (violating, compliant, empty):
                waits[name] = subprocess.Popen(
                    [str(cluster.binaries.kubectl), f"--kubeconfig={cluster.kubeconfig}", "wait",
                     "--for=condition=Compliant", f"certpol/{name}", "--timeout=600s"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            first = {
                violating: wait_status(custom_api, violating, lambda s: condition(s, "Compliant").get("reason")
                                       == "MissingClientAuth", "the named Opaque Secret judged"),
                compliant: wait_status(custom_api, compliant, lambda s: condition(s, "Compliant").get("status")
                                       == "True", "the compliant policy"),
                empty: wait_status(custom_api, empty, lambda s: condition(s, "Compliant").get("reason")
                                   == "NothingSelected", "the empty selection"),
            }
            assert waits[compliant].wait(30) == 0, waits[compliant].stderr.read()
        finally:
            op.stop()
        assert op.proc.returncode == 0
        names = {violating, compliant, empty, "legacy-tls", "good-tls"}
        event_namespaces = [legacy_ns, good_ns, "default"]
        events_before = operator_events(core_v1, event_namespaces, names)
        last = max(s["lastEvaluationTime"] for s in first.values())
        wait_for(lambda: rfc3339(dt.datetime.now(dt.UTC)) > last, timeout=5, what="the next second")

        op.start()
        try:
            after = {name: wait_status(custom_api, name, lambda s: s.get("lastEvaluationTime", "") > last,
                                       f"{name} re-evaluated after the restart") for name in first}
        finally:
            op.stop()
        assert op.proc.returncode == 0
        events_after = operator_events(core_v1, event_namespaces, names)
        still_waiting = {name: waits[name].poll() is None for name in (violating, empty)}
    finally:
        versions.stop()
        for proc in waits.values():
            if proc.poll() is None:
                proc.terminate()
                proc.wait(10)

    # The restart changed nothing: the same conditions, lastTransitionTime included, and no event.
    for name in first:
        assert after[name]["conditions"] == first[name]["conditions"], name
    assert events_after == events_before
    # A real kubectl wait never passed on the violating policy or the empty selection.
    assert still_waiting == {violating: True, empty: True}
    # Nor would it have on any version the API server stored, and the compliant one never flipped.
    seen = {name: versions.of(name) for name in first}
    for name in (violating, empty):
        assert not [s for s in seen[name] if kubectl_wait_passes(s)], name
    assert not [s for s in seen[violating] if condition(s, "Degraded").get("reason") == "SecretNotFound"
                or condition(s, "Compliant").get("reason") == "NothingSelected"]
    assert condition(first[empty], "Compliant")["status"] == "Unknown"
    statuses = [kubectl_wait_passes(s) for s in seen[compliant] if s.get("conditions")]
    assert statuses and all(statuses), statuses
    transitions = {condition(s, "Compliant").get("lastTransitionTime") for s in seen[compliant] if s.get("conditions")}
    assert len(transitions) == 1, transitions
    figures.record(f"selection truth: {sum(len(v) for v in seen.values())} policy versions across create and "
                   f"restart, kubectl wait passed only for the compliant policy; events {len(events_before)} "
                   f"before the restart, {len(events_after)} after")


def test_a_name_in_an_already_watched_namespace_is_found_at_once(operator, policies, api_client, core_v1,
                                                                 custom_api):
    run = uuid.uuid4().hex[:6]
    ks = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ks)
    ca = certgen.root("names CA")
    for name in ("a", "b"):
        put_secret(core_v1, ks, name, opaque(certgen.leaf(ca, f"{name}.names.test")))
    p1, p2, p3 = f"names-1-{run}", f"names-2-{run}", f"names-3-{run}"
    versions = PolicyVersions(api_client, {p1, p2, p3})
    try:
        policies(named_policy(p1, [(ks, "a")]))
        wait_status(custom_api, p1, lambda s: (s.get("summary") or {}).get("selected") == 1, "P1 found ks/a")
        # P2 names the existing ks/b in the namespace P1 already made the operator look at.
        policies(named_policy(p2, [(ks, "b")]))
        wait_status(custom_api, p2, lambda s: (s.get("summary") or {}).get("selected") == 1, "P2 found ks/b",
                    timeout=10)
        st = policy_status(custom_api, p2)
        assert condition(st, "Compliant")["status"] == "True"
        assert condition(st, "Degraded")["status"] == "False"
        # P3 names ks/c before it exists: reported missing, and found the moment it is created.
        policies(named_policy(p3, [(ks, "c")]))
        wait_status(custom_api, p3, lambda s: condition(s, "Degraded").get("reason") == "SecretNotFound",
                    "ks/c reported missing")
        assert condition(policy_status(custom_api, p3), "Compliant")["status"] == "Unknown"
        put_secret(core_v1, ks, "c", opaque(certgen.leaf(ca, "c.names.test")))
        wait_status(custom_api, p3, lambda s: (s.get("summary") or {}).get("selected") == 1,
                    "ks/c found once created", timeout=10)
        assert condition(policy_status(custom_api, p3), "Degraded")["status"] == "False"
    finally:
        versions.stop()
    p2_seen = [s for s in versions.of(p2) if s.get("conditions")]
    assert p2_seen and not [s for s in p2_seen if condition(s, "Degraded").get("reason") == "SecretNotFound"
                            or condition(s, "Compliant").get("reason") == "NothingSelected"]

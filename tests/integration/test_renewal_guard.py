"""The renewal regression guard on a real API server, with no requirement written.

A Secret's first leaf becomes its baseline (kept in ConfigMaps in the operator's namespace); a
renewal that loses clientAuth, a DNS name or key strength is a finding in the policy's status and
a Warning event on the Secret with the regression's reason. The baseline and the finding survive
an operator restart without a second event; only the annotation naming the new leaf's SHA-256
clears it. ``guard: false`` reports nothing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import pytest
from test_pass_reads import CountingRawClient
from test_reconcile import labelled_namespace, make_policy, put_secret, secret_events

import certgen
import figures
from certpolicy.environment import operator_namespace as passes_namespace
from certpolicy.handlers.reconcile import reconcile_policy
from certpolicy.handlers.runtime import Runtime
from certpolicy.inventory.interest import Reads
from certpolicy.inventory.inventory import Inventory
from certpolicy.inventory.selection import select
from certpolicy.kube.baselines import ROLE_BASELINE, entry_key, shard_of
from certpolicy.kube.events import EventRecorder
from certpolicy.kube.ownership import MANAGED_BY, ROLE_LABEL
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.policy.evaluate import Evaluator
from certpolicy.policy.renewal import LeafBaseline, plain_fingerprint
from certpolicy.timestamps import rfc3339
from crd import condition, policy_status
from kubewait import wait_for
from operator_process import OperatorProcess

ACCEPTED = "certpolicy.io/renewal-accepted"


def stored_baseline(core_v1, operator_namespace: str, policy: str, ns: str, name: str) -> LeafBaseline | None:
    """The baseline the operator stored for ns/name, read from its ConfigMaps."""
    cms = core_v1.list_namespaced_config_map(
        operator_namespace, label_selector=f"{MANAGED_BY}={policy},{ROLE_LABEL}={ROLE_BASELINE}").items
    for cm in cms:
        text = (cm.data or {}).get(entry_key(ns, name))
        if text is not None:
            return LeafBaseline.from_compact(text)
    return None


def sha(issued: certgen.Issued) -> str:
    """The form a person writes into the annotation: lowercase hex, no colons."""
    return plain_fingerprint(fingerprint(issued.cert))


def violation(status: dict, name: str) -> dict | None:
    return next((v for v in status.get("violations") or () if v["name"] == name), None)


def annotate(core_v1, ns: str, name: str, value: str) -> None:
    core_v1.patch_namespaced_secret(name, ns, {"metadata": {"annotations": {ACCEPTED: value}}})


@pytest.fixture
def ca():
    return certgen.root("Renewal Guard Root CA")


def test_dropped_client_auth_is_reported_survives_a_restart_and_is_cleared_by_the_annotation(
        policies, cluster, crd, operator_namespace, core_v1, custom_api, unique_name, ca, tmp_path):
    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    first = certgen.leaf(ca, "feed.example.com")  # serverAuth + clientAuth
    put_secret(core_v1, ns, "feed-tls", certgen.tls_secret(first))
    renewed = certgen.leaf(ca, "feed.example.com", eku=["serverAuth"])  # the 2026 renewal
    other = certgen.leaf(ca, "feed.example.com", eku=["serverAuth", "codeSigning"])

    op = OperatorProcess(cluster, tmp_path / "operator.log")  # certpolicy run, stopped and started as a rollout does
    op.start()
    try:
        make_policy(policies, unique_name, label, {})  # no requirement written
        # First sight: the leaf is the baseline, and no regression.
        base = wait_for(lambda: stored_baseline(core_v1, operator_namespace, unique_name, ns, "feed-tls"),
                        what="the first leaf stored as the baseline")
        assert base.sha256 == sha(first) and base.ekus == ("clientAuth", "serverAuth")
        # (the status is written after the baselines in the same pass)
        wait_for(lambda: condition(policy_status(custom_api, unique_name), "Compliant").get("status") == "True",
                 what="Compliant=True on first sight")
        assert secret_events(core_v1, ns, "feed-tls") == []

        written = time.monotonic()
        put_secret(core_v1, ns, "feed-tls", certgen.tls_secret(renewed))
        events = wait_for(lambda: [e for e in secret_events(core_v1, ns, "feed-tls")
                                   if e.reason == "RenewalDroppedUsage"], what="RenewalDroppedUsage event")
        figures.record(f"renewal guard: Secret renewed without clientAuth → RenewalDroppedUsage Warning event "
                       f"on it in {time.monotonic() - written:.2f} s")
        [event] = events
        assert event.type == "Warning"
        assert "[clientAuth, serverAuth] → [serverAuth]" in event.message and sha(renewed) in event.message
        st = wait_for(lambda: (s := policy_status(custom_api, unique_name)) and violation(s, "feed-tls") and s,
                      what="the violation in the status")
        v = violation(st, "feed-tls")
        assert v["reasons"] == ["RenewalDroppedUsage"] and v["severity"] == "Critical", v
        assert condition(st, "Compliant")["status"] == "False"
        # The baseline is not moved to the regressed leaf.
        assert stored_baseline(core_v1, operator_namespace, unique_name, ns, "feed-tls").sha256 == sha(first)
        evaluated = st["lastEvaluationTime"]
    finally:
        op.stop()
    assert op.proc.returncode == 0
    # Status timestamps have one-second resolution: let the clock pass the last evaluation's second.
    wait_for(lambda: rfc3339(dt.datetime.now(dt.UTC)) > evaluated, timeout=5, what="the next second")

    op.start()
    try:
        # A restarted operator reads the baseline back: the regression is still one, with no new event.
        st = wait_for(lambda: (s := policy_status(custom_api, unique_name)) and s.get("lastEvaluationTime", "") > evaluated
                      and s, timeout=60, what="a pass of the restarted operator")
        assert violation(st, "feed-tls")["reasons"] == ["RenewalDroppedUsage"], st
        assert [e.reason for e in secret_events(core_v1, ns, "feed-tls")] == ["RenewalDroppedUsage"]

        # An annotation naming another leaf changes nothing ...
        annotate(core_v1, ns, "feed-tls", sha(other))
        marker_ns_secret = "marker-tls"  # a change after the annotation: once it is judged, so was the annotation
        put_secret(core_v1, ns, marker_ns_secret, certgen.tls_secret(certgen.leaf(ca, "m.example.com")))
        st = wait_for(lambda: (s := policy_status(custom_api, unique_name)) and s["summary"]["selected"] == 2 and s,
                      what="the marker Secret selected")
        assert violation(st, "feed-tls")["reasons"] == ["RenewalDroppedUsage"], st
        assert stored_baseline(core_v1, operator_namespace, unique_name, ns, "feed-tls").sha256 == sha(first)

        # ... the new leaf's fingerprint clears it and makes it the baseline.
        annotate(core_v1, ns, "feed-tls", sha(renewed))
        st = wait_for(lambda: (s := policy_status(custom_api, unique_name)) and not violation(s, "feed-tls") and s,
                      what="the regression cleared by the annotation")
        assert condition(st, "Compliant")["status"] == "True", st
        wait_for(lambda: stored_baseline(core_v1, operator_namespace, unique_name, ns, "feed-tls").sha256
                 == sha(renewed), what="the accepted leaf as the baseline")
        wait_for(lambda: [e for e in secret_events(core_v1, ns, "feed-tls") if e.reason == "Compliant"],
                 what="a Compliant event")
    finally:
        op.stop()
    assert op.proc.returncode == 0
    # The operator read the annotation; the Secret's data is the user's.
    secret = core_v1.read_namespaced_secret("feed-tls", ns)
    assert secret.metadata.annotations[ACCEPTED] == sha(renewed)


def test_dropped_dns_name_and_weaker_key(policies, operator, operator_namespace, core_v1, custom_api, unique_name,
                                          ca):
    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    two_names = certgen.leaf(ca, "api.example.com", dns_names=["api.example.com", "api.internal"])
    strong = certgen.leaf(ca, "db.example.com", key_kind="p384")
    put_secret(core_v1, ns, "api-tls", certgen.tls_secret(two_names))
    put_secret(core_v1, ns, "db-tls", certgen.tls_secret(strong))
    make_policy(policies, unique_name, label, {})
    for name in ("api-tls", "db-tls"):
        wait_for(lambda n=name: stored_baseline(core_v1, operator_namespace, unique_name, ns, n),
                 what=f"baseline of {name}")

    put_secret(core_v1, ns, "api-tls", certgen.tls_secret(certgen.leaf(ca, "api.example.com",
                                                                       dns_names=["api.example.com"])))
    put_secret(core_v1, ns, "db-tls", certgen.tls_secret(certgen.leaf(ca, "db.example.com", key_kind="p256")))
    st = wait_for(lambda: (s := policy_status(custom_api, unique_name)) and s["summary"]["violating"] == 2 and s,
                  what="two regressions")
    assert violation(st, "api-tls")["reasons"] == ["RenewalDroppedDNSName"]
    assert "api.internal" in violation(st, "api-tls")["message"]
    assert violation(st, "db-tls")["reasons"] == ["RenewalWeakerKey"]
    assert "EC P-384 → EC P-256" in violation(st, "db-tls")["message"]
    for name, reason in (("api-tls", "RenewalDroppedDNSName"), ("db-tls", "RenewalWeakerKey")):
        [event] = wait_for(lambda n=name: secret_events(core_v1, ns, n), what=f"event on {name}")
        assert (event.type, event.reason) == ("Warning", reason)


def test_guard_false_reports_nothing_and_keeps_no_baseline(policies, operator, operator_namespace, core_v1,
                                                           custom_api, unique_name, ca):
    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    put_secret(core_v1, ns, "feed-tls", certgen.tls_secret(certgen.leaf(ca, "feed.example.com")))
    make_policy(policies, unique_name, label, {"renewal": {"guard": False}})
    wait_for(lambda: condition(policy_status(custom_api, unique_name), "Compliant").get("status") == "True",
             what="Compliant=True")
    put_secret(core_v1, ns, "feed-tls", certgen.tls_secret(certgen.leaf(ca, "feed.example.com", eku=["serverAuth"])))
    # A marker written after the renewal: once its finding shows, the renewal was judged too.
    put_secret(core_v1, ns, "marker-tls", certgen.tls_secret(certgen.leaf(ca, "m.example.com", key_kind="rsa1024")))
    st = wait_for(lambda: (s := policy_status(custom_api, unique_name)) and violation(s, "marker-tls") and s,
                  what="the marker's violation")
    assert violation(st, "feed-tls") is None, st
    assert st["summary"]["violating"] == 1
    assert core_v1.list_namespaced_config_map(
        operator_namespace, label_selector=f"{MANAGED_BY}={unique_name},{ROLE_LABEL}={ROLE_BASELINE}").items == []
    assert [e.reason for e in secret_events(core_v1, ns, "feed-tls")] == []


def test_baseline_writes_are_per_shard_skipped_when_unchanged_and_read_back_by_a_new_leader(
        api_client, core_v1, custom_api, policies, operator_namespace, unique_name, ca):
    """Passes run in-process on a request-counting client (no kopf, as test_pass_reads does): the
    first pass writes each shard once however many Secrets it holds, an unchanged pass writes
    nothing, one renewal rewrites one shard; a second runtime (a standby that took over: empty
    memory) reads the baselines with one list and still sees the regression."""
    assert operator_namespace == passes_namespace()
    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    count = 40
    for i in range(count):
        put_secret(core_v1, ns, f"s{i}-tls", certgen.tls_secret(certgen.leaf(ca, f"s{i}.example.com")))
    spec = make_policy(policies, unique_name, label, {})["spec"]
    cm_path = f"/api/v1/namespaces/{operator_namespace}/configmaps"

    def runtime() -> Runtime:
        raw = CountingRawClient(api_client)
        return Runtime(api_client=api_client, raw=raw, inventory=inventory, recorder=EventRecorder(raw),
                       evaluator=Evaluator(), loop=loop)

    def one_pass(rt: Runtime) -> tuple[int, int]:
        """(ConfigMap writes, ConfigMap lists) of one pass."""
        rt.raw.requests.clear()
        reconcile_policy(rt, unique_name)
        writes = sum(n for (method, path), n in rt.raw.requests.items()
                     if method in ("POST", "PUT", "DELETE") and path.startswith(cm_path))
        return writes, rt.raw.requests[("GET", cm_path)]

    inventory = Inventory(api_client).start()
    loop = asyncio.new_event_loop()
    try:
        assert inventory.wait_synced(30)
        wait_for(lambda: inventory.declare(unique_name, Reads.of(spec, operator_namespace)), timeout=30,
                 what="the policy's sources synced")
        wait_for(lambda: len(select(inventory, spec["selector"]).secrets) == count, what="every Secret in the inventory")
        leader = runtime()
        writes, lists = one_pass(leader)
        shards = {shard_of(ns, f"s{i}-tls") for i in range(count)}
        assert (writes, lists) == (len(shards), 1), "one write per shard, however many Secrets it holds"
        assert all(stored_baseline(core_v1, operator_namespace, unique_name, ns, f"s{i}-tls") for i in range(count))
        assert one_pass(leader) == (0, 0), "an unchanged pass neither writes nor re-reads the baselines"

        put_secret(core_v1, ns, "s0-tls", certgen.tls_secret(certgen.leaf(ca, "s0.example.com")))  # a fine renewal
        renewed = certgen.leaf(ca, "s1.example.com", eku=["serverAuth"])  # a regression
        put_secret(core_v1, ns, "s1-tls", certgen.tls_secret(renewed))
        wait_for(lambda: inventory.secrets.get((ns, "s1-tls")).material.leaf == renewed.cert,
                 what="the renewals in the inventory")
        assert one_pass(leader) == (1, 0), "only s0's shard is rewritten; s1's baseline stays"
        assert violation(policy_status(custom_api, unique_name), "s1-tls")["reasons"] == ["RenewalDroppedUsage"]

        standby = runtime()  # took over: no memory of the baselines
        assert one_pass(standby) == (0, 1)
        assert violation(policy_status(custom_api, unique_name), "s1-tls")["reasons"] == ["RenewalDroppedUsage"]
        assert stored_baseline(core_v1, operator_namespace, unique_name, ns, "s1-tls").ekus == ("clientAuth",
                                                                                              "serverAuth")
    finally:
        inventory.stop()
        loop.close()


def test_a_damaged_baseline_is_not_green_and_names_its_secret(
        api_client, core_v1, custom_api, policies, operator_namespace, unique_name, ca):
    """A damaged baseline is retaken from the current leaf, which was compared with nothing: the pass
    that finds it says Compliant=Unknown (RenewalBaselineUnreadable, the Secret named), never True."""
    assert operator_namespace == passes_namespace()
    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    put_secret(core_v1, ns, "d-tls", certgen.tls_secret(certgen.leaf(ca, "d.example.com")))
    spec = make_policy(policies, unique_name, label, {})["spec"]
    inventory = Inventory(api_client).start()
    loop = asyncio.new_event_loop()

    def one_pass() -> dict:
        raw = CountingRawClient(api_client)  # a fresh runtime: reads the baselines afresh
        reconcile_policy(Runtime(api_client=api_client, raw=raw, inventory=inventory, recorder=EventRecorder(raw),
                                 evaluator=Evaluator(), loop=loop), unique_name)
        return policy_status(custom_api, unique_name)

    try:
        assert inventory.wait_synced(30)
        wait_for(lambda: inventory.declare(unique_name, Reads.of(spec, operator_namespace)), timeout=30,
                 what="the policy's sources synced")
        wait_for(lambda: select(inventory, spec["selector"]).secrets, what="the Secret in the inventory")
        assert condition(one_pass(), "Compliant")["status"] == "True"
        [cm] = core_v1.list_namespaced_config_map(
            operator_namespace, label_selector=f"{MANAGED_BY}={unique_name},{ROLE_LABEL}={ROLE_BASELINE}").items
        core_v1.patch_namespaced_config_map(cm.metadata.name, operator_namespace,
                                            {"data": {entry_key(ns, "d-tls"): "[1,\"damaged\"]"}})
        renewed = certgen.leaf(ca, "d.example.com", eku=["serverAuth"])  # would be a regression
        put_secret(core_v1, ns, "d-tls", certgen.tls_secret(renewed))
        wait_for(lambda: inventory.secrets.get((ns, "d-tls")).material.leaf == renewed.cert,
                 what="the renewal in the inventory")
        st = one_pass()
        compliant, degraded = condition(st, "Compliant"), condition(st, "Degraded")
        assert (compliant["status"], compliant["reason"]) == ("Unknown", "RenewalBaselineUnreadable"), st
        assert (degraded["status"], degraded["reason"]) == ("True", "RenewalBaselineUnreadable"), st
        assert f"{ns}/d-tls" in degraded["message"]
    finally:
        inventory.stop()
        loop.close()


def test_a_baseline_stored_by_the_16_shard_version_still_catches_the_next_regression(
        policies, cluster, crd, operator_namespace, core_v1, custom_api, unique_name, ca, tmp_path):
    """An upgrade must not forget a baseline: the entry sits where the 16-shard version put it
    (shard ``index % 16``), the Secret is renewed without clientAuth while the operator is down,
    and the upgraded operator still reports the regression. Were the entry not found, the renewed
    leaf would silently become the baseline: the 2026 outage with no alert."""
    from certpolicy.kube.baselines import LEGACY_SHARDS

    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    name = next(f"s{i}-tls" for i in range(400) if shard_of(ns, f"s{i}-tls") >= LEGACY_SHARDS)
    first = certgen.leaf(ca, "feed.example.com")  # serverAuth + clientAuth
    put_secret(core_v1, ns, name, certgen.tls_secret(first))
    op = OperatorProcess(cluster, tmp_path / "operator.log")
    op.start()
    try:
        make_policy(policies, unique_name, label, {})
        wait_for(lambda: stored_baseline(core_v1, operator_namespace, unique_name, ns, name),
                 what="the first leaf stored as the baseline")
    finally:
        op.stop()
    # What the 16-shard version left: the entry in shard index % 16, none in its shard of today.
    key, index = entry_key(ns, name), shard_of(ns, name)
    [cm] = [c for c in core_v1.list_namespaced_config_map(
        operator_namespace, label_selector=f"{MANAGED_BY}={unique_name},{ROLE_LABEL}={ROLE_BASELINE}").items
        if key in (c.data or {})]
    assert cm.metadata.name.endswith(f"-{index:02d}")
    legacy = cm.metadata.name[:-2] + f"{index % LEGACY_SHARDS:02d}"
    core_v1.create_namespaced_config_map(operator_namespace, {
        "metadata": {"name": legacy, "labels": cm.metadata.labels,
                     "ownerReferences": [r.to_dict() for r in cm.metadata.owner_references or ()]},
        "data": {key: cm.data[key]}})
    core_v1.delete_namespaced_config_map(cm.metadata.name, operator_namespace)

    put_secret(core_v1, ns, name, certgen.tls_secret(certgen.leaf(ca, "feed.example.com", eku=["serverAuth"])))
    op.start()
    try:
        [event] = wait_for(lambda: [e for e in secret_events(core_v1, ns, name) if e.reason == "RenewalDroppedUsage"],
                           what="RenewalDroppedUsage after the upgrade")
        assert "[clientAuth, serverAuth] → [serverAuth]" in event.message, event.message
        # ... and the entry moved to its shard of today.
        wait_for(lambda: any(c.metadata.name.endswith(f"-{index:02d}") and key in (c.data or {})
                             for c in core_v1.list_namespaced_config_map(
                                 operator_namespace, label_selector=f"{MANAGED_BY}={unique_name}").items),
                 what="the entry in its 64-shard ConfigMap")
    finally:
        op.stop()

"""The renewal regression guard on a real API server, with no requirement written.

A Secret's first leaf becomes its baseline (kept in ConfigMaps in the operator's namespace); a
renewal that loses clientAuth, a DNS name or key strength is a finding in the policy's status and
a Warning event on the Secret with the regression's reason. The baseline and the finding survive
an operator restart without a second event; only the annotation naming the new leaf's SHA-256
clears it. ``guard: false`` reports nothing.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid

import pytest
from kopf.testing import KopfRunner
from test_reconcile import condition, get_status, labelled_namespace, make_policy, put_secret, secret_events

import certgen
import figures
from certpolicy.kube.baselines import ROLE_BASELINE, entry_key
from certpolicy.kube.conditions import rfc3339
from certpolicy.kube.ownership import MANAGED_BY, ROLE_LABEL
from certpolicy.localcluster.cluster import free_port
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.policy.renewal import LeafBaseline, plain_fingerprint
from kubewait import wait_for

ACCEPTED = "certpolicy.io/renewal-accepted"


def operator_args() -> list[str]:
    return ["run", "--all-namespaces", "--standalone", f"--liveness=http://127.0.0.1:{free_port()}/healthz",
            "-m", "certpolicy.handlers"]


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
        policies, cluster, crd, operator_namespace, core_v1, custom_api, unique_name, ca):
    label = uuid.uuid4().hex[:8]
    ns = labelled_namespace(core_v1, label)
    first = certgen.leaf(ca, "feed.example.com")  # serverAuth + clientAuth
    put_secret(core_v1, ns, "feed-tls", certgen.tls_secret(first))
    renewed = certgen.leaf(ca, "feed.example.com", eku=["serverAuth"])  # the 2026 renewal
    other = certgen.leaf(ca, "feed.example.com", eku=["serverAuth", "codeSigning"])

    with KopfRunner(operator_args(), timeout=60) as runner:
        make_policy(policies, unique_name, label, {})  # no requirement written
        # First sight: the leaf is the baseline, and no regression.
        base = wait_for(lambda: stored_baseline(core_v1, operator_namespace, unique_name, ns, "feed-tls"),
                        what="the first leaf stored as the baseline")
        assert base.sha256 == sha(first) and base.ekus == ("clientAuth", "serverAuth")
        st = get_status(custom_api, unique_name)
        assert condition(st, "Compliant")["status"] == "True", st
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
        st = wait_for(lambda: (s := get_status(custom_api, unique_name)) and violation(s, "feed-tls") and s,
                      what="the violation in the status")
        v = violation(st, "feed-tls")
        assert v["reasons"] == ["RenewalDroppedUsage"] and v["severity"] == "Critical", v
        assert condition(st, "Compliant")["status"] == "False"
        # The baseline is not moved to the regressed leaf.
        assert stored_baseline(core_v1, operator_namespace, unique_name, ns, "feed-tls").sha256 == sha(first)
        evaluated = st["lastEvaluationTime"]
    assert runner.exception is None
    # Status timestamps have one-second resolution: let the clock pass the last evaluation's second.
    wait_for(lambda: rfc3339(dt.datetime.now(dt.UTC)) > evaluated, timeout=5, what="the next second")

    with KopfRunner(operator_args(), timeout=60) as runner:
        # A restarted operator reads the baseline back: the regression is still one, with no new event.
        st = wait_for(lambda: (s := get_status(custom_api, unique_name)) and s.get("lastEvaluationTime", "") > evaluated
                      and s, timeout=60, what="a pass of the restarted operator")
        assert violation(st, "feed-tls")["reasons"] == ["RenewalDroppedUsage"], st
        assert [e.reason for e in secret_events(core_v1, ns, "feed-tls")] == ["RenewalDroppedUsage"]

        # An annotation naming another leaf changes nothing ...
        annotate(core_v1, ns, "feed-tls", sha(other))
        marker_ns_secret = "marker-tls"  # a change after the annotation: once it is judged, so was the annotation
        put_secret(core_v1, ns, marker_ns_secret, certgen.tls_secret(certgen.leaf(ca, "m.example.com")))
        st = wait_for(lambda: (s := get_status(custom_api, unique_name)) and s["summary"]["selected"] == 2 and s,
                      what="the marker Secret selected")
        assert violation(st, "feed-tls")["reasons"] == ["RenewalDroppedUsage"], st
        assert stored_baseline(core_v1, operator_namespace, unique_name, ns, "feed-tls").sha256 == sha(first)

        # ... the new leaf's fingerprint clears it and makes it the baseline.
        annotate(core_v1, ns, "feed-tls", sha(renewed))
        st = wait_for(lambda: (s := get_status(custom_api, unique_name)) and not violation(s, "feed-tls") and s,
                      what="the regression cleared by the annotation")
        assert condition(st, "Compliant")["status"] == "True", st
        wait_for(lambda: stored_baseline(core_v1, operator_namespace, unique_name, ns, "feed-tls").sha256
                 == sha(renewed), what="the accepted leaf as the baseline")
        wait_for(lambda: [e for e in secret_events(core_v1, ns, "feed-tls") if e.reason == "Compliant"],
                 what="a Compliant event")
    assert runner.exception is None
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
    st = wait_for(lambda: (s := get_status(custom_api, unique_name)) and s["summary"]["violating"] == 2 and s,
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
    wait_for(lambda: condition(get_status(custom_api, unique_name), "Compliant").get("status") == "True",
             what="Compliant=True")
    put_secret(core_v1, ns, "feed-tls", certgen.tls_secret(certgen.leaf(ca, "feed.example.com", eku=["serverAuth"])))
    # A marker written after the renewal: once its finding shows, the renewal was judged too.
    put_secret(core_v1, ns, "marker-tls", certgen.tls_secret(certgen.leaf(ca, "m.example.com", key_kind="rsa1024")))
    st = wait_for(lambda: (s := get_status(custom_api, unique_name)) and violation(s, "marker-tls") and s,
                  what="the marker's violation")
    assert violation(st, "feed-tls") is None, st
    assert st["summary"]["violating"] == 1
    assert core_v1.list_namespaced_config_map(
        operator_namespace, label_selector=f"{MANAGED_BY}={unique_name},{ROLE_LABEL}={ROLE_BASELINE}").items == []
    assert [e.reason for e in secret_events(core_v1, ns, "feed-tls")] == []

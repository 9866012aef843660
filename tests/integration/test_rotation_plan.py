"""``kubectl certpolicy rotate plan`` against what the operator then does, on a real API server.

For each cluster state the plan is made first (through the plugin's entry point, as a user runs
it); then the rotation is requested and the operator is followed until it reaches the place the
plan named. The plan must name the same outcome, step and ``Rotating`` reason as the operator, and
the same message word for word (``--request r1``: the id the test then requests): it runs the operator's own decision code on the operator's
own observation, so there is nothing to disagree about.

The states are those the old plan got wrong (issue 22, item 4): a probe the operator's allow-list
refuses (old plan: "nothing would stall"; operator: held at step 2 for ever), a Pod reading the
bundle through ``subPath`` (old plan: "WOULD BREAK"; operator: waits at step 2, then Stalled), and
a plain rotation (old plan: a minute of re-issue that the operator does not spend).
"""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

import figures
from crd import GROUP, PLURAL, VERSION
from kubewait import wait_for
from pods import start_pod


def _plan(cluster, name: str):
    from test_plugin import plugin

    proc = plugin(cluster, "rotate", "plan", name, "--request", "r1", "-o", "json")
    assert proc.returncode in (0, 1), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.mark.parametrize("state", ["plain", "probe-not-allowed", "subpath-pod"])
def test_the_plan_stops_where_the_operator_stops(state, cluster, operator, policies, custom_api, core_v1,
                                                  namespace, unique_name):
    ns = namespace
    rotation = {"propagationDelay": "1s", "leafTimeout": "1s"}
    if state == "probe-not-allowed":
        rotation["probes"] = [{"host": "127.0.0.1", "port": 9}]  # not *.svc: the default allow-list refuses it
    policies({
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
        "spec": {"selector": {"names": [{"namespace": ns, "name": "app-tls"}]},
                 "requirements": {"extendedKeyUsages": ["serverAuth"]},
                 "ca": {"secretName": f"{unique_name}-ca"},
                 "trustBundles": [{"configMap": {"name": "plan-ca"}, "namespaces": [ns]}],
                 "issuance": [{"secretName": "app-tls", "namespace": ns, "dnsNames": ["app.plan.test"],
                               "usages": ["serverAuth"]}],
                 "rotation": rotation}})

    def status() -> dict:
        return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name).get("status") or {}

    def rotating(st: dict) -> dict:
        return next((c for c in st.get("conditions") or () if c["type"] == "Rotating"), {})

    wait_for(lambda: (s := status()) and (s.get("issued") or {}).get("ready") == 1
             and (s.get("bundleTargets") or {}).get("verified") == 1, timeout=60, what="CA, leaf and bundle in place")
    if state == "subpath-pod":
        start_pod(core_v1, ns, "legacy-0", bundle="plan-ca", sub_path=True,
                  started_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=1))
        code, plan = wait_for(lambda: (p := _plan(cluster, unique_name))[1]["podsReadingAtStart"] and p,
                              timeout=30, what="the plan sees the subPath Pod")
    else:
        code, plan = _plan(cluster, unique_name)
    fc = plan["forecast"]

    requested = time.monotonic()
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                           {"metadata": {"annotations": {"certpolicy.io/rotate": "r1"}}})
    if state == "plain":
        assert code == 0 and fc["outcome"] == "Completed" and plan["completes"], fc
        st = wait_for(lambda: (s := status()) and ((s.get("rotation") or {}).get("history") or [{}])[0].get(
            "outcome") == "Completed" and s, timeout=90, what="the operator completes the rotation")
        took = time.monotonic() - requested
        figures.record(f"rotate plan, plain rotation: planned {plan['expectedSeconds']} s, the operator took "
                       f"{took:.1f} s from the request to Completed")
        assert rotating(st)["reason"] == fc["reason"] == "Completed"
        assert [s["phase"] for s in fc["steps"]] == ["AddNewCA", "VerifyBundles", "IssueFromNewCA", "AwaitLeaves",
                                                     "RemoveOldCA"]
        # propagationDelay 1s + leafPropagationDelay 1s; re-issue costs no time (the bucket starts full)
        assert plan["expectedSeconds"] == 2
        return

    if state == "probe-not-allowed":
        assert code == 1 and fc["outcome"] == "Held" and fc["step"] == 2, fc
        assert "ProbeNotAllowed: 127.0.0.1 is not on the operator's probe allow-list" in fc["message"]
        # The operator: step 2 with the refused probe named, from a pass made after leafTimeout
        # (the probe's result comes after propagationDelay = leafTimeout), and not Stalled.
        st = wait_for(lambda: (s := status()) and "ProbeNotAllowed" in rotating(s).get("message", "") and s,
                      timeout=60, what="the operator holds step 2 on the refused probe")
        rot = st["rotation"]
        probe_at = dt.datetime.fromisoformat(rot["probes"][0]["at"])
        assert probe_at >= dt.datetime.fromisoformat(rot["stepStartedAt"]["verifyBundles"]) + dt.timedelta(seconds=1)
    else:
        assert code == 1 and fc["outcome"] == "Stalled" and fc["step"] == 2, fc
        assert plan["podsReadingAtStart"] == [{"pod": f"{ns}/legacy-0", "owner": None, "leaves": [],
                                               "bundles": [f"{ns}/ConfigMap/plan-ca/ca.crt"]}]
        st = wait_for(lambda: (s := status()) and rotating(s).get("reason") == "Stalled" and s,
                      timeout=60, what="the operator reports the rotation Stalled")
    cond = rotating(st)
    assert st["rotation"]["step"] == fc["step"] and cond["reason"] == fc["reason"], (cond, fc)
    assert cond["message"] == fc["message"]  # word for word: "--request r1" names the rotation as it will be

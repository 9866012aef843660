"""What wakes a policy's pass, counted on the shipped operator (``certpolicy_policy_passes_total``).

A Secret change must cost one pass. The pass writes the policy's status, and that write is a
change of the CertificatePolicy that kopf hears (``handlers/policy.py``, ``policy_changed``): it
used to wake the loop again, so every Secret change cost two passes, each evaluating everything
the policy selects. A change of the policy that is only the echo of the operator's own status
write now wakes nothing; a spec change still does (and so, by the same rule, an annotation or a
deletion, see ``handlers/echoes.py``).

Counting without timing: a pass is counted when it begins, before it writes, and each run of
changes is closed by a spec change whose pass writes ``status.observedGeneration``. kopf hears the
policy's changes in resourceVersion order and the loop runs one pass at a time, so once that
status is read every pass woken by an earlier write (an echo included) has begun, and is counted.
"""

from __future__ import annotations

import re
import uuid

from kubernetes import client

import certgen
from certpolicy.kube.namespaces import ensure_namespace
from crd import GROUP, PLURAL, VERSION, condition, get_policy, wait_status
from kubewait import wait_for

CHANGES = 4


def passes(operator, policy: str) -> int:
    """The policy's ``certpolicy_policy_passes_total`` on the operator's /metrics."""
    m = re.search(rf'^certpolicy_policy_passes_total{{policy="{re.escape(policy)}"}} ([0-9.e+]+)$',
                  operator.scrape(), re.MULTILINE)
    assert m, f"no certpolicy_policy_passes_total for {policy}"
    return int(float(m.group(1)))


def test_a_secret_change_costs_one_pass_and_a_spec_change_still_wakes_the_policy(
        policies, operator, core_v1, custom_api, unique_name):
    label = uuid.uuid4().hex[:8]
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels={"pass-triggers": label})
    ca = certgen.root("Pass Triggers Root")
    good = certgen.tls_secret(certgen.leaf(ca, "api.example.com", eku=["serverAuth", "clientAuth"]))
    bad = certgen.tls_secret(certgen.leaf(ca, "api.example.com", eku=["serverAuth"]))  # MissingClientAuth

    def put(body: dict) -> None:
        secret = client.V1Secret(metadata=client.V1ObjectMeta(name="api-tls"), type=body["type"], data=body["data"])
        try:
            core_v1.create_namespaced_secret(ns, secret)
        except client.ApiException as e:
            if e.status != 409:
                raise
            core_v1.replace_namespaced_secret("api-tls", ns, secret)

    put(good)
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
              "spec": {"selector": {"namespaceSelector": {"matchLabels": {"pass-triggers": label}}},
                       "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]}}})
    wait_status(custom_api, unique_name, lambda s: condition(s, "Compliant").get("reason") == "UnknownRoot"
                or condition(s, "Compliant").get("status") in ("True", "False"), "a first verdict")
    # kopf's finalizer (its one write to the policy) is in place before counting starts
    wait_for(lambda: get_policy(custom_api, unique_name)["metadata"].get("finalizers"), what="kopf's finalizer")

    def spec_change(names: list[str]) -> None:
        """A spec change that does not change the verdict; returns once its pass wrote observedGeneration."""
        obj = custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                                     {"spec": {"requirements": {"allowedDNSNames": names}}})
        generation = obj["metadata"]["generation"]
        wait_status(custom_api, unique_name, lambda s: s.get("observedGeneration") == generation,
                    f"observedGeneration {generation}")

    spec_change(["*.example.com"])
    before = passes(operator, unique_name)

    for i in range(CHANGES):
        violating = i % 2 == 0
        put(bad if violating else good)
        wait_status(custom_api, unique_name,
                    lambda s, v=violating: s.get("summary", {}).get("violating") == (1 if v else 0)
                    and condition(s, "Compliant").get("status") == ("False" if v else "True"),
                    f"change {i + 1}: violating={violating}")
    spec_change(["*.example.com", "*.example.org"])  # closes the run: a spec change wakes a pass

    # one pass per Secret change, plus the spec change's; each of those passes wrote the status
    assert passes(operator, unique_name) - before == CHANGES + 1


def test_a_changed_secret_is_judged_ahead_of_the_walk_and_its_event_is_posted_once(
        policies, operator, core_v1, custom_api, unique_name):
    """The Secret whose change woke the pass is judged alone first and its Warning event posted
    before the pass walks every selected Secret (the event does not wait for 100,000 of them). The
    walk must then find the very same problems: a renewal that drops clientAuth is two problems,
    the requirement and the regression against the stored baseline, and one event says both. An
    early judgement that skipped a stage would post a second event here."""
    label = uuid.uuid4().hex[:8]
    ns = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, ns, labels={"ahead": label})
    ca = certgen.root("Ahead Root")
    names = [f"svc-{i}" for i in range(12)]
    for name in names:
        body = certgen.tls_secret(certgen.leaf(ca, f"{name}.example.com", eku=["serverAuth", "clientAuth"]))
        core_v1.create_namespaced_secret(ns, client.V1Secret(metadata=client.V1ObjectMeta(name=name),
                                                             type=body["type"], data=body["data"]))
    policies({"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
              "spec": {"selector": {"namespaceSelector": {"matchLabels": {"ahead": label}}},
                       "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]}}})
    wait_status(custom_api, unique_name, lambda s: s.get("summary", {}).get("selected") == len(names), "all selected")

    def warnings_on(name: str) -> list:
        return [e for e in core_v1.list_namespaced_event(ns, field_selector=f"involvedObject.name={name}").items
                if e.type == "Warning" and unique_name in (e.message or "")]

    for k, name in enumerate(names[3:6], start=1):
        renewed = certgen.tls_secret(certgen.leaf(ca, f"{name}.example.com", eku=["serverAuth"]))
        core_v1.patch_namespaced_secret(name, ns, {"data": renewed["data"]})
        wait_for(lambda n=name: warnings_on(n), what=f"the Warning event on {name}")
        status = wait_status(custom_api, unique_name, lambda s, k=k: s.get("summary", {}).get("violating") == k,
                             f"{k} violating in the status")
        violation = next(v for v in status["violations"] if v["name"] == name)
        assert {"MissingClientAuth", "RenewalDroppedUsage"} <= set(violation["reasons"]), violation
        (event,) = warnings_on(name)  # the walk found what the early judgement posted: no second event
        assert event.reason in violation["reasons"] and event.message.count("; ") >= 1, event.message
    assert re.search(rf"policy {re.escape(unique_name)}: 1 changed Secrets judged ahead of the walk, 1 with problems",
                     operator.log_text())

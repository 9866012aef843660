"""The Enforced condition: judged per enforcing policy from the configuration as read back."""

from __future__ import annotations

import copy

import pytest

import certgen
from certpolicy.conditions import ENFORCED, Condition
from certpolicy.handlers.enforced import enforced_condition
from certpolicy.webhook.enforcement import judge
from certpolicy.webhook.policies import parse_policy
from certpolicy.webhook.registration import CONFIG_NAME, MAX_POLICIES, configuration, entries, holds

CA = certgen.root("webhook CA")
OTHER_CA = certgen.root("someone else's CA")
SERVING = certgen.leaf(CA, "certpolicy-operator-webhook.certpolicy-system.svc").cert


def policy(name="mtls", enforcement="Deny", selector=None):
    return parse_policy({"metadata": {"name": name, "uid": "u", "resourceVersion": "1", "generation": 1},
                         "spec": {"enforcement": enforcement, "requirements": {},
                                  "selector": selector or {"namespaceSelector": {"matchLabels": {"a": "b"}}}}})


def url(path):
    return {"url": f"https://127.0.0.1:9443{path}"}


def wanted(p):
    return entries(p, url, "", "certpolicy-system", None)


def live_for(policies, ca=CA):
    """The configuration as the API server returns it: what was written, plus its defaults."""
    body = configuration(policies, url, certgen.b64(certgen.pem(ca)), "certpolicy-system")
    for w in body["webhooks"]:
        w["reinvocationPolicy"] = "Never"  # a field the server adds
        for rule in w["rules"]:
            rule.setdefault("scope", "*")
    return body


def test_registered_entries_with_the_serving_ca_are_enforced():
    p = policy()
    verdict = judge([p], wanted, live_for([p]), SERVING, error=None)["mtls"]
    assert (verdict.status, verdict.reason) == (True, "Registered")
    assert CONFIG_NAME in verdict.message


def test_entries_missing_or_changed_by_someone_else_are_not_registered():
    p = policy()
    empty = {"webhooks": []}
    assert judge([p], wanted, empty, SERVING, error=None)["mtls"].reason == "NotRegistered"
    changed = live_for([p])
    changed["webhooks"][0]["namespaceSelector"] = {}
    verdict = judge([p], wanted, changed, SERVING, error=None)["mtls"]
    assert (verdict.status, verdict.reason) == (False, "NotRegistered")
    assert "mtls.secrets.certpolicy.io" in verdict.message and "not in force" in verdict.message


def test_a_ca_bundle_without_the_serving_certificate_s_ca_is_a_mismatch():
    p = policy()
    verdict = judge([p], wanted, live_for([p], ca=OTHER_CA), SERVING, error=None)["mtls"]
    assert (verdict.status, verdict.reason) == (False, "CABundleMismatch")
    broken = live_for([p])
    broken["webhooks"][0]["clientConfig"]["caBundle"] = "bm90IGEgY2VydGlmaWNhdGU="
    assert judge([p], wanted, broken, SERVING, error=None)["mtls"].reason == "CABundleMismatch"


def test_a_failing_upkeep_names_its_error_where_the_policy_is_not_in_force():
    stays, changed = policy("stays"), policy("changed", selector={"namespaceSelector": {"matchLabels": {"x": "y"}}})
    live = live_for([stays, policy("changed")])  # written before its selector changed
    verdicts = judge([stays, changed], wanted, live, SERVING, error="NotOurs: Secret x/y exists")
    assert verdicts["stays"].status is True  # its entries are in force: the failure changes nothing for it
    assert (verdicts["changed"].status, verdicts["changed"].reason) == (False, "WebhookUpkeepFailed")
    assert "NotOurs: Secret x/y exists" in verdicts["changed"].message
    unknown = judge([stays], wanted, None, SERVING, error="ApiException: 403")["stays"]
    assert (unknown.status, unknown.reason) == (None, "WebhookUpkeepFailed")


def test_nothing_in_place_yet_is_unknown_and_a_policy_left_out_is_false():
    p = policy()
    starting = judge([p], wanted, None, None, error=None)["mtls"]
    assert (starting.status, starting.reason) == (None, "WebhookStarting")
    left = judge([p], wanted, live_for([p]), SERVING, error=None, left_out=frozenset({"mtls"}))["mtls"]
    assert (left.status, left.reason) == (False, "TooManyEnforcingPolicies")
    assert str(MAX_POLICIES) in left.message


def test_holds_allows_server_defaults_and_nothing_else():
    written = {"a": 1, "b": [{"c": 2}], "d": {}}
    served = copy.deepcopy(written) | {"added": True}
    served["b"][0]["default"] = "x"
    assert holds(served, written)
    assert not holds({**served, "a": 2}, written)
    assert not holds({**served, "b": []}, written)
    assert not holds(None, written)


@pytest.mark.parametrize(("enforcement", "expected"), [("Audit", None), ("audit", None)])
def test_audit_has_no_enforced_condition(enforcement, expected):
    assert enforced_condition({"enforcement": enforcement}, lambda _n: None, "p") is expected
    assert enforced_condition({}, None, "p") is None


def test_without_a_webhook_or_a_verdict_enforcement_is_not_green():
    off = enforced_condition({"enforcement": "Deny"}, None, "p")
    assert (off.status, off.reason) == (False, "WebhookNotRunning")
    pending = enforced_condition({"enforcement": "Warn"}, lambda _n: None, "p")
    assert (pending.status, pending.reason) == (None, "WebhookStarting")
    verdict = Condition(ENFORCED, True, "Registered", "ok")
    assert enforced_condition({"enforcement": "Deny"}, lambda _n: verdict, "p") is verdict


def _transition(old: dict | None, new: dict) -> list[tuple[str, str]]:
    import types

    from certpolicy.handlers.enforced import post_enforced_transition

    posted: list[tuple[str, str]] = []
    ctx = types.SimpleNamespace(status={"conditions": [old] if old else []},
                                policy_event=lambda type_, reason, message, key: posted.append((type_, reason)))
    post_enforced_transition(ctx, {"conditions": [new]})  # type: ignore[arg-type]
    return posted


def _c(status: str, reason: str) -> dict:
    return {"type": ENFORCED, "status": status, "reason": reason, "message": "m", "lastTransitionTime": "t"}


def test_events_on_transitions_only_and_none_for_the_first_wait():
    assert _transition(None, _c("Unknown", "WebhookStarting")) == []
    assert _transition(_c("Unknown", "WebhookStarting"), _c("True", "Registered")) == []
    assert _transition(_c("True", "Registered"), _c("True", "Registered")) == []
    assert _transition(_c("True", "Registered"), _c("False", "WebhookUpkeepFailed")) == [
        ("Warning", "WebhookUpkeepFailed")]
    assert _transition(None, _c("False", "WebhookNotRunning")) == [("Warning", "WebhookNotRunning")]
    assert _transition(_c("False", "WebhookUpkeepFailed"), _c("False", "NotRegistered")) == [
        ("Warning", "NotRegistered")]
    assert _transition(_c("False", "WebhookUpkeepFailed"), _c("True", "Registered")) == [("Normal", "Enforced")]


def test_a_judgement_that_fails_leaves_no_true_behind():
    """A True of the last judgement would speak for a check that did not run: every policy
    judged before becomes Unknown (EnforcementUnjudged) and its loop is woken."""
    import threading

    from certpolicy.conditions import ENFORCED, Condition
    from certpolicy.webhook.upkeep import Webhook

    hook = Webhook.__new__(Webhook)  # only the verdict bookkeeping, no API server
    hook._enforced_lock = threading.Lock()
    hook._enforced = {"a": Condition(ENFORCED, True, "Registered", "in force")}
    woken: list[list[str]] = []
    hook._notify = woken.append
    hook._unjudged("KeyError: 'webhooks'")
    verdict = hook.enforced("a")
    assert verdict is not None and (verdict.status, verdict.reason) == (None, "EnforcementUnjudged")
    assert "KeyError" in verdict.message and woken == [["a"]]

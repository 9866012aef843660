"""The webhook's registration (one entry per enforcing policy, registered only for what it selects)
and the AdmissionReview parsing, on policy objects and malformed reviews."""

from __future__ import annotations

import json

import pytest

from certpolicy.policy.admission import Verdict
from certpolicy.webhook.policies import parse_policy
from certpolicy.webhook.registration import MAX_POLICIES, configuration
from certpolicy.webhook.review import BadReview, parse_review, response


def policy(name="mtls", enforcement="Deny", selector=None, requirements=None, **spec):
    return parse_policy({"metadata": {"name": name, "uid": "u", "resourceVersion": "1"},
                         "spec": {"enforcement": enforcement, "selector": selector or {},
                                  "requirements": requirements or {}, **spec}})


def url(path):
    return {"url": f"https://127.0.0.1:9443{path}"}


def test_enforcement_values_and_invalid_specs():
    assert policy(enforcement="audit").enforcing is False
    assert policy(enforcement="Warn").enforcing is True
    assert policy(enforcement="Deny", requirements={"extendedKeyUsages": ["nope"]}).enforcing is False
    assert policy(enforcement="enforce").enforcing is False


def test_an_entry_carries_the_policys_selectors_ignore_and_a_short_timeout():
    p = policy(selector={"namespaceSelector": {"matchLabels": {"env": "prod"}},
                         "secretSelector": {"matchLabels": {"app": "hl7"}}})
    (entry,) = configuration([p], url, "Q0E=", "certpolicy-system")["webhooks"]
    assert entry["name"] == "mtls.secrets.certpolicy.io"
    assert entry["failurePolicy"] == "Ignore" and entry["timeoutSeconds"] <= 5
    assert entry["namespaceSelector"] == {"matchLabels": {"env": "prod"}}
    assert entry["objectSelector"] == {"matchLabels": {"app": "hl7"}}
    assert entry["rules"][0]["operations"] == ["CREATE", "UPDATE"]  # never DELETE
    assert entry["clientConfig"] == {"url": "https://127.0.0.1:9443/validate/secret/mtls", "caBundle": "Q0E="}
    # a non-empty secretSelector selects Secrets of any type: no TLS-only condition
    assert [c["name"] for c in entry["matchConditions"]] == ["not-the-webhooks-own-secrets"]


def test_an_empty_secret_selector_means_tls_secrets_only():
    (entry,) = configuration([policy()], url, "", "certpolicy-system")["webhooks"]
    assert {"name": "tls-secrets-only", "expression": "object.type == 'kubernetes.io/tls'"} in entry["matchConditions"]


def test_named_secrets_and_bundles_get_entries_of_their_own():
    p = policy(selector={"names": [{"namespace": "a", "name": "x"}, {"namespace": "b", "name": "y"}]},
               requirements={"trustBundle": {"configMap": {"namespace": "a", "name": "trust"}}},
               ca={"secretName": "ca"}, trustBundles=[{"clusterTrustBundle": {"name": "mtls-ca"}}])
    entries = {e["name"]: e for e in configuration([p], url, "", "ns", "system:serviceaccount:ns:op")["webhooks"]}
    assert sorted(entries) == ["mtls.bundles.certpolicy.io", "mtls.named.certpolicy.io"]
    named = entries["mtls.named.certpolicy.io"]
    assert named["namespaceSelector"]["matchExpressions"][0]["values"] == ["a", "b"]
    assert '["a/x", "b/y"]' in named["matchConditions"][1]["expression"]
    bundles = entries["mtls.bundles.certpolicy.io"]
    assert {r["resources"][0] for r in bundles["rules"]} == {"configmaps", "clustertrustbundles"}
    assert all(r["operations"] == ["UPDATE"] for r in bundles["rules"])
    assert {"name": "not-the-operator",
            "expression": 'request.userInfo.username != "system:serviceaccount:ns:op"'} in bundles["matchConditions"]


def test_a_laptop_operators_own_user_is_not_exempt():
    p = policy(requirements={"trustBundle": {"configMap": {"namespace": "a", "name": "trust"}}})
    bundles = configuration([p], url, "", "ns", "kubernetes-admin")["webhooks"][-1]
    assert "userInfo" not in json.dumps(bundles["matchConditions"])


def test_audit_policies_get_no_entry_and_the_number_is_bounded():
    assert configuration([], url, "", "ns")["webhooks"] == []
    many = [policy(name=f"p{i}") for i in range(MAX_POLICIES + 10)]
    assert len(configuration(many, url, "", "ns")["webhooks"]) == MAX_POLICIES


@pytest.mark.parametrize("body", [b"", b"not json", b"[]", b'{"kind": "AdmissionReview"}',
                                  b'{"kind": "Other", "request": {}}', b"\xff\xfe"])
def test_malformed_reviews_are_refused_as_bad_requests(body):
    with pytest.raises(BadReview):
        parse_review(body)


def test_a_refusal_is_403_with_the_message_and_no_object_content():
    review = {"kind": "AdmissionReview", "request": {"uid": "42", "kind": {"kind": "Secret"}, "namespace": "n",
                                                     "name": "s", "operation": "UPDATE",
                                                     "object": {"data": {"tls.key": "c2VjcmV0"}}}}
    req = parse_review(json.dumps(review).encode())
    assert req.where == "Secret n/s"
    out = response(req.uid, Verdict(False, message="no"))
    assert out["response"] == {"uid": "42", "allowed": False,
                                "status": {"code": 403, "reason": "Forbidden", "message": "no"}}
    assert "c2VjcmV0" not in json.dumps(out)


def test_the_renewal_guard_settings_reach_the_webhook():
    from certpolicy.policy.renewal import RENEWAL_REASONS

    assert policy().renewal_ignore == frozenset()
    assert policy(requirements={"renewal": {"ignore": ["RenewalChangedAnchor"]}}).renewal_ignore == {
        "RenewalChangedAnchor"}
    assert policy(requirements={"renewal": {"guard": False}}).renewal_ignore == frozenset(RENEWAL_REASONS)

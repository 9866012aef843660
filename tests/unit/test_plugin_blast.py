"""kubectl certpolicy's pure parts: status ranking and blast radius over objects as the API returns them."""

from __future__ import annotations

import base64
import datetime as dt

import pytest

import certgen
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.plugin.blast import TargetError, radius, resolve
from certpolicy.plugin.policyrows import rows
from certpolicy.plugin.reads import Objects

NOW = dt.datetime.now(dt.UTC)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def obj(kind, ns, name, **body):
    return {"kind": kind, "metadata": {"namespace": ns, "name": name} if ns else {"name": name}, **body}


@pytest.fixture(scope="module")
def world():
    root = certgen.root("blast root")
    inter = certgen.intermediate(root, "blast issuing CA")
    other = certgen.root("other root")
    leaf = certgen.leaf(inter, "svc.blast.test")
    stranger = certgen.leaf(other, "x.blast.test")
    objects = Objects(items={
        "Secret": [
            obj("Secret", "a", "svc-tls", type="kubernetes.io/tls", data=certgen.tls_secret(leaf, [inter])["data"]),
            obj("Secret", "a", "x-tls", type="kubernetes.io/tls", data=certgen.tls_secret(stranger)["data"]),
            obj("Secret", "b", "bundle", type="Opaque", data={"roots.pem": b64(certgen.pem(root, other)),
                                                               "tls.key": b64(b"not looked at")}),
        ],
        "ConfigMap": [obj("ConfigMap", "a", "ca", data={"ca.crt": certgen.pem(root).decode(), "x": "y"}),
                      obj("ConfigMap", "a", "other-ca", data={"ca.crt": certgen.pem(other).decode()})],
        "Pod": [obj("Pod", "a", "web", spec={"volumes": [{"name": "t", "secret": {"secretName": "svc-tls"}}],
                                              "containers": [{"name": "c"}]}),
                obj("Pod", "a", "app", spec={"containers": [{"name": "c", "envFrom": [{"configMapRef": {"name": "ca"}}]}]}),
                obj("Pod", "b", "web", spec={"volumes": [{"name": "t", "secret": {"secretName": "svc-tls"}}]})],
        "MutatingWebhookConfiguration": [obj("MutatingWebhookConfiguration", "", "hook", webhooks=[
            {"name": "h.blast.test", "clientConfig": {"caBundle": b64(certgen.pem(root))}}])],
        "CertificatePolicy": [],
    })
    return root, inter, other, objects


def test_everything_that_depends_on_a_root(world):
    root, _inter, _other, objects = world
    got = {(d.kind, d.namespace, d.name): d.via for d in radius([root.cert], objects, NOW)}
    assert got == {
        ("Secret", "a", "svc-tls"): "its certificate chains to the CA (tls.crt)",
        ("Secret", "b", "bundle"): "trust bundle in key roots.pem",
        ("ConfigMap", "a", "ca"): "trust bundle in key ca.crt",
        ("MutatingWebhookConfiguration", "", "hook"): "webhook h.blast.test caBundle",
        ("Pod", "a", "web"): "mounts Secret svc-tls",
        ("Pod", "a", "app"): "reads (envFrom) ConfigMap ca",
    }  # not b/web: the Secret it names is b/svc-tls, which does not exist


def test_an_intermediate_reaches_the_secrets_that_carry_it(world):
    _root, inter, _other, objects = world
    got = {(d.kind, d.name): d.via for d in radius([inter.cert], objects, NOW)}
    assert got[("Secret", "svc-tls")] == "its certificate chains to the CA (tls.crt)"
    assert ("ConfigMap", "ca") not in got and ("Pod", "web") in got


def test_resolving_the_ca(world):
    root, _inter, other, objects = world
    fp = fingerprint(root.cert)
    assert resolve(fp, objects) == [root.cert]
    assert resolve(fp.removeprefix("sha256:")[:10], objects) == [root.cert]
    assert {fingerprint(c) for c in resolve("secret/b/bundle:roots.pem", objects)} == {fp, fingerprint(other.cert)}
    assert resolve("configmap/a/ca", objects) == [root.cert]
    for bad, message in (("sha256:abc", "at least 8"), ("sha256:00000000", "no certificate"),
                         ("configmap/a", "expected configmap/NAMESPACE/NAME"), ("configmap/a/nope", "not found"),
                         ("secret/b/bundle:other", "holds no certificate"), ("pod/x", "expected a fingerprint")):
        with pytest.raises(TargetError, match=message):
            resolve(bad, objects)


def test_status_ranks_worst_first():
    def policy(name, compliant, degraded="False", ready="True", severity=None, violating=0):
        st = {"conditions": [{"type": "Compliant", "status": compliant}, {"type": "Degraded", "status": degraded,
                                                                          "reason": "TrustBundleMissing"},
                             {"type": "Ready", "status": ready}],
              "summary": {"selected": 3, "violating": violating}}
        if severity:
            st["violations"] = [{"namespace": "n", "name": "s", "severity": severity, "reasons": ["R"]}]
        return {"metadata": {"name": name}, "status": st}

    ordered = rows([policy("ok", "True"), policy("new", "Unknown", ready="False"),
                    policy("warn", "False", severity="Warning", violating=5), policy("deg", "True", degraded="True"),
                    policy("crit1", "False", severity="Critical", violating=1),
                    policy("crit9", "False", severity="Critical", violating=9), {"metadata": {"name": "bare"}}])
    assert [r["name"] for r in ordered] == ["crit9", "crit1", "warn", "deg", "bare", "new", "ok"]
    assert ordered[3]["degraded"] == "TrustBundleMissing" and ordered[-1]["degraded"] is None


def test_status_is_ok_only_where_the_operator_says_compliant():
    """Issue 22 item 3: a policy that judged nothing (Compliant=Unknown) is not OK; a Compliant=False
    whose violations list is empty is still a violation."""
    def policy(name, compliant, reason):
        return {"metadata": {"name": name}, "status": {"conditions": [
            {"type": "Compliant", "status": compliant, "reason": reason},
            {"type": "Degraded", "status": "False", "reason": "AsExpected"}, {"type": "Ready", "status": "True"}]}}

    by_name = {r["name"]: r for r in rows([policy("empty", "Unknown", "NothingSelected"),
                                           policy("ok", "True", "AllCompliant"),
                                           policy("cut", "False", "Expired")])}
    assert by_name["empty"]["rank"] == "Unknown" and by_name["empty"]["compliantReason"] == "NothingSelected"
    assert by_name["ok"]["rank"] == "OK" and by_name["cut"]["rank"] == "Warning"
    assert [r["name"] for r in rows([policy("b", "True", "Y"), policy("a", "Unknown", "X")])] == ["a", "b"]
    from certpolicy.plugin.status import _state

    assert _state(by_name["empty"]) == "Unknown/NothingSelected" and _state(by_name["ok"]) == "OK"

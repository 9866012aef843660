"""Ownership rules: who may write which object (pure decisions over metadata)."""

from __future__ import annotations

import pytest
import yaml

from certpolicy.kube.ownership import (
    CLAIMS,
    FORBIDDEN_KEYS,
    INJECT_CA_FROM,
    MANAGED_BY,
    OWNER_UID,
    ROLE_BUNDLE,
    ROLE_CA,
    ROLE_LABEL,
    ROLE_LEAF,
    NotManaged,
    Owner,
    adoptable,
    check_bundle_target,
    check_managed,
    conflicting_claims,
    created_for,
    encode_claims,
    predecessor_uid,
    read_claims,
    refused_key,
    refused_namespace,
    with_claim,
)
from paths import CRD_FILE

A = Owner("a", "uid-a")


def obj(labels=None, annotations=None) -> dict:
    return {"metadata": {"labels": labels or {}, "annotations": annotations or {}}}


def test_created_for_needs_the_name_and_the_same_uid():
    assert created_for(obj({MANAGED_BY: "a"}, {OWNER_UID: "uid-a"}), A)
    assert not created_for(obj({MANAGED_BY: "b"}, {OWNER_UID: "uid-a"}), A)
    # A policy re-created under the same name is another policy.
    assert not created_for(obj({MANAGED_BY: "a"}, {OWNER_UID: "uid-old"}), A)
    # Labelled by hand (no UID): an explicit hand-over to the policy it names.
    assert created_for(obj({MANAGED_BY: "a"}), A)
    assert not created_for(obj(), A)


def test_check_managed_refuses_other_owners_and_other_roles():
    check_managed(obj({MANAGED_BY: "a", ROLE_LABEL: ROLE_LEAF}, {OWNER_UID: "uid-a"}), A, ROLE_LEAF, "Secret x/y")
    with pytest.raises(NotManaged, match="CertificatePolicy b"):
        check_managed(obj({MANAGED_BY: "b"}), A, ROLE_LEAF, "Secret x/y")
    with pytest.raises(NotManaged, match="no certpolicy.io/managed-by label"):
        check_managed(obj(), A, ROLE_CA, "Secret x/y")
    with pytest.raises(NotManaged, match="not a ca"):
        check_managed(obj({MANAGED_BY: "a", ROLE_LABEL: ROLE_LEAF}), A, ROLE_CA, "Secret x/y")


def test_bundle_targets_are_ours_or_opted_in():
    check_bundle_target(obj({MANAGED_BY: "a", ROLE_LABEL: ROLE_BUNDLE}, {OWNER_UID: "uid-a"}), A, "ConfigMap x/y")
    check_bundle_target(obj(annotations={INJECT_CA_FROM: "other, a"}), A, "ConfigMap x/y")
    with pytest.raises(NotManaged, match=f"{INJECT_CA_FROM}=a"):
        check_bundle_target(obj(annotations={INJECT_CA_FROM: "other"}), A, "ConfigMap x/y")
    # This policy's own leaf or CA is not a bundle target.
    with pytest.raises(NotManaged):
        check_bundle_target(obj({MANAGED_BY: "a", ROLE_LABEL: ROLE_LEAF}, {OWNER_UID: "uid-a"}), A, "Secret x/y")


@pytest.mark.parametrize("key", ["tls.key", "tls.crt", "ssh-privatekey", "server.key", "anything.key", "key.pem"])
def test_key_and_certificate_keys_are_refused(key):
    assert refused_key(key)


@pytest.mark.parametrize("key", ["ca.crt", "ca-bundle.pem", "client-ca-file", "truststore.p12", "config.yaml"])
def test_bundle_keys_are_allowed_by_the_key_rule(key):
    assert refused_key(key) is None


def test_the_crd_refuses_the_same_keys():
    crd = yaml.safe_load(CRD_FILE.read_text())
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    rule = spec["trustBundles"]["items"]["properties"]["configMap"]["properties"]["key"]["x-kubernetes-validations"]
    text = rule[0]["rule"]
    assert all(f"'{k}'" in text for k in FORBIDDEN_KEYS), sorted(k for k in FORBIDDEN_KEYS if f"'{k}'" not in text)
    assert "endsWith('.key')" in text


def test_namespaces():
    assert refused_namespace("certpolicy-system", "certpolicy-system", allow_system=True)
    for ns in ("kube-system", "kube-public", "kube-node-lease"):
        assert "--allow-system-namespaces" in refused_namespace(ns, "certpolicy-system", allow_system=False)
        assert refused_namespace(ns, "certpolicy-system", allow_system=True) is None
    assert refused_namespace("team-a", "certpolicy-system", allow_system=False) is None


def test_claims_conflict_only_with_an_exclusive_live_claim():
    alive = {"a", "b"}.__contains__
    claims = with_claim({}, "ca.crt", Owner("b", "u"), exclusive=True, alive=alive)
    assert conflicting_claims(claims, "ca.crt", A, exclusive=False, alive=alive) == ["b (exclusive)"]
    assert conflicting_claims(claims, "other.pem", A, exclusive=True, alive=alive) == []
    shared = with_claim({}, "ca.crt", Owner("b", "u"), exclusive=False, alive=alive)
    assert conflicting_claims(shared, "ca.crt", A, exclusive=False, alive=alive) == []
    assert conflicting_claims(shared, "ca.crt", A, exclusive=True, alive=alive) == ["b (shared)"]
    # A deleted policy's claim neither blocks nor survives the next write.
    assert conflicting_claims(claims, "ca.crt", A, exclusive=True, alive={"a"}.__contains__) == []
    assert with_claim(claims, "ca.crt", A, exclusive=True, alive={"a"}.__contains__) == {"ca.crt": {"a": "exclusive"}}


def test_claims_round_trip_and_garbage_is_no_claim():
    claims = with_claim({}, "ca.crt", A, exclusive=False, alive=lambda _n: True)
    assert read_claims(obj(annotations={CLAIMS: encode_claims(claims)})) == claims
    assert read_claims(obj(annotations={CLAIMS: "not json"})) == {}
    assert read_claims(obj(annotations={CLAIMS: "[1, 2]"})) == {}


def test_only_a_dead_predecessors_objects_of_the_same_name_are_adoptable():
    left = obj({MANAGED_BY: "a", ROLE_LABEL: ROLE_BUNDLE}, {OWNER_UID: "uid-old"})
    assert predecessor_uid(left, A) == "uid-old"
    assert adoptable(left, A, live_uids={"uid-a"})
    assert not adoptable(left, A, live_uids={"uid-a", "uid-old"})  # that UID is a live policy's
    assert not adoptable(obj({MANAGED_BY: "a"}, {OWNER_UID: "uid-a"}), A, set())  # already ours
    assert not adoptable(obj({MANAGED_BY: "a"}), A, set())  # a hand-over: ours without adopting
    assert not adoptable(obj({MANAGED_BY: "b"}, {OWNER_UID: "uid-old"}), A, set())  # another name
    assert not adoptable(obj(annotations={OWNER_UID: "uid-old"}), A, set())  # not labelled at all


def test_not_managed_messages_name_the_adopt_fix_for_a_predecessors_objects():
    left = obj({MANAGED_BY: "a", ROLE_LABEL: ROLE_BUNDLE}, {OWNER_UID: "uid-old"})
    for check in (lambda: check_bundle_target(left, A, "ConfigMap ns/x"),
                  lambda: check_managed(left, A, ROLE_BUNDLE, "ConfigMap ns/x")):
        with pytest.raises(NotManaged) as err:
            check()
        assert "earlier CertificatePolicy a (uid uid-old)" in str(err.value)
        assert "set spec.ca.adopt: true on CertificatePolicy a" in str(err.value)

"""Which changes wake which policy: one declaration per policy, judged before and after a change."""

from __future__ import annotations

import pytest

from certpolicy.inventory.interest import Reads, bundle_source
from certpolicy.inventory.records import NamespaceRecord, PodRecord, Reference, SecretRecord
from certpolicy.inventory.recordstore import Change
from certpolicy.inventory.wakes import (
    BUNDLE_SOURCES,
    BUNDLE_TARGETS,
    NAMED_SECRETS,
    NAMESPACES,
    PASSWORD_SECRETS,
    PODS,
    TLS_SECRETS,
    Seen,
    concerns,
)
from certpolicy.pki.secretdata import material_from_secret
from certpolicy.policy.bundleref import BundleRef

OPNS = "certpolicy-system"
NS_LABELS = {"team-a": {"team": "a"}, "team-b": {"team": "b"}}


def secret(ns: str, name: str, **labels: str) -> SecretRecord:
    return SecretRecord(ns, name, "uid", "1", "kubernetes.io/tls", tuple(sorted(labels.items())),
                        material_from_secret("kubernetes.io/tls", {}))


def wakes(reads: Reads, source: str, change: Change, secrets: dict | None = None) -> bool:
    return concerns(reads, change, Seen(source, NS_LABELS.get, (secrets or {}).get))


def by_team(team: str, **spec) -> Reads:
    return Reads.of({"selector": {"namespaceSelector": {"matchLabels": {"team": team}}}, **spec}, OPNS)


def test_a_secret_wakes_only_the_policy_whose_namespace_it_is_in():
    a, b = by_team("a"), by_team("b")
    change = Change("Secret", ("team-a", "web"), None, secret("team-a", "web"))
    assert wakes(a, TLS_SECRETS, change)
    assert not wakes(b, TLS_SECRETS, change)


def test_a_label_removed_still_wakes_the_policy_that_selected_it():
    reads = Reads.of({"selector": {"secretSelector": {"matchLabels": {"app": "hl7"}}}}, OPNS)
    before, after = secret("team-a", "x", app="hl7"), secret("team-a", "x")
    assert wakes(reads, TLS_SECRETS, Change("Secret", ("team-a", "x"), before, after))
    assert not wakes(reads, TLS_SECRETS, Change("Secret", ("team-a", "y"), after, after))


def test_named_secrets_wake_their_policy_only_and_a_names_only_policy_selects_nothing_by_label():
    reads = Reads.of({"selector": {"names": [{"namespace": "ks", "name": "a"}]}}, OPNS)
    assert reads.by_label is None
    assert reads.tracked_secrets() == {("ks", "a")}
    assert wakes(reads, NAMED_SECRETS, Change("Secret", ("ks", "a"), None, None))
    assert not wakes(reads, TLS_SECRETS, Change("Secret", ("ks", "b"), None, secret("ks", "b")))


def test_ca_secrets_passwords_and_issued_leaves_belong_to_their_policy():
    reads = Reads.of({
        "ca": {"secretName": "hl7-ca"},
        "issuance": [{"namespace": "apps", "secretName": "leaf"}],
        "trustBundles": [{"configMap": {"name": "ca"},
                          "formats": {"pkcs12": {"key": "t.p12", "passwordSecretRef": {"name": "pw", "key": "p"}}}}],
        "selector": {"names": [{"namespace": "x", "name": "y"}]},
    }, OPNS)
    for key in [(OPNS, "hl7-ca"), (OPNS, "hl7-ca-next-abc123"), (OPNS, "pw"), ("apps", "leaf")]:
        assert wakes(reads, TLS_SECRETS, Change("Secret", key, None, None)), key
    assert not wakes(reads, TLS_SECRETS, Change("Secret", (OPNS, "other-ca"), None, None))
    assert (OPNS, "pw") in reads.tracked_secrets()


def test_keystore_password_secrets_wake_the_policies_naming_them_in_any_namespace():
    reads = by_team("a", trustStores={"selector": {"matchLabels": {"s": "1"}}, "passwordSecretRef": {"name": "ts-pw"}},
                    requirements={"trustedBy": {"selector": {"matchLabels": {"p": "1"}},
                                                "passwordSecretRef": {"name": "peer-pw", "key": "k"}}})
    selector = Reads.of({"selector": {"secretSelector": {"matchLabels": {"a": "1"}},
                                      "passwordSecretRef": {"name": "ks-pw", "key": "pw"}}}, OPNS)
    assert reads.keystore_passwords == {"ts-pw", "peer-pw"} and selector.keystore_passwords == {"ks-pw"}
    for ns in ("team-a", "team-b", "anywhere"):
        assert wakes(reads, PASSWORD_SECRETS, Change("Secret", (ns, "ts-pw"), None, "1"))
        assert wakes(reads, PASSWORD_SECRETS, Change("Secret", (ns, "peer-pw"), "1", None))
        assert wakes(selector, PASSWORD_SECRETS, Change("Secret", (ns, "ks-pw"), "1", "2"))
        assert not wakes(selector, PASSWORD_SECRETS, Change("Secret", (ns, "ts-pw"), "1", "2"))
    assert not wakes(by_team("a"), PASSWORD_SECRETS, Change("Secret", ("team-a", "ts-pw"), None, "1"))
    # A malformed ref (the CRD refuses it) names nothing.
    assert Reads.of({"selector": {"passwordSecretRef": {"key": "pw"}}, "trustStores": "x"}, OPNS).keystore_passwords == set()


def test_pods_wake_policies_through_the_secrets_they_mount():
    reads = by_team("a")
    web = secret("team-a", "web")
    pod = PodRecord("team-a", "p", frozenset({Reference("Secret", "web", "volume", sub_path=True)}))
    other = PodRecord("team-a", "q", frozenset({Reference("Secret", "unknown", "volume")}))
    secrets = {("team-a", "web"): web}
    assert wakes(reads, PODS, Change("Pod", ("team-a", "p"), None, pod), secrets)
    assert wakes(reads, PODS, Change("Pod", ("team-a", "p"), pod, None), secrets)  # deleted: mount gone
    assert not wakes(reads, PODS, Change("Pod", ("team-a", "q"), None, other), secrets)
    assert not wakes(by_team("b"), PODS, Change("Pod", ("team-a", "p"), None, pod), secrets)


def test_namespace_relabelled_into_or_out_of_a_selector_wakes_it():
    reads = by_team("a")
    old, new = NamespaceRecord("n", (("team", "a"),)), NamespaceRecord("n", (("team", "c"),))
    assert wakes(reads, NAMESPACES, Change("Namespace", ("", "n"), old, new))
    assert not wakes(by_team("b"), NAMESPACES, Change("Namespace", ("", "n"), old, new))
    targets = Reads.of({"selector": {"names": [{"namespace": "x", "name": "y"}]},
                        "trustBundles": [{"configMap": {"name": "ca"}, "namespaceSelector": {}}]}, OPNS)
    assert wakes(targets, NAMESPACES, Change("Namespace", ("", "n"), None, new))


@pytest.mark.parametrize("entry, kind, namespace", [
    ({"configMap": {"name": "app-ca"}}, "ConfigMap", "ns1"),
    ({"secret": {"name": "app-ca"}}, "Secret", "ns1"),
    ({"clusterTrustBundle": {"name": "app-ca"}}, "ClusterTrustBundle", ""),
])
def test_every_bundle_target_kind_wakes_the_policy_that_writes_it(entry, kind, namespace):
    reads = Reads.of({"trustBundles": [entry]}, OPNS)
    assert wakes(reads, BUNDLE_TARGETS, Change(kind, (namespace, "app-ca"), None, None))
    assert not wakes(reads, BUNDLE_TARGETS, Change(kind, (namespace, "other"), None, None))
    other_kind = "ConfigMap" if kind != "ConfigMap" else "Secret"
    assert not wakes(reads, BUNDLE_TARGETS, Change(other_kind, (namespace, "app-ca"), None, None))


def test_trust_bundle_source_is_parsed_once_and_matched_by_kind():
    spec = {"requirements": {"trustBundle": {"secret": {"namespace": "pki", "name": "roots"}}}}
    reads = Reads.of(spec, OPNS)
    assert reads.bundle_source == BundleRef("Secret", "roots", "ca.crt", "pki")
    assert reads.tracked_sources() == {("Secret", "pki", "roots")}
    assert wakes(reads, BUNDLE_SOURCES, Change("Secret", ("pki", "roots"), None, None))
    assert not wakes(reads, BUNDLE_SOURCES, Change("ConfigMap", ("pki", "roots"), None, None))
    assert bundle_source({}) is None


def test_reads_compare_equal_when_the_spec_reads_the_same():
    spec = {"selector": {"names": [{"namespace": "a", "name": "b"}]}}
    assert Reads.of(spec, OPNS) == Reads.of(dict(spec), OPNS)
    assert Reads.of(spec, OPNS) != Reads.of({"selector": {"names": [{"namespace": "a", "name": "c"}]}}, OPNS)

"""What a standby says about the Lease holder, and what a replica writes on the Lease."""

from __future__ import annotations

from certpolicy.kube.lease import DEFAULT_LEASE_NAMESPACE, INSTALL_ANNOTATION, LeaseConfig
from certpolicy.standby import waiting_reason


def test_another_install_is_named_with_its_namespace_and_replica():
    reason = waiting_reason("cp-0", "team-a", "team-b")
    assert reason.startswith("another certpolicy-operator install (namespace team-a, replica cp-0) leads this cluster")
    assert "this one (team-b) stays standby" in reason


def test_a_replica_of_the_same_install_or_an_unknown_install_is_not_another_install():
    assert waiting_reason("cp-0", "team-b", "team-b") == \
        "replica cp-0 of this install leads; taking over if it stops renewing the Lease"
    assert "another" not in waiting_reason("cp-0", "", "team-b")  # a Lease written before the annotation
    assert waiting_reason("", "team-a", "team-b") == "the Lease is free: taking it"


def test_every_write_carries_the_install_namespace():
    config = LeaseConfig(namespace=DEFAULT_LEASE_NAMESPACE, identity="cp-0", install_namespace="team-b")
    assert config.path == "/apis/coordination.k8s.io/v1/namespaces/kube-system/leases/certpolicy-operator"
    assert config.metadata("42") == {"name": "certpolicy-operator", "namespace": "kube-system",
                                     "labels": {"app.kubernetes.io/name": "certpolicy-operator"},
                                     "annotations": {INSTALL_ANNOTATION: "team-b"}, "resourceVersion": "42"}
    assert "annotations" not in LeaseConfig(namespace="x", identity="y").metadata()

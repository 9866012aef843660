import pytest

from certpolicy.policy.bundleref import BundleRef, BundleRefError


def test_each_kind_parses_with_its_key():
    assert BundleRef.parse({"configMap": {"name": "ca", "namespace": "ns"}}) == BundleRef("ConfigMap", "ca", "ca.crt", "ns")
    assert BundleRef.parse({"secret": {"name": "ca", "key": "bundle.pem"}}) == BundleRef("Secret", "ca", "bundle.pem")
    ctb = BundleRef.parse({"clusterTrustBundle": {"name": "ca"}})
    assert (ctb.kind, ctb.key, ctb.field) == ("ClusterTrustBundle", "trustBundle", "clusterTrustBundle")
    assert BundleRef.parse({"configMap": {"name": "ca", "namespace": "ns"}}).where == "ConfigMap ns/ca"


@pytest.mark.parametrize("ref, message", [
    ({}, "names none of configMap, secret, clusterTrustBundle"),
    ({"configMap": "ca"}, "names none of"),
    ({"secret": {"namespace": "ns"}}, "secret needs a name"),
])
def test_a_reference_without_an_object_is_an_error_that_says_why(ref, message):
    with pytest.raises(BundleRefError, match=message):
        BundleRef.parse(ref)

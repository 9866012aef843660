"""Each bundle target kind reads and renders its own storage: what goes in comes back out, and
whatever else the object holds is kept."""

import base64

import pytest

from certpolicy.kube.ownership import BUNDLE_LABEL
from certpolicy.kube.targets import TARGET_KINDS, target_kind

PEM = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize("kind", sorted(TARGET_KINDS))
def test_render_then_read_gives_back_the_pem_and_keeps_other_content(kind):
    target = target_kind(kind)
    other = {"spec": {"signerName": None}} if kind == "ClusterTrustBundle" else {"data": {"other": "keep"}}
    stores = {"truststore.p12": b"\x30\x82store"} if target.holds_truststores else {}
    content = target.render(other, "ca.crt", PEM, stores)
    obj = {**other, **content}
    assert target.read_pem(obj, "ca.crt") == PEM
    if target.holds_truststores:
        assert target.read_truststore_bytes(obj, "truststore.p12") == b"\x30\x82store"
        assert obj["data"]["other"] == "keep"
    else:
        assert "signerName" in obj["spec"]


def test_absent_object_or_key_reads_as_none_and_undecodable_secret_data_as_empty():
    for kind in TARGET_KINDS.values():
        assert kind.read_pem(None, "ca.crt") is None
        assert kind.read_truststore_bytes(None, "x") is None
    assert target_kind("ConfigMap").read_pem({"data": {}}, "ca.crt") is None
    assert target_kind("Secret").read_pem({"data": {"ca.crt": "%%%"}}, "ca.crt") == b""
    assert target_kind("Secret").read_pem({"data": {"ca.crt": base64.b64encode(PEM).decode()}}, "ca.crt") == PEM


def test_paths_scope_and_watches():
    assert target_kind("ConfigMap").path("ns", "x") == "/api/v1/namespaces/ns/configmaps/x"
    assert target_kind("Secret").path("ns") == "/api/v1/namespaces/ns/secrets"
    ctb = target_kind("ClusterTrustBundle")
    assert ctb.path("", "x") == "/apis/certificates.k8s.io/v1beta1/clustertrustbundles/x" and not ctb.namespaced
    watches = {k: t.watched for k, t in TARGET_KINDS.items()}
    assert {w.path for w in watches.values()} == {"/api/v1/configmaps", "/api/v1/secrets",
                                                  "/apis/certificates.k8s.io/v1beta1/clustertrustbundles"}
    assert all(w.label_selector == BUNDLE_LABEL and not w.metadata_only for w in watches.values())


def test_contents_lists_every_key_and_marks_undecodable_values():
    assert target_kind("ConfigMap").contents({"data": {"ca.crt": "pem"}, "binaryData": {"t.p12": "AAE=", "bad": "A"}}) == {
        "ca.crt": b"pem", "t.p12": b"\x00\x01", "bad": None}
    assert target_kind("Secret").contents({"data": {"ca.crt": base64.b64encode(PEM).decode(), "bad": "A"}}) == {
        "ca.crt": PEM, "bad": None}
    assert target_kind("ClusterTrustBundle").contents({"spec": {"trustBundle": PEM.decode()}}) == {"trustBundle": PEM}
    assert target_kind("ClusterTrustBundle").contents({"spec": {}}) == {}


@pytest.mark.parametrize("kind", ["ConfigMap", "Secret"])
def test_a_store_rendered_as_none_is_removed_and_the_rest_kept(kind):
    """A truststore that would hold no certificate (a deleted policy's last CA) is removed: the
    field is replaced whole, so dropping the last binaryData key must leave none behind."""
    target = target_kind(kind)
    current = {**target.render(None, "ca.crt", PEM, {"truststore.p12": b"p12", "truststore.jks": b"jks"}),
               "metadata": {"name": "x"}}
    content = target.render(current, "ca.crt", b"", {"truststore.p12": None})
    obj = {**current, **content}
    assert target.read_truststore_bytes(obj, "truststore.p12") is None
    assert target.read_truststore_bytes(obj, "truststore.jks") == b"jks"
    content = target.render(obj, "ca.crt", b"", {"truststore.jks": None, "never-there": None})
    obj = {**obj, **content}
    assert target.read_truststore_bytes(obj, "truststore.jks") is None and target.read_pem(obj, "ca.crt") == b""
    field = "binaryData" if kind == "ConfigMap" else "data"
    assert set(obj.get(field) or {}) <= {"ca.crt"}

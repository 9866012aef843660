"""The image inputs agree with the tests' interpreter, and the OCI archives we write are well-formed."""

from __future__ import annotations

import hashlib
import json
import re
import sys
import tarfile
from pathlib import Path

import yaml

from certpolicy.localcluster import images

REPO = Path(__file__).resolve().parents[3]
RUNNING = f"{sys.version_info.major}.{sys.version_info.minor}"


def test_dockerfile_base_and_local_base_have_the_tests_python_minor_version():
    text = (REPO / "Dockerfile").read_text()
    default = re.search(r"^ARG BASE_IMAGE=python:(\d+\.\d+)[.-]", text, re.M)
    assert default, "the Dockerfile's public base is an ARG (BASE_IMAGE) with the Python version in its tag"
    assert default.group(1) == RUNNING
    assert images.PYTHON_MINOR == RUNNING
    assert text.count("FROM ${BASE_IMAGE}") == 2


def test_the_operator_image_is_tagged_like_the_deployment():
    dep = yaml.safe_load((REPO / "manifests" / "deployment.yaml").read_text())
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"] == images.OPERATOR_IMAGE


def test_oci_archive_has_a_named_manifest_whose_digests_match(tmp_path):
    layer = tmp_path / "layer.tar"
    with tarfile.open(layer, "w") as tar:
        payload = tmp_path / "hello"
        payload.write_text("hi")
        tar.add(payload, arcname="hello")
    out = images.write_oci_archive(tmp_path / "image.tar", "certpolicy.local/test:1", layer, {"Cmd": ["/hello"]})
    with tarfile.open(out) as tar:
        blobs = {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    for name, data in blobs.items():
        if name.startswith("blobs/sha256/"):
            assert hashlib.sha256(data).hexdigest() == name.rsplit("/", 1)[1]
    index = json.loads(blobs["index.json"])
    entry = index["manifests"][0]
    assert entry["annotations"]["io.containerd.image.name"] == "certpolicy.local/test:1"
    manifest = json.loads(blobs[f"blobs/sha256/{entry['digest'].split(':')[1]}"])
    config = json.loads(blobs[f"blobs/sha256/{manifest['config']['digest'].split(':')[1]}"])
    assert config["rootfs"]["diff_ids"] == [manifest["layers"][0]["digest"]]
    assert config["config"] == {"Cmd": ["/hello"]}
    assert not (tmp_path / "image.partial").exists()

"""The krew manifest names the archive scripts/krew_archive.py builds, byte for byte."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import tarfile

import yaml

from paths import REPO


def _archive_module():
    spec = importlib.util.spec_from_file_location("krew_archive", REPO / "scripts" / "krew_archive.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_manifest_matches_the_reproducible_archive():
    manifest = yaml.safe_load((REPO / "plugins" / "certpolicy.yaml").read_text())
    assert manifest["apiVersion"] == "krew.googlecontainertools.github.com/v1alpha2" and manifest["kind"] == "Plugin"
    assert manifest["metadata"]["name"] == "certpolicy"
    data = _archive_module().archive()
    assert data == _archive_module().archive()  # reproducible
    (platform,) = manifest["spec"]["platforms"]
    assert platform["sha256"] == hashlib.sha256(data).hexdigest(), "run scripts/krew_archive.py and update plugins/certpolicy.yaml"
    names = tarfile.open(fileobj=io.BytesIO(data)).getnames()
    assert platform["bin"] in names and all(f["from"] in names for f in platform["files"])

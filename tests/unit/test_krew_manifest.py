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


def test_the_archive_and_the_repository_carry_the_apache_license():
    """krew refuses a plugin archive without a license; pyproject.toml says Apache-2.0."""
    text = (REPO / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "END OF TERMS AND CONDITIONS" in text and len(text) > 10_000  # the full text, not a stub
    assert 'license = "Apache-2.0"' in (REPO / "pyproject.toml").read_text()
    manifest = yaml.safe_load((REPO / "plugins" / "certpolicy.yaml").read_text())
    (platform,) = manifest["spec"]["platforms"]
    assert {"from": "LICENSE", "to": "."} in platform["files"]
    with tarfile.open(fileobj=io.BytesIO(_archive_module().archive())) as tar:
        member = tar.extractfile("LICENSE")
        assert member is not None and member.read().decode() == text

"""Container images for the local node, made without a registry: built here, imported into containerd.

- The **base** is Debian bookworm from its packages (debootstrap, minbase, plus ``python3``,
  ``python3-venv`` and ``python-is-python3``): Python 3.11, the minor version the tests run on. It
  is both the operator image's base (the Dockerfile's ``BASE_IMAGE`` argument) and the image of
  the mTLS workloads in the e2e tests (Python's ``ssl`` is all they need).
- The **pause** image (every Pod's sandbox) is upstream's ``pause.c`` from the same
  ``k8s.io/kubernetes`` module the binaries are built from, compiled statically with gcc.
- The **operator** image is the repository's Dockerfile, built by buildah (no daemon) from the base.

Base and pause are written as OCI archives with the standard library (one layer each) and cached
in ``~/.cache/certpolicy/images``; the operator image is cached by a hash of what it is built
from, so an unchanged tree is not rebuilt. ``ctr images import`` loads any of them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from certpolicy.localcluster.binaries import KUBERNETES_VERSION, BinaryError, build_lock, cache_root
from certpolicy.timestamps import rfc3339

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR = "http://deb.debian.org/debian"
PYTHON_MINOR = "3.11"  # Debian bookworm's python3; the Dockerfile and CI use the same minor version
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3", "ca-certificates")
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
BASE_IMAGE = f"certpolicy.local/debian-python:{DEBIAN_SUITE}-{PYTHON_MINOR}"
PAUSE_VERSION = "3.10.2"  # build/pause/Makefile's TAG in k8s.io/kubernetes v1.36.3
PAUSE_IMAGE = f"certpolicy.local/pause:{PAUSE_VERSION}"
OPERATOR_IMAGE = "ghcr.io/certpolicy/certpolicy-operator:0.1.0"  # what manifests/deployment.yaml runs
_TRIM = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt",
         "var/lib/apt/lists", "var/log")


class ImageError(BinaryError):
    """An image cannot be built here; the message says why and what to install."""


def images_dir() -> Path:
    path = cache_root() / "images"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _run(argv: list[str], what: str, cwd: Path | None = None, timeout: float = 1800) -> str:
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=cwd, timeout=timeout)
    if proc.returncode != 0:
        raise ImageError(f"{what} failed (exit {proc.returncode}): {' '.join(argv[:3])} ...\n"
                         f"{(proc.stderr or proc.stdout)[-4000:]}")
    return proc.stdout


def _need(tool: str, package: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise ImageError(f"{tool} not found: apt-get install {package}")
    return found


# ---- OCI archives ------------------------------------------------------------------------------
def _blob(out: tarfile.TarFile, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    info = tarfile.TarInfo(f"blobs/sha256/{digest}")
    info.size = len(data)
    out.addfile(info, io.BytesIO(data))
    return f"sha256:{digest}", len(data)


def write_oci_archive(path: Path, name: str, layer: Path, config: dict) -> Path:
    """An OCI image archive (layout in a tar) holding one uncompressed layer, named ``name``."""
    digest = hashlib.sha256()
    with open(layer, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    layer_digest = f"sha256:{digest.hexdigest()}"
    image_config = {
        "architecture": "amd64", "os": "linux",
        "created": rfc3339(dt.datetime.now(dt.UTC)),
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }
    tmp = path.with_suffix(".partial")
    with tarfile.open(tmp, "w") as out:
        out.add(layer, arcname=f"blobs/sha256/{digest.hexdigest()}")
        config_digest, config_size = _blob(out, json.dumps(image_config).encode())
        manifest = {
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": layer_digest, "size": layer.stat().st_size}],
        }
        manifest_digest, manifest_size = _blob(out, json.dumps(manifest).encode())
        index = {"schemaVersion": 2, "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": manifest_size,
            "annotations": {"io.containerd.image.name": name, "org.opencontainers.image.ref.name": name},
        }]}
        for fname, data in (("oci-layout", b'{"imageLayoutVersion": "1.0.0"}'),
                            ("index.json", json.dumps(index).encode())):
            info = tarfile.TarInfo(fname)
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))
    os.replace(tmp, path)  # a cached archive is always complete
    return path


# ---- base: Debian + Python ---------------------------------------------------------------------
def base_archive(log=sys.stderr) -> Path:
    """The Debian bookworm + Python 3.11 base image as an OCI archive (cached)."""
    out = images_dir() / f"debian-python-{DEBIAN_SUITE}-{PYTHON_MINOR}.oci.tar"
    with build_lock():
        if out.exists():
            return out
        debootstrap = _need("debootstrap", "debootstrap")
        with tempfile.TemporaryDirectory(prefix="base-", dir=images_dir()) as work:
            rootfs = Path(work) / "rootfs"
            print(f"certpolicy: building the base image (debootstrap {DEBIAN_SUITE} + python3, "
                  "first run only, a few minutes)...", file=log, flush=True)
            _run([debootstrap, "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                  DEBIAN_SUITE, str(rootfs), DEBIAN_MIRROR], "debootstrap")
            version = _run(["chroot", str(rootfs), "python3", "-c",
                            "import ssl, sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                           "python3 in the base").strip()
            if version != PYTHON_MINOR:
                raise ImageError(f"the base has Python {version}, expected {PYTHON_MINOR}")
            # The host's trust store, so that pip in a build on this machine reaches PyPI through
            # whatever TLS the host trusts (an intercepting proxy's CA included); Debian's own
            # ca-certificates bundle where the host has nothing else.
            certs = rootfs / "etc" / "ssl" / "certs"
            certs.mkdir(parents=True, exist_ok=True)
            if HOST_CA_BUNDLE.is_file():
                shutil.copyfile(HOST_CA_BUNDLE, certs / "ca-certificates.crt")
            for sub in _TRIM:
                target = rootfs / sub
                if target.is_dir():
                    shutil.rmtree(target)
                    target.mkdir()
            layer = Path(work) / "layer.tar"
            with tarfile.open(layer, "w") as tar:
                for entry in sorted(rootfs.iterdir()):
                    tar.add(entry, arcname=entry.name)
            env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                   "PIP_CERT=/etc/ssl/certs/ca-certificates.crt", "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"]
            write_oci_archive(out, BASE_IMAGE, layer, {"Env": env, "Cmd": ["python3"]})
    return out


# ---- pause -------------------------------------------------------------------------------------
def _kubernetes_source() -> Path:
    go = _need("go", "golang-go")
    info = json.loads(_run([go, "mod", "download", "-json", f"k8s.io/kubernetes@v{KUBERNETES_VERSION}"],
                           "go mod download k8s.io/kubernetes", cwd=Path(tempfile.gettempdir())))
    return Path(info["Dir"])


def pause_archive(log=sys.stderr) -> Path:
    """The sandbox image every Pod starts with: upstream pause.c, static, in a one-file image (cached)."""
    out = images_dir() / f"pause-{PAUSE_VERSION}.oci.tar"
    with build_lock():
        if out.exists():
            return out
        gcc = _need("gcc", "gcc libc6-dev")
        source = _kubernetes_source() / "build" / "pause" / "linux" / "pause.c"
        print("certpolicy: building the pause image from k8s.io/kubernetes's pause.c...", file=log, flush=True)
        with tempfile.TemporaryDirectory(prefix="pause-", dir=images_dir()) as work:
            binary = Path(work) / "pause"
            _run([gcc, "-Os", "-Wall", "-static", f"-DVERSION=v{PAUSE_VERSION}-certpolicy", "-o", str(binary),
                  str(source)], "gcc pause.c")
            layer = Path(work) / "layer.tar"
            with tarfile.open(layer, "w") as tar:
                info = tar.gettarinfo(str(binary), arcname="pause")
                info.uid = info.gid = 0
                info.uname = info.gname = "root"
                info.mode = 0o755
                with open(binary, "rb") as f:
                    tar.addfile(info, f)
            write_oci_archive(out, PAUSE_IMAGE, layer, {"Entrypoint": ["/pause"], "User": "65535:65535"})
    return out


# ---- operator: the repository's Dockerfile -----------------------------------------------------
_OPERATOR_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "README.md", "operator", "crds")


def _tree_hash(repo: Path) -> str:
    h = hashlib.sha256()
    for top in _OPERATOR_INPUTS:
        paths = [repo / top] if (repo / top).is_file() else sorted((repo / top).rglob("*"))
        for p in paths:
            if p.is_file() and "__pycache__" not in p.parts and not p.name.endswith(".egg-info"):
                h.update(str(p.relative_to(repo)).encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def operator_archive(repo: Path, log=sys.stderr) -> Path:
    """Build the Dockerfile with buildah from the local base; a docker archive tagged like the manifests."""
    buildah = _need("buildah", "buildah")
    key = _tree_hash(repo)
    out = images_dir() / f"certpolicy-operator-{key}.docker.tar"
    base = base_archive(log=log)
    with build_lock():
        if out.exists():
            return out
        for old in images_dir().glob("certpolicy-operator-*.docker.tar"):
            old.unlink()  # one operator image at a time: the cache does not grow with every change
        storage = images_dir() / "buildah"
        common = [buildah, f"--root={storage / 'root'}", f"--runroot={storage / 'run'}", "--storage-driver=overlay"]
        print("certpolicy: building the operator image from the Dockerfile with buildah...", file=log, flush=True)
        _run([*common, "bud", "--isolation=chroot", "--network=host", "--layers=false",
              f"--build-arg=BASE_IMAGE=oci-archive:{base}", "-t", OPERATOR_IMAGE, "-f", str(repo / "Dockerfile"),
              str(repo)], "buildah bud")
        tmp = out.with_suffix(".partial")
        tmp.unlink(missing_ok=True)
        _run([*common, "push", OPERATOR_IMAGE, f"docker-archive:{tmp}:{OPERATOR_IMAGE}"], "buildah push")
        _run([*common, "rmi", "--all", "--force"], "buildah rmi")  # the archive is the cache, not the storage
        os.replace(tmp, out)
    return out

"""Where the control plane's binaries come from: a directory you point at, a cache, or a Go build.

kube-apiserver is not packaged by Debian and this project may not download release tarballs, but
the Go module proxy is reachable: building ``k8s.io/kubernetes/cmd/kube-apiserver`` from a
throwaway module that requires the pinned release and ``replace``s every staging module with its
published ``v0.X.Y`` gives the genuine upstream binary. kubectl is built in the same ``go build``
(it shares most packages) so the demo and tests can use ``kubectl get/explain/wait`` exactly as a
user would. The build takes minutes once; the result is cached per user, keyed by version.

The node components (kubelet, kube-controller-manager, kube-scheduler, kube-proxy) come from the
same module, the same way, into the same cache; they are built only when a node is asked for
(``certpolicy local-cluster --node``), so the default control plane stays fast.

etcd comes from the OS (Debian's ``etcd-server``) or the assets directory.

The other Go tools the tests use (``helm`` for the chart, ``promtool`` for the alerting rules)
come the same way: :data:`GO_TOOLS` pins each one's module and version, :func:`ensure_tool` finds
it in the assets directory, the cache, or builds it with ``go install pkg@version`` (their
modules have no ``replace`` directives, so no throwaway module is needed). Every build, of any
tool, holds the same lock: a second process waits instead of building the same thing twice,
and two builds never compete for the machine's cores.

Some tools have no ``cmd/`` package the proxy serves: cert-manager's controller binary lives in a
separate module (``cmd/controller``) that is not published. For those the repository keeps a
small Go ``main`` with its own go.mod and go.sum under ``tests/tools/<name>/`` (:data:`GO_MAINS`),
built with ``go build`` by :func:`ensure_go_main` into a cache directory keyed by the source's
digest, next to the files it needs from the module it builds on (cert-manager's CRDs).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

KUBERNETES_VERSION = "1.36.3"
ASSETS_ENV = "CERTPOLICY_ASSETS"  # like KUBEBUILDER_ASSETS: a directory with kube-apiserver, etcd, kubectl
GO_PROXY_DEFAULT = "https://proxy.golang.org"

# Staging modules of k8s.io/kubernetes; each is replaced by its published v0.<minor>.<patch>.
# Read from the release's go.mod at build time; this list is the fallback.
STAGING_FALLBACK = (
    "api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider "
    "cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api "
    "cri-client cri-streaming csi-translation-lib dynamic-resource-allocation endpointslice externaljwt "
    "kms kube-aggregator kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics "
    "mount-utils pod-security-admission sample-apiserver sample-cli-plugin sample-controller streaming"
).split()


CONTROL_PLANE = ("kube-apiserver", "kubectl")
NODE = ("kubelet", "kube-controller-manager", "kube-scheduler", "kube-proxy")


class BinaryError(RuntimeError):
    """A binary cannot be found or built; the message says how to provide it."""


@dataclass(frozen=True)
class Binaries:
    etcd: Path
    kube_apiserver: Path
    kubectl: Path


@dataclass(frozen=True)
class NodeBinaries:
    """What a node adds to the control plane (containerd, runc and CNI plugins come from the OS)."""

    kubelet: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kube_proxy: Path


@dataclass(frozen=True)
class GoTool:
    """A Go command built from the module proxy: ``go install <package>@<version>``."""

    name: str
    package: str
    version: str
    tags: tuple[str, ...] = ()
    ldflags: tuple[str, ...] = ()

    @property
    def cache(self) -> Path:
        return cache_root() / f"{self.name}-{self.version}"


GO_TOOLS: dict[str, GoTool] = {
    "helm": GoTool(
        "helm", "helm.sh/helm/v3/cmd/helm", "v3.22.0",
        # What helm's own Makefile sets: the Kubernetes version its client-go (v0.37) speaks,
        # which `helm template` and `helm lint` assume when no cluster is asked (else 1.20).
        ldflags=("-X helm.sh/helm/v3/internal/version.version=v3.22.0",
                 "-X helm.sh/helm/v3/internal/version.gitTreeState=clean",
                 *(f"-X helm.sh/helm/v3/pkg/{pkg}.k8sVersion{part}={v}"
                   for pkg in ("chartutil", "lint/rules") for part, v in (("Major", 1), ("Minor", 37)))),
    ),
    # remove_all_sd: promtool's service-discovery plugins (cloud SDKs) are not needed to test
    # rules and are most of its build time.
    "promtool": GoTool(
        "promtool", "github.com/prometheus/prometheus/cmd/promtool", "v0.316.0",
        tags=("remove_all_sd",),
        ldflags=("-X github.com/prometheus/common/version.Version=0.316.0",),
    ),
}


#: Where the repository keeps the Go mains of :data:`GO_MAINS` (a checkout, not an installed wheel).
GO_MAIN_DIR = Path(__file__).resolve().parents[3] / "tests" / "tools"


@dataclass(frozen=True)
class GoMain:
    """A Go ``main`` kept in this repository (``GO_MAIN_DIR/<name>``, its own go.mod and go.sum),
    built on a published module whose own command is not served by the module proxy.

    ``module_files`` are paths inside that module (at the version go.mod requires) copied next to
    the binary in the cache, e.g. the CRDs the controller serves.
    """

    name: str
    module: str
    module_files: tuple[str, ...] = ()

    @property
    def source(self) -> Path:
        return GO_MAIN_DIR / self.name

    def module_version(self) -> str:
        """The version of :attr:`module` that the main's go.mod requires."""
        for line in (self.source / "go.mod").read_text().splitlines():
            words = line.split()
            if self.module in words:
                return words[words.index(self.module) + 1]
        raise BinaryError(f"{self.source / 'go.mod'} does not require {self.module}")

    def digest(self) -> str:
        """Of the source files: an edited main.go or a new go.sum is a new cache entry."""
        h = hashlib.sha256()
        for f in sorted(self.source.glob("*")):
            if f.suffix in (".go", ".mod", ".sum"):
                h.update(f.name.encode() + b"\0" + f.read_bytes())
        return h.hexdigest()[:12]

    @property
    def cache(self) -> Path:
        return cache_root() / f"{self.name}-{self.module_version()}-{self.digest()}"


GO_MAINS: dict[str, GoMain] = {
    # cert-manager's Certificate, CertificateRequest (CA, SelfSigned) and Issuer controllers, for
    # the integration tests that judge what cert-manager issues (tests/certmanager.py).
    "cert-manager-controller": GoMain("cert-manager-controller", "github.com/cert-manager/cert-manager",
                                      module_files=("deploy/crds",)),
}


def cache_root() -> Path:
    """~/.cache/certpolicy (or under $XDG_CACHE_HOME): every binary and image the project builds."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "certpolicy"


def cache_dir() -> Path:
    return cache_root() / f"kubernetes-v{KUBERNETES_VERSION}"


@contextlib.contextmanager
def build_lock() -> Iterator[None]:
    """The lock file ``ensure_binaries`` takes for the Kubernetes build, taken by every tool build too."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # a second process waits for the first one's build
        yield


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_etcd(assets: Path | None) -> Path:
    candidates = []
    if assets:
        candidates.append(assets / "etcd")
    found = shutil.which("etcd")
    if found:
        candidates.append(Path(found))
    candidates.append(Path("/usr/bin/etcd"))
    for c in candidates:
        if _executable(c):
            return c
    raise BinaryError(
        "etcd not found: install Debian's etcd-server package (apt-get install etcd-server), "
        f"or put an etcd binary in the directory named by ${ASSETS_ENV}"
    )


def _staging_modules(version: str, proxy: str) -> list[str]:
    url = f"{proxy}/k8s.io/kubernetes/@v/v{version}.mod"
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:  # noqa: S310 - fixed https URL
            text = resp.read().decode()
    except OSError:
        return list(STAGING_FALLBACK)
    mods = []
    for line in text.splitlines():
        line = line.strip()
        if "=> ./staging/src/k8s.io/" in line:
            mods.append(line.split()[0].removeprefix("k8s.io/"))
    return mods or list(STAGING_FALLBACK)


def build_kubernetes(dest: Path, commands: tuple[str, ...] = CONTROL_PLANE, version: str = KUBERNETES_VERSION,
                     log=sys.stderr) -> None:
    """Build ``commands`` (names under k8s.io/kubernetes/cmd) from the Go module proxy into ``dest``."""
    go = shutil.which("go")
    if not go:
        raise BinaryError(
            f"{', '.join(commands)} not cached and Go is not installed to build them: install Go >= 1.26, "
            f"or point ${ASSETS_ENV} at a directory holding {', '.join(commands)}"
        )
    proxy = (os.environ.get("GOPROXY") or GO_PROXY_DEFAULT).split(",")[0]
    if proxy in ("direct", "off"):
        proxy = GO_PROXY_DEFAULT
    minor_patch = version.split(".", 1)[1]
    replaces = "\n".join(
        f"\tk8s.io/{m} => k8s.io/{m} v0.{minor_patch}" for m in _staging_modules(version, proxy)
    )
    gomod = (
        "module certpolicy.local/kubebuild\n\ngo 1.26.0\n\n"
        f"require k8s.io/kubernetes v{version}\n\nreplace (\n{replaces}\n)\n"
    )
    major, minor = version.split(".")[:2]
    ldflags = " ".join(
        [
            "-s -w",
            f"-X k8s.io/component-base/version.gitVersion=v{version}",
            f"-X k8s.io/component-base/version.gitMajor={major}",
            f"-X k8s.io/component-base/version.gitMinor={minor}",
            f"-X k8s.io/client-go/pkg/version.gitVersion=v{version}",
            "-X k8s.io/component-base/version.gitTreeState=clean",
        ]
    )
    with tempfile.TemporaryDirectory(prefix="certpolicy-kubebuild-") as work:
        Path(work, "go.mod").write_text(gomod)
        env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=mod")
        pkgs = [f"k8s.io/kubernetes/cmd/{name}" for name in commands]
        print(f"certpolicy: building {', '.join(commands)} v{version} from the Go module proxy "
              "(first run only, several minutes)...", file=log, flush=True)
        steps = [
            [go, "get", *(f"{p}@v{version}" for p in pkgs)],
            [go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(dest) + "/", *pkgs],
        ]
        dest.mkdir(parents=True, exist_ok=True)
        for cmd in steps:
            proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise BinaryError(f"{' '.join(cmd[:2])} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")


def build_tool(tool: GoTool, dest: Path, log=sys.stderr) -> None:
    """``go install`` one tool at its pinned version into ``dest`` (outside any module)."""
    go = shutil.which("go")
    if not go:
        raise BinaryError(f"{tool.name} is not cached and Go is not installed to build it: install Go >= 1.26, "
                          f"or put a {tool.name} binary in the directory named by ${ASSETS_ENV}")
    print(f"certpolicy: building {tool.name} {tool.version} from the Go module proxy (first use only)...",
          file=log, flush=True)
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [go, "install", "-trimpath", "-ldflags", " ".join(("-s -w", *tool.ldflags))]
    if tool.tags:
        cmd += ["-tags", ",".join(tool.tags)]
    cmd.append(f"{tool.package}@{tool.version}")
    with tempfile.TemporaryDirectory(prefix=f"certpolicy-{tool.name}build-") as work:
        env = dict(os.environ, CGO_ENABLED="0", GOBIN=str(dest), GOFLAGS="", GO111MODULE="on")
        proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BinaryError(f"go install {tool.package}@{tool.version} failed (exit {proc.returncode}):\n"
                              f"{proc.stderr[-4000:]}")


def ensure_tool(name: str, log=sys.stderr) -> Path:
    """The path of a Go tool from :data:`GO_TOOLS`: from ``$CERTPOLICY_ASSETS``, the cache, or
    built on first use (under :func:`build_lock`, so concurrent callers build it once)."""
    tool = GO_TOOLS[name]
    assets_env = os.environ.get(ASSETS_ENV) or os.environ.get("KUBEBUILDER_ASSETS")
    if assets_env and _executable(Path(assets_env) / name):
        return Path(assets_env) / name
    cached = tool.cache / name
    if _executable(cached):
        return cached
    with build_lock():
        if not _executable(cached):
            tool.cache.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix="bin-", dir=tool.cache))
            try:
                build_tool(tool, staging, log=log)
                os.replace(staging / name, cached)  # atomic: never a half-written binary
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return cached


def build_go_main(main: GoMain, dest: Path, log=sys.stderr) -> None:
    """``go build`` the main into ``dest`` (go.sum checked: -mod=readonly) and copy its module files."""
    go = shutil.which("go")
    if not go:
        raise BinaryError(f"{main.name} is not cached and Go is not installed to build it: install Go >= 1.26")
    if not (main.source / "go.mod").is_file():
        raise BinaryError(f"{main.name}: no Go source at {main.source} (it is built from a checkout of this repository)")
    version = main.module_version()
    print(f"certpolicy: building {main.name} ({main.module} {version}) from the Go module proxy "
          "(first use only, several minutes)...", file=log, flush=True)
    env = dict(os.environ, CGO_ENABLED="0", GOFLAGS="-mod=readonly", GO111MODULE="on")
    dest.mkdir(parents=True, exist_ok=True)
    steps = [
        [go, "build", "-trimpath", "-ldflags", "-s -w", "-o", str(dest / main.name), "."],
        [go, "mod", "download", "-json", f"{main.module}@{version}"],
    ]
    outputs = []
    for cmd in steps:
        proc = subprocess.run(cmd, cwd=main.source, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise BinaryError(f"{' '.join(cmd[:2])} failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
        outputs.append(proc.stdout)
    module_dir = Path(json.loads(outputs[1])["Dir"])
    for rel in main.module_files:
        src = module_dir / rel
        if src.is_dir():
            shutil.copytree(src, dest / rel)
        else:
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / rel)
    # The module cache is read-only; the copies need not be.
    for path in dest.rglob("*"):
        path.chmod(0o755 if path.is_dir() or path.name == main.name else 0o644)


def ensure_go_main(name: str, log=sys.stderr) -> Path:
    """The cache directory of a :data:`GO_MAINS` entry: the binary ``<dir>/<name>`` and its module
    files, built on first use under :func:`build_lock` (concurrent callers build it once). The
    directory appears whole (staged, then renamed) or not at all."""
    main = GO_MAINS[name]
    cache = main.cache
    if _executable(cache / name):
        return cache
    with build_lock():
        if not _executable(cache / name):
            cache.parent.mkdir(parents=True, exist_ok=True)
            staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=cache.parent))
            try:
                build_go_main(main, staging, log=log)
                os.replace(staging, cache)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return cache


def go_main_cached(name: str) -> bool:
    """Whether :func:`ensure_go_main` would return at once (no build)."""
    return _executable(GO_MAINS[name].cache / name)


def _assets_dir() -> Path | None:
    assets_env = os.environ.get(ASSETS_ENV) or os.environ.get("KUBEBUILDER_ASSETS")
    return Path(assets_env) if assets_env else None


def _cached(commands: tuple[str, ...], log) -> Path:
    """The Kubernetes cache directory with every one of ``commands`` in it, built once by whoever
    asks first (under :func:`build_lock`); each build is staged, then each binary moved in
    atomically, so a binary in the cache is always complete."""
    cache = cache_dir()
    with build_lock():
        missing = tuple(name for name in commands if not _executable(cache / name))
        if missing:
            staging = Path(tempfile.mkdtemp(prefix="bin-", dir=cache))
            try:
                build_kubernetes(staging, missing, log=log)
                for name in missing:
                    os.replace(staging / name, cache / name)  # atomic: never a half-written binary
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    return cache


def ensure_binaries(log=sys.stderr) -> Binaries:
    """Find or build every binary; safe to call from several processes at once."""
    assets = _assets_dir()
    if assets and _executable(assets / "kube-apiserver"):
        kubectl = assets / "kubectl"
        if not _executable(kubectl):
            kubectl = _cached_kubectl_or_path(log)
        return Binaries(etcd=find_etcd(assets), kube_apiserver=assets / "kube-apiserver", kubectl=kubectl)
    etcd = find_etcd(assets)
    cache = _cached(CONTROL_PLANE, log)
    return Binaries(etcd=etcd, kube_apiserver=cache / "kube-apiserver", kubectl=cache / "kubectl")


def ensure_node_binaries(log=sys.stderr) -> NodeBinaries:
    """Find (assets directory) or build (cache) kubelet, kube-controller-manager, kube-scheduler, kube-proxy."""
    assets = _assets_dir()
    where = assets if assets and all(_executable(assets / name) for name in NODE) else _cached(NODE, log)
    return NodeBinaries(*(where / name for name in NODE))


def _cached_kubectl_or_path(log) -> Path:
    cached = cache_dir() / "kubectl"
    if _executable(cached):
        return cached
    found = shutil.which("kubectl")
    if found:
        return Path(found)
    raise BinaryError(f"kubectl not found in ${ASSETS_ENV}, the cache or PATH")

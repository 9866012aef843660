"""One real node for the local control plane: containerd + CNI, kubelet, kube-proxy, and the
controllers that make a cluster behave like one (kube-controller-manager, kube-scheduler).

Without it Pods are objects that never start. With it the Deployment in ``manifests/`` really
runs, Secrets are really mounted and updated by a kubelet, and a rotation can be checked where it
matters: in handshakes between running workloads.

Everything lives under the cluster's working directory (containerd's root and socket, kubelet's
root, pod logs, configs, certificates) except what the kernel keeps machine-wide: the Pod bridge
``cpol0`` (10.88.0.0/16, gateway 10.88.0.1, which is also the API server's advertised address),
kube-proxy's iptables chains, the kubelet's ``kubepods`` cgroups and the Pods' network
namespaces. ``stop()`` removes all of them; a machine-wide lock allows one such node at a time.

Needs root, containerd and runc, and the CNI plugins (Debian: ``containerd runc
containernetworking-plugins iptables``; scripts/install-system-deps.sh --node installs them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Protocol, TextIO

import yaml

from certpolicy.localcluster.binaries import NodeBinaries, ensure_node_binaries
from certpolicy.localcluster.images import PAUSE_IMAGE
from certpolicy.localcluster.procs import ChildProcess, ClusterError, free_port, log_tail
from certpolicy.pki.issue import KeyPair, issue_leaf

NODE_NAME = "certpolicy-node"
BRIDGE = "cpol0"
POD_CIDR = "10.88.0.0/16"
NODE_IP = "10.88.0.1"  # the bridge's address: what Pods reach the host (and the API server) on
CNI_BIN_DIRS = ("/usr/lib/cni", "/opt/cni/bin")
LOCK_FILE = Path("/run/certpolicy-node.lock")
OS_PACKAGES = "containerd runc containernetworking-plugins iptables"


class NodeError(ClusterError):
    """The node cannot start here; the message says what is missing or what failed."""


def _run(*argv: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, check=check, timeout=timeout)


def cni_bin_dir() -> Path:
    for d in CNI_BIN_DIRS:
        if all((Path(d) / p).is_file() for p in ("bridge", "host-local", "loopback")):
            return Path(d)
    raise NodeError(f"CNI plugins bridge, host-local and loopback not found in {' or '.join(CNI_BIN_DIRS)}: "
                    f"apt-get install {OS_PACKAGES}")


def check_host() -> None:
    """Fail early, with the fix, when this machine cannot run a node."""
    if os.geteuid() != 0:
        raise NodeError("a local node needs root (containerd, kubelet, iptables, network namespaces)")
    missing = [tool for tool in ("containerd", "runc", "iptables", "ip") if not shutil.which(tool)]
    if missing:
        raise NodeError(f"{', '.join(missing)} not found: apt-get install {OS_PACKAGES}")
    cni_bin_dir()


class ControlPlane(Protocol):
    """What a node needs of the control plane it joins (a ``LocalCluster``): a Protocol, so this
    module does not import cluster.py, which imports this one to start a node."""

    log: TextIO

    @property
    def _dir(self) -> Path: ...

    @property
    def _ca_pair(self) -> KeyPair: ...

    def write_kubeconfig(self, path: Path, client: KeyPair) -> Path: ...

    def kubectl(self, *args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess: ...


@dataclass
class Node:
    """The node's processes and host state; started and stopped by ``LocalCluster(node=True)``."""

    cluster: ControlPlane  # a LocalCluster, which imports this module lazily, only for node=True
    binaries: NodeBinaries | None = None
    _procs: dict[str, ChildProcess] = field(default_factory=dict)
    _lock: IO[str] | None = None
    _netns_before: set[str] = field(default_factory=set)
    _ip_forward_before: str | None = None

    @property
    def dir(self) -> Path:
        return self.cluster._dir / "node"

    @property
    def containerd_socket(self) -> Path:
        return self.dir / "containerd" / "containerd.sock"

    # ---- lifecycle -------------------------------------------------------------------------
    def start(self, timeout: float = 180.0) -> None:
        check_host()
        self.binaries = self.binaries or ensure_node_binaries(log=self.cluster.log)
        LOCK_FILE.parent.mkdir(parents=True, exist_ok=True)
        self._lock = lock = open(LOCK_FILE, "w")  # noqa: SIM115 - held for the node's lifetime
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            self._lock = None
            raise NodeError(f"another local node runs on this machine (lock {LOCK_FILE} is held)") from None
        self.dir.mkdir(parents=True, exist_ok=True)
        self._netns_before = set(_netns_names())
        self._write_pki()
        self._enable_forwarding()
        self._start_containerd(timeout)
        for name in ("kube-controller-manager", "kube-scheduler", "kube-proxy", "kubelet"):
            self._start(name)
        self.wait_ready(timeout)

    def stop(self) -> None:
        """Stop everything, then remove what the node left on the host (best effort, each step)."""
        for name in ("kube-scheduler", "kube-controller-manager"):
            self._stop(name)  # nothing recreates Pods while they are being torn down
        if self.alive("kubelet") and self.alive("containerd"):
            self._remove_pods()
        for name in ("kubelet", "kube-proxy"):
            self._stop(name)
        if self.alive("containerd"):
            self._kill_containers()
        self._stop("containerd")
        self._kill_shims()
        self._unmount_under(self.dir)
        for ns in set(_netns_names()) - self._netns_before:
            _run("ip", "netns", "delete", ns, check=False)
        if self.binaries and self._procs.get("kube-proxy"):
            _run(str(self.binaries.kube_proxy), "--cleanup", check=False)
        _remove_kube_chains()  # the kubelet's own (KUBE-FIREWALL, canaries), which --cleanup leaves
        _run("ip", "link", "delete", BRIDGE, check=False)
        self._restore_forwarding()
        _remove_cgroups("kubepods")
        if self._lock:
            self._lock.close()
            self._lock = None

    def alive(self, name: str) -> bool:
        proc = self._procs.get(name)
        return bool(proc and proc.alive())

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            for name, proc in self._procs.items():
                if not proc.alive():
                    raise NodeError(f"{name} exited; last log lines:\n{log_tail(proc.log)}")
            out = self.cluster.kubectl("get", "node", NODE_NAME, "-o", "json", check=False)
            if out.returncode == 0:
                conditions = json.loads(out.stdout).get("status", {}).get("conditions", [])
                ready = [c for c in conditions if c["type"] == "Ready"]
                if ready and ready[0]["status"] == "True":
                    return
                last = ready[0].get("message", "") if ready else "no Ready condition yet"
            else:
                last = out.stderr.strip()
            time.sleep(1)
        raise NodeError(f"node {NODE_NAME} not Ready after {timeout:.0f}s ({last}); kubelet log:\n"
                        f"{log_tail(self._procs['kubelet'].log)}")

    # ---- pieces ----------------------------------------------------------------------------
    def _write_pki(self) -> None:
        """Client certificates for each component, signed by the cluster CA, with the identities
        the API server's default RBAC bindings (and the Node authorizer) expect."""
        c = self.cluster
        ca = c._ca_pair
        pki = self.dir / "pki"
        pki.mkdir(exist_ok=True)
        validity = dt.timedelta(days=30)
        identities = {
            "kubelet": (f"system:node:{NODE_NAME}", ["system:nodes"]),
            "kube-controller-manager": ("system:kube-controller-manager", []),
            "kube-scheduler": ("system:kube-scheduler", []),
            "kube-proxy": ("system:kube-proxy", []),
        }
        for name, (cn, orgs) in identities.items():
            pair = issue_leaf(ca, common_name=cn, organization=orgs, usages=["clientAuth"], validity=validity)
            c.write_kubeconfig(self.dir / f"{name}.kubeconfig", pair)
        serving = issue_leaf(ca, common_name=NODE_NAME, dns_names=[NODE_NAME, "localhost"],
                             ip_addresses=[NODE_IP, "127.0.0.1"], usages=["serverAuth"], validity=validity)
        for fname, data in (("kubelet.crt", serving.cert_pem), ("kubelet.key", serving.key_pem)):
            (pki / fname).write_bytes(data)
            (pki / fname).chmod(0o600)

    def _start_containerd(self, timeout: float) -> None:
        d = self.dir / "containerd"
        cni_conf = self.dir / "cni"
        for sub in (d / "root", d / "state", cni_conf):
            sub.mkdir(parents=True, exist_ok=True)
        (cni_conf / "10-certpolicy.conflist").write_text(json.dumps({
            "cniVersion": "0.4.0", "name": "certpolicy",
            "plugins": [{
                # The bridge gets its address from us (below), not from the plugin: isGateway
                # would also switch on IP forwarding for the whole host, which Pods here never need
                # (they talk to each other over the bridge and to the host's own address).
                "type": "bridge", "bridge": BRIDGE, "isGateway": False, "ipMasq": False, "hairpinMode": True,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": POD_CIDR, "gateway": NODE_IP}]],
                         "routes": [{"dst": "0.0.0.0/0", "gw": NODE_IP}],
                         "dataDir": str(self.dir / "cni-ipam")},
            }],
        }))
        _ensure_bridge()
        config = f"""version = 2
root = "{d / 'root'}"
state = "{d / 'state'}"
[grpc]
  address = "{self.containerd_socket}"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE_IMAGE}"
  restrict_oom_score_adj = {str(not _has_capability(CAP_SYS_RESOURCE)).lower()}
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{cni_bin_dir()}"
    conf_dir = "{cni_conf}"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
"""
        (d / "config.toml").write_text(config)
        proc = self._procs["containerd"] = ChildProcess(
            "containerd", ["containerd", f"--config={d / 'config.toml'}", "--log-level=warn"], self.dir / "containerd.log")
        proc.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not proc.alive():
                raise NodeError(f"containerd exited; last log lines:\n{log_tail(proc.log)}")
            if self.ctr("version", check=False).returncode == 0:
                return
            time.sleep(0.2)
        raise NodeError(f"containerd not answering on {self.containerd_socket}:\n{log_tail(proc.log)}")

    def _enable_forwarding(self) -> None:
        """A Pod reaching another Pod through a Service goes via the host (kube-proxy's DNAT), which
        then forwards it back onto the bridge: that needs IP forwarding. Only bridge-to-bridge
        traffic is forwarded (the rule below drops the rest), and the old value is restored."""
        path = Path("/proc/sys/net/ipv4/ip_forward")
        self._ip_forward_before = path.read_text().strip()
        _run("iptables", *_FORWARD_RULE("-I"))
        path.write_text("1")

    def _restore_forwarding(self) -> None:
        if self._ip_forward_before is None:
            return
        Path("/proc/sys/net/ipv4/ip_forward").write_text(self._ip_forward_before)
        while _run("iptables", *_FORWARD_RULE("-D"), check=False).returncode == 0:
            pass
        self._ip_forward_before = None

    def ctr(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
        """containerd's own CLI against this node's containerd, in the CRI namespace (``k8s.io``)."""
        return _run("ctr", f"--address={self.containerd_socket}", "--namespace=k8s.io", *args,
                    check=check, timeout=timeout)

    def _argv(self, name: str) -> list[str]:
        b, c, d = self.binaries, self.cluster, self.dir
        if b is None:
            raise NodeError("the node's binaries are not resolved: start() it first")
        pki = c._dir / "pki"
        kubeconfig = f"--kubeconfig={d / f'{name}.kubeconfig'}"
        if name == "kube-controller-manager":
            return [str(b.kube_controller_manager), kubeconfig, "--leader-elect=false", "--secure-port=0",
                    "--use-service-account-credentials=true",
                    f"--service-account-private-key-file={pki / 'sa.key'}",
                    f"--root-ca-file={pki / 'ca.crt'}",
                    "--controllers=*", "--v=1"]
        if name == "kube-scheduler":
            return [str(b.kube_scheduler), kubeconfig, "--leader-elect=false", "--secure-port=0", "--v=1"]
        config: dict[str, object]
        if name == "kube-proxy":
            config = {
                "apiVersion": "kubeproxy.config.k8s.io/v1alpha1", "kind": "KubeProxyConfiguration",
                "clientConnection": {"kubeconfig": str(d / "kube-proxy.kubeconfig")},
                "mode": "iptables", "hostnameOverride": NODE_NAME, "clusterCIDR": POD_CIDR,
                "bindAddress": "127.0.0.1",
                "healthzBindAddress": f"127.0.0.1:{free_port()}",
                "metricsBindAddress": f"127.0.0.1:{free_port()}",
                # Leave the host's conntrack sysctls alone (kube-proxy would raise nf_conntrack_max).
                "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                              "tcpCloseWaitTimeout": "0s"},
            }
            path = d / "kube-proxy.yaml"
            path.write_text(yaml.safe_dump(config))
            return [str(b.kube_proxy), f"--config={path}", "--v=1"]
        if name == "kubelet":
            config = {
                "apiVersion": "kubelet.config.k8s.io/v1beta1", "kind": "KubeletConfiguration",
                # cgroups are v1 + unified (hybrid) on the machines this runs on; kubelet >= 1.35
                # refuses v1 unless told otherwise.
                "failCgroupV1": False,
                "cgroupDriver": "cgroupfs",
                "failSwapOn": False,
                "address": NODE_IP, "port": free_port(), "readOnlyPort": 0,
                "healthzBindAddress": "127.0.0.1", "healthzPort": free_port(),
                "tlsCertFile": str(d / "pki" / "kubelet.crt"),
                "tlsPrivateKeyFile": str(d / "pki" / "kubelet.key"),
                "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": False},
                                   "x509": {"clientCAFile": str(pki / "ca.crt")}},
                "authorization": {"mode": "AlwaysAllow"},  # only the API server holds a client cert
                "containerRuntimeEndpoint": f"unix://{self.containerd_socket}",
                "podLogsDir": str(d / "pod-logs"),
                "resolvConf": "/etc/resolv.conf",
                # Mounted Secrets and ConfigMaps are refreshed on every sync: 10 s instead of the
                # default minute, so that rotation tests wait seconds, not minutes (documented).
                "syncFrequency": "10s",
                "evictionHard": {"memory.available": "100Mi", "nodefs.available": "1%",
                                 "imagefs.available": "1%", "nodefs.inodesFree": "1%"},
                "imageGCHighThresholdPercent": 100, "imageGCLowThresholdPercent": 99,
                "serializeImagePulls": False,
            }
            path = d / "kubelet.yaml"
            path.write_text(yaml.safe_dump(config))
            return [str(b.kubelet), f"--config={path}", kubeconfig, f"--root-dir={d / 'kubelet'}",
                    f"--hostname-override={NODE_NAME}", f"--node-ip={NODE_IP}", "--v=1"]
        raise ValueError(name)

    def _start(self, name: str) -> None:
        proc = self._procs[name] = ChildProcess(name, self._argv(name), self.dir / f"{name}.log")
        proc.start()

    def _stop(self, name: str) -> None:
        proc = self._procs.get(name)
        if proc:
            proc.stop()

    def _remove_pods(self, timeout: float = 60.0) -> None:
        """Delete every Pod and let the kubelet tear the sandboxes down (volumes, CNI, netns)."""
        self.cluster.kubectl("delete", "pods", "--all", "--all-namespaces", "--grace-period=1", "--wait=false",
                             check=False)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.ctr("tasks", "list", "-q", check=False, timeout=20)
            if out.returncode == 0 and not out.stdout.strip():
                return
            time.sleep(1)

    def _kill_containers(self) -> None:
        tasks = self.ctr("tasks", "list", "-q", check=False, timeout=20).stdout.split()
        for task in tasks:
            self.ctr("tasks", "kill", "--signal=SIGKILL", task, check=False, timeout=20)
        for task in tasks:
            self.ctr("tasks", "delete", "--force", task, check=False, timeout=20)

    def _kill_shims(self) -> None:
        """containerd's shims outlive it by design; end those that belong to this node's socket."""
        marker = str(self.containerd_socket)
        for pid_dir in Path("/proc").glob("[0-9]*"):
            try:
                argv = (pid_dir / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and argv[0].endswith(b"containerd-shim-runc-v2") and marker.encode() in b" ".join(argv):
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(int(pid_dir.name), 9)

    @staticmethod
    def _unmount_under(root: Path) -> None:
        prefix = str(root) + "/"
        mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines()]
        for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
            _run("umount", "-l", mount, check=False)


CAP_SYS_RESOURCE = 24


def _FORWARD_RULE(op: str) -> list[str]:  # noqa: N802 - a constant with an operation
    return [op, "FORWARD", "-i", BRIDGE, "!", "-o", BRIDGE, "-m", "comment", "--comment",
            "certpolicy-node: Pods reach only each other and the host", "-j", "DROP"]


def _has_capability(bit: int) -> bool:
    """Whether this process may use a capability (its bounding set, from /proc/self/status).

    Some sandboxes drop CAP_SYS_RESOURCE, without which no process may lower its oom_score_adj:
    the kubelet asks -998 for every Pod sandbox and runc fails ("failed to update
    /proc/self/oom_score_adj: Permission denied"). containerd's restrict_oom_score_adj (made for
    rootless containerd) then clamps the value to containerd's own instead.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("CapBnd:"):
            return bool(int(line.split()[1], 16) >> bit & 1)
    return True


def _ensure_bridge() -> None:
    if _run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    prefix = POD_CIDR.split("/")[1]
    if NODE_IP not in _run("ip", "-4", "addr", "show", BRIDGE).stdout:
        _run("ip", "addr", "add", f"{NODE_IP}/{prefix}", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")


def _remove_kube_chains() -> None:
    """Delete every KUBE-* chain and the jumps to them, in IPv4 and IPv6, in every table."""
    for tool in ("iptables", "ip6tables"):
        if not shutil.which(tool):
            continue
        for table in ("filter", "nat", "mangle"):
            rules = _run(tool, "-t", table, "-S", check=False).stdout.splitlines()
            for rule in rules:
                parts = rule.split()
                if parts[:1] == ["-A"] and not parts[1].startswith("KUBE-") and "KUBE-" in rule.split(" -j ")[-1]:
                    _run(tool, "-t", table, "-D", *parts[1:], check=False)
            chains = [r.split()[1] for r in rules if r.startswith("-N KUBE-")]
            for chain in chains:
                _run(tool, "-t", table, "-F", chain, check=False)
            for chain in chains:
                _run(tool, "-t", table, "-X", chain, check=False)


def _netns_names() -> list[str]:
    d = Path("/run/netns")
    return [p.name for p in d.iterdir()] if d.is_dir() else []


def _remove_cgroups(name: str) -> None:
    """rmdir the kubelet's (now empty) cgroup tree in every hierarchy, deepest first."""
    root = Path("/sys/fs/cgroup")
    for top in [root / name, *(p / name for p in root.iterdir() if p.is_dir())]:
        if not top.is_dir():
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: len(w[0]), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(dirpath)

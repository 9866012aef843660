"""Support for rotation tests: a recorder of every bundle and leaf write, and the invariant check.

The recorder watches ConfigMaps and Secrets in the test namespaces (raw JSON watch streams, one
per resource and namespace) and keeps every version it sees. etcd's resourceVersion is a single
global sequence, so replaying all recorded versions in resourceVersion order reconstructs the
cluster's history exactly, whichever stream delivered an event first.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from certpolicy.inventory.watch import ListWatcher
from certpolicy.kube.rawapi import RawClient
from certpolicy.pki.bundle import read_bundle
from certpolicy.pki.chain import verify_chain
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.pki.load import load_certificates


class _Recording:
    """A ListWatcher store that hands every version it sees to a callback (a relist included)."""

    def __init__(self, on_version):
        self.on_version = on_version
        self.known: set[str] = set()
        self.watcher: ListWatcher | None = None

    def replace(self, items):
        seen = set()
        for obj in items:
            seen.add(obj["metadata"]["name"])
            self.on_version("ADDED", obj)
        rv = self.watcher.resource_version if self.watcher else "0"  # the list's version, once consumed
        for name in self.known - seen:  # deleted while the watch was down
            self.on_version("DELETED", {"metadata": {"name": name, "resourceVersion": rv}})
        self.known = seen

    def upsert(self, obj):
        self.known.add(obj["metadata"]["name"])
        self.on_version("MODIFIED", obj)

    def delete(self, obj):
        self.known.discard(obj["metadata"]["name"])
        self.on_version("DELETED", obj)


def watch_versions(raw: RawClient, path: str, on_version, name: str) -> ListWatcher:
    """Every version of the objects under ``path``, through the operator's own list-then-watch:
    it survives an API server restart (re-watch from the last version) and 410 Gone (relist)."""
    store = _Recording(on_version)
    watcher = store.watcher = ListWatcher(raw, path, store, name=name, watch_timeout=60, backoff_max=1.0)
    watcher.start()
    if not watcher.synced.wait(10):
        raise AssertionError(f"watch of {path} did not sync")
    return watcher


@dataclass
class Recorder:
    raw: RawClient
    namespaces: list[str]
    bundle_name: str
    leaf_names: set[str]
    events: list[tuple[int, str, str, str, dict | None]] = field(default_factory=list)  # rv, kind, ns, name, obj
    _watchers: list[ListWatcher] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> Recorder:
        for ns in self.namespaces:
            for plural in ("configmaps", "secrets"):
                def record(etype, obj, ns=ns, plural=plural):
                    obj.setdefault("metadata", {}).setdefault("namespace", ns)
                    self._record(etype, obj, plural)
                self._watchers.append(watch_versions(self.raw, f"/api/v1/namespaces/{ns}/{plural}", record,
                                                     f"recorder-{ns}-{plural}"))
        return self

    def _record(self, etype: str, obj: dict, plural: str) -> None:
        meta = obj.get("metadata") or {}
        name = meta.get("name", "")
        kind = "ConfigMap" if plural == "configmaps" else "Secret"
        if (kind == "ConfigMap" and name != self.bundle_name) or (kind == "Secret" and name not in self.leaf_names):
            return
        with self._lock:
            self.events.append((int(meta.get("resourceVersion", "0")), kind, meta.get("namespace", ""), name,
                                None if etype == "DELETED" else obj))

    def stop(self) -> None:
        for w in self._watchers:
            w.stop()

    @property
    def relists(self) -> int:
        return sum(w.relists for w in self._watchers)

    def replay(self) -> Iterable[tuple[int, dict[tuple[str, str], dict | None], dict[tuple[str, str], dict | None]]]:
        """Yield (resourceVersion, bundles, leaves) after each recorded change, in global order."""
        bundles: dict[tuple[str, str], dict | None] = {}
        leaves: dict[tuple[str, str], dict | None] = {}
        with self._lock:
            ordered = sorted(set((rv, kind, ns, name) for rv, kind, ns, name, _ in self.events))
            by_key = {(rv, kind, ns, name): obj for rv, kind, ns, name, obj in self.events}
        for rv, kind, ns, name in ordered:
            (bundles if kind == "ConfigMap" else leaves)[(ns, name)] = by_key[(rv, kind, ns, name)]
            yield rv, dict(bundles), dict(leaves)


def bundle_fingerprints(cm: dict | None, key: str = "ca.crt") -> frozenset[str]:
    if cm is None:
        return frozenset()
    return read_bundle((cm.get("data") or {}).get(key, "")).fingerprint_set


def check_invariant(recorder: Recorder, targets: int, now: dt.datetime | None = None) -> tuple[int, list[str]]:
    """Every recorded instant: every leaf chains to a CA present in every bundle target.

    Returns (instants checked, violations). Instants before every target and leaf first exists
    are skipped (the operator is still creating them).
    """
    now = now or dt.datetime.now(dt.UTC)
    checked, violations = 0, []
    for rv, bundles, leaves in recorder.replay():
        present = [b for b in bundles.values() if b is not None]
        live = {k: v for k, v in leaves.items() if v is not None}  # a deleted leaf needs no trust
        if len(present) < targets or not live:
            continue
        common = frozenset.intersection(*(bundle_fingerprints(b) for b in present))
        anchors = [c for c in read_bundle((present[0].get("data") or {}).get("ca.crt", "")).certificates
                   if fingerprint(c) in common]
        checked += 1
        for (ns, name), secret in live.items():
            certs = load_certificates(base64.b64decode(secret["data"]["tls.crt"])).certificates
            result = verify_chain(certs[0], certs[1:], anchors, now) if anchors else None
            if result is None or not result.trusted:
                violations.append(f"rv {rv}: leaf {ns}/{name} does not chain to a CA in every bundle target")
    return checked, violations


class MTLSPair:
    """Two mTLS workloads (``mtls_workload.py`` processes) that handshake with each other every
    100 ms, each re-reading its leaf and bundle from the API with its own lag, out of phase.

    ``workloads`` is a list of (namespace, leaf Secret, lag, period, phase); the bundle is the
    ConfigMap ``configmap`` in the same namespace. The lag plus the period is the longest a
    workload holds stale content: keep it below the rotation's delays.
    """

    def __init__(self, workdir, configmap: str, workloads: list[tuple[str, str, float, float, float]],
                 kubeconfig=None):
        import os
        import subprocess
        import sys
        from pathlib import Path

        from certpolicy.localcluster.cluster import free_port

        here = Path(__file__).parent
        ports = [free_port() for _ in workloads]
        self.status_files = [Path(workdir) / f"mtls-{i}.json" for i in range(len(workloads))]
        self.procs = []
        for i, (ns, secret, lag, period, phase) in enumerate(workloads):
            self.procs.append(subprocess.Popen(
                [sys.executable, str(here / "mtls_workload.py"), "--namespace", ns, "--secret", secret,
                 "--configmap", configmap, "--listen", str(ports[i]), "--peer", str(ports[(i + 1) % len(ports)]),
                 "--lag", str(lag), "--period", str(period), "--phase", str(phase),
                 "--status", str(self.status_files[i])],
                env=dict(os.environ, **({"KUBECONFIG": str(kubeconfig)} if kubeconfig else {})),
                stdout=subprocess.DEVNULL, stderr=open(Path(workdir) / f"mtls-{i}.log", "ab")))  # noqa: SIM115

    def counts(self) -> list[dict]:
        import json

        out = []
        for f in self.status_files:
            try:
                out.append(json.loads(f.read_text()))
            except (OSError, ValueError):
                out.append({"ok": 0, "fail": 0, "errors": [], "loads": 0})
        return out

    def totals(self) -> tuple[int, int]:
        c = self.counts()
        return sum(x["ok"] for x in c), sum(x["fail"] for x in c)

    def stop(self) -> list[dict]:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except Exception:  # noqa: BLE001
                p.kill()
        return self.counts()

"""A full CA rotation at scale on the local control plane (issue #6's performance goals).

Trust bundles in N namespaces (default 100) and M managed leaves (default 200), zero propagation
delay, no probes, no issuance rate limit. Measures the time from the rotation request to
Completed (goal <= 30 s) and counts the API writes the rotation made, from watch events on the
bundle ConfigMaps and the leaf Secrets (goal: at most one write per target per step, i.e. two
bundle writes per target — add the new CA, remove the old — and one re-issue per leaf).

Usage: .venv/bin/python benchmarks/bench_rotation.py [--namespaces 100] [--leaves 200]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path

import kubernetes

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "operator"))

from certpolicy.kube.crd import install_crd  # noqa: E402
from certpolicy.kube.namespaces import ensure_namespace  # noqa: E402
from certpolicy.kube.rawapi import RawClient  # noqa: E402
from certpolicy.localcluster import LocalCluster  # noqa: E402
from certpolicy.localcluster.cluster import free_port  # noqa: E402

GROUP, VERSION, PLURAL = "certpolicy.io", "v1alpha1", "certificatepolicies"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--leaves", type=int, default=200)
    args = ap.parse_args()

    with LocalCluster() as cluster:
        install_crd(cluster.kubeconfig)
        api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
        core = kubernetes.client.CoreV1Api(api)
        custom = kubernetes.client.CustomObjectsApi(api)
        raw = RawClient(api)
        ensure_namespace(core, "certpolicy-system")
        namespaces = [f"rot-{i:03d}" for i in range(args.namespaces)]
        for ns in namespaces:
            ensure_namespace(core, ns, labels={"rotbench": "yes"})
        issuance = [{"secretName": f"leaf-{i}", "namespace": namespaces[i % len(namespaces)],
                     "dnsNames": [f"leaf-{i}.rot.bench"]} for i in range(args.leaves)]
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": "rotbench"},
            "spec": {
                "selector": {"namespaceSelector": {"matchLabels": {"rotbench": "yes"}}},
                "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
                "ca": {"secretName": "rotbench-ca"},
                "trustBundles": [{"configMap": {"name": "rotbench-ca"},
                                  "namespaceSelector": {"matchLabels": {"rotbench": "yes"}}}],
                "issuance": issuance,
                "issuanceLimits": {"perMinute": 100000},
                "rotation": {"propagationDelay": "0s"},
            }})
        env = dict(os.environ, KUBECONFIG=str(cluster.kubeconfig), CERTPOLICY_METRICS_PORT="-1")
        log = open(cluster.workdir / "bench-operator.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen([sys.executable, "-m", "certpolicy.cli", "run",
                                 f"--liveness=http://127.0.0.1:{free_port()}/healthz"], env=env, stdout=log, stderr=log)
        try:
            def status() -> dict:
                return custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "rotbench").get("status") or {}

            t0 = time.monotonic()
            while True:
                st = status()
                if ((st.get("issued") or {}).get("ready") == args.leaves
                        and (st.get("bundleTargets") or {}).get("verified") == args.namespaces):
                    break
                if proc.poll() is not None or time.monotonic() - t0 > 600:
                    raise SystemExit(f"set-up did not settle; see {log.name}")
                time.sleep(0.2)
            print(f"set-up: CA, {args.namespaces} bundle targets, {args.leaves} leaves in "
                  f"{time.monotonic() - t0:.1f}s", flush=True)

            writes: collections.Counter[str] = collections.Counter()
            stop = threading.Event()

            def count(plural: str, label: str) -> None:
                listing = raw.get(f"/api/v1/{plural}")
                for ev in raw.watch(f"/api/v1/{plural}", {"resourceVersion": listing["metadata"]["resourceVersion"],
                                                         "timeoutSeconds": 900}, timeout=(10, 960)):
                    if stop.is_set():
                        return
                    name = ev["object"]["metadata"]["name"]
                    if ev["type"] in ("ADDED", "MODIFIED") and name.startswith(label):
                        writes[f"{plural}:{ev['object']['metadata']['namespace']}/{name}"] += 1

            watchers = [threading.Thread(target=count, args=("configmaps", "rotbench-ca"), daemon=True),
                        threading.Thread(target=count, args=("secrets", "leaf-"), daemon=True)]
            for w in watchers:
                w.start()
            time.sleep(1)  # let both watches open before the request (they start from a listed version)
            start = time.monotonic()
            custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, "rotbench",
                                               {"metadata": {"annotations": {"certpolicy.io/rotate": "bench"}}})
            while True:
                rot = status().get("rotation") or {}
                hist = rot.get("history") or []
                if not rot.get("id") and hist and hist[0]["id"] == "bench":
                    break
                if proc.poll() is not None or time.monotonic() - start > 600:
                    raise SystemExit(f"rotation did not finish; see {log.name}")
                time.sleep(0.05)
            total = time.monotonic() - start
            time.sleep(1)
            stop.set()
            bundle_writes = [v for k, v in writes.items() if k.startswith("configmaps:")]
            leaf_writes = [v for k, v in writes.items() if k.startswith("secrets:")]
            print(f"rotation request -> Completed: {total:.1f}s "
                  f"({args.namespaces} bundle targets, {args.leaves} managed leaves)", flush=True)
            print(f"bundle writes: {sum(bundle_writes)} over {len(bundle_writes)} targets "
                  f"(max {max(bundle_writes, default=0)} per target; 2 = add new + remove old)", flush=True)
            print(f"leaf writes: {sum(leaf_writes)} over {len(leaf_writes)} leaves "
                  f"(max {max(leaf_writes, default=0)} per leaf)", flush=True)
            print(json.dumps({"namespaces": args.namespaces, "leaves": args.leaves, "rotation_s": round(total, 1),
                              "bundle_writes": sum(bundle_writes), "max_bundle_writes_per_target": max(bundle_writes, default=0),
                              "leaf_writes": sum(leaf_writes), "max_leaf_writes": max(leaf_writes, default=0),
                              "python": platform.python_version(), "cpus": os.cpu_count()}), flush=True)
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

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
import sys
import threading
import time

from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.kube.rawapi import RawClient
from scale import GROUP, PLURAL, REPO, VERSION, bench_cluster, start_operator, stop_operator

sys.path.insert(0, str(REPO / "tests" / "integration"))
from rotation_support import watch_versions  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--leaves", type=int, default=200)
    args = ap.parse_args()

    with bench_cluster() as bench:
        cluster, core, custom = bench.cluster, bench.core, bench.custom
        raw = RawClient(bench.api)
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
        log_path = cluster.workdir / "bench-operator.log"
        proc = start_operator(cluster.kubeconfig, log_path)
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
                    raise SystemExit(f"set-up did not settle; see {log_path}")
                time.sleep(0.2)
            print(f"set-up: CA, {args.namespaces} bundle targets, {args.leaves} leaves in "
                  f"{time.monotonic() - t0:.1f}s", flush=True)

            writes: collections.Counter[str] = collections.Counter()
            barrier = {"configmaps": threading.Event(), "secrets": threading.Event()}
            counting = threading.Event()

            def counter(plural: str, label: str):
                def seen(etype: str, obj: dict) -> None:
                    name = obj["metadata"]["name"]
                    if name == "bench-barrier":
                        barrier[plural].set()
                    elif counting.is_set() and etype != "DELETED" and name.startswith(label):
                        writes[f"{plural}:{obj['metadata'].get('namespace')}/{name}"] += 1
                return seen

            # The operator's own list-then-watch (it waits for the initial list, so no write is missed).
            watchers = [watch_versions(raw, "/api/v1/configmaps", counter("configmaps", "rotbench-ca"), "count-cm"),
                        watch_versions(raw, "/api/v1/secrets", counter("secrets", "leaf-"), "count-secrets")]
            counting.set()
            start = time.monotonic()
            custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, "rotbench",
                                               {"metadata": {"annotations": {"certpolicy.io/rotate": "bench"}}})
            while True:
                rot = status().get("rotation") or {}
                hist = rot.get("history") or []
                if not rot.get("id") and hist and hist[0]["id"] == "bench":
                    break
                if proc.poll() is not None or time.monotonic() - start > 600:
                    raise SystemExit(f"rotation did not finish; see {log_path}")
                time.sleep(0.05)
            total = time.monotonic() - start
            # Barrier: a watch delivers events in order, so once these two writes are seen, every
            # write the rotation made before them has been counted.
            core.create_namespaced_config_map(namespaces[0], {"metadata": {"name": "bench-barrier"}})
            core.create_namespaced_secret(namespaces[0], {"metadata": {"name": "bench-barrier"},
                                                          "type": "kubernetes.io/tls",
                                                          "data": {"tls.crt": "", "tls.key": ""}})
            for plural, event in barrier.items():
                if not event.wait(60):
                    raise SystemExit(f"the {plural} watch did not deliver the barrier")
            for w in watchers:
                w.stop()
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
            stop_operator(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())

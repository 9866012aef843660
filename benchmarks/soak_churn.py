"""Soak (issue #8): 10,000 TLS Secrets with steady churn; the operator's memory must stay flat.

Creates N Secrets across 100 namespaces and one policy selecting all of them, starts the operator
as a process, waits for the policy's status to be complete, then for ``--duration`` seconds
changes ``--rate`` Secrets a second: a certificate replaced by one lacking clientAuth or by a good
one again, or a Secret deleted and another created in its place. It samples the operator's RSS
every 15 s, and at the end waits until the status matches the cluster exactly (selected and
violating counts), so a lost update would show as well as a leak.

Usage: .venv/bin/python benchmarks/soak_churn.py [--secrets 10000] [--duration 300] [--rate 20]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import sys
import time

import kubernetes

from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.pki.issue import create_ca
from scale import GROUP, PLURAL, VERSION, TLSSecrets, bench_cluster, rss_mib, start_operator, stop_operator


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--secrets", type=int, default=10_000)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--duration", type=float, default=300.0, help="seconds of churn")
    ap.add_argument("--rate", type=float, default=20.0, help="changes per second")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    with bench_cluster() as bench:
        cluster, core, custom = bench.cluster, bench.core, bench.custom
        namespaces = [f"soak-{i:03d}" for i in range(args.namespaces)]
        for ns in namespaces:
            ensure_namespace(core, ns, labels={"soak": "yes"})
        ca = create_ca("soak CA")
        core.create_namespaced_config_map("certpolicy-system", kubernetes.client.V1ConfigMap(
            metadata=kubernetes.client.V1ObjectMeta(name="soak-ca"), data={"ca.crt": ca.cert_pem.decode()}))
        secrets = TLSSecrets(core, ca, namespaces)
        total = secrets.create(args.secrets)
        per_ns = total // len(namespaces)
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": "soak"},
            "spec": {"selector": {"namespaceSelector": {"matchLabels": {"soak": "yes"}}},
                     "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"],
                                      "trustBundle": {"configMap": {"namespace": "certpolicy-system",
                                                                    "name": "soak-ca"}}}}})

        def summary() -> dict:
            return (custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "soak").get("status") or {}
                    ).get("summary") or {}

        def wait(pred, timeout: float, what: str) -> None:
            deadline = time.monotonic() + timeout
            while not pred():
                if proc.poll() is not None:
                    raise SystemExit(f"operator exited {proc.returncode}")
                if time.monotonic() > deadline:
                    raise SystemExit(f"timed out waiting for {what}: {summary()}")
                time.sleep(0.2)

        proc = start_operator(cluster.kubeconfig, cluster.workdir / "soak-operator.log")
        try:
            wait(lambda: summary().get("selected") == total, 120, "the initial evaluation")
            time.sleep(5)  # let the first status writes and events settle before the baseline
            samples = [(0.0, rss_mib(proc.pid, "VmRSS"))]
            print(f"{total} Secrets evaluated; RSS {samples[0][1]:.0f} MiB; churning for {args.duration:.0f}s "
                  f"at {args.rate:.0f}/s", flush=True)
            where = {i: secrets.namespace_of(i, per_ns) for i in range(total)}  # live Secret -> namespace
            bad: set[int] = set()
            next_id = total
            ops = {"replaced": 0, "recreated": 0}
            start = time.monotonic()
            next_sample = 15.0
            n = 0
            while (elapsed := time.monotonic() - start) < args.duration:
                i = rng.choice(tuple(where))
                ns = where[i]
                if rng.random() < 0.75:  # a renewal: good -> lacking clientAuth -> good ...
                    to_bad = i not in bad
                    body = secrets.body(i, ("serverAuth",) if to_bad else ("serverAuth", "clientAuth"))
                    core.patch_namespaced_secret(f"tls-{i}", ns, {"data": body["data"]})
                    (bad.add if to_bad else bad.discard)(i)
                    ops["replaced"] += 1
                else:  # a workload goes away and another arrives in the same namespace
                    core.delete_namespaced_secret(f"tls-{i}", ns)
                    del where[i]
                    bad.discard(i)
                    core.create_namespaced_secret(ns, secrets.body(next_id))
                    where[next_id] = ns
                    next_id += 1
                    ops["recreated"] += 1
                n += 1
                if elapsed >= next_sample:
                    samples.append((round(elapsed), rss_mib(proc.pid, "VmRSS")))
                    print(f"t={elapsed:5.0f}s RSS {samples[-1][1]:.0f} MiB, {n} changes", flush=True)
                    next_sample += 15.0
                time.sleep(max(0.0, start + n / args.rate - time.monotonic()))
            wait(lambda: summary().get("selected") == len(where) and summary().get("violating") == len(bad), 120,
                 "the status to match the cluster after the churn")
            end_rss = rss_mib(proc.pid, "VmRSS")
            samples.append((round(time.monotonic() - start), end_rss))
            result = {
                "date": dt.date.today().isoformat(), "secrets": total, "duration_s": args.duration,
                "changes": n, **ops, "rss_start_mib": round(samples[0][1]), "rss_end_mib": round(end_rss),
                "rss_max_mib": round(max(r for _, r in samples)), "peak_hwm_mib": round(rss_mib(proc.pid)),
                "final_status": summary(), "expected": {"selected": len(where), "violating": len(bad)},
                "cpus": os.cpu_count(),
            }
            print(json.dumps(result), flush=True)
        finally:
            stop_operator(proc)
    return 0


if __name__ == "__main__":
    sys.exit(main())

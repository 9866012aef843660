"""Admission decisions with 10,000 Secrets in the inventory (issue 23's goals; not a timed test).

On a fresh local control plane: N kubernetes.io/tls Secrets (default 10,000) in 100 namespaces,
the CA in a trust bundle, one policy with ``enforcement: Deny`` requiring clientAuth and selecting
them all, the operator as a process (``certpolicy run``: it serves and registers the webhook).

* In process (goal p99 <= 5 ms): this process runs its own warm ``Inventory`` and policy index
  (the webhook's), then times ``Decider.secret`` on AdmissionReview requests for the UPDATE of a
  selected Secret: alternately a renewal that drops clientAuth (refused) and a compliant one
  (admitted). A decision parses the new object, evaluates old and new, compares the leaves.
* End to end (goal p99 <= 20 ms): server-side dry-run UPDATEs of selected Secrets through the API
  server, which calls the operator's webhook, the same alternation, once the operator's first pass
  has completed the policy's status; and the same writes with the policy at ``Audit`` (no webhook
  entry) as the baseline the webhook adds to.

Usage: .venv/bin/python benchmarks/bench_admission.py [--secrets 10000] [--decisions 2000] [--writes 400]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import kubernetes

from certpolicy.inventory.inventory import Inventory
from certpolicy.kube.rawapi import RawClient
from certpolicy.runcmd import tune_gc
from certpolicy.webhook.decide import Decider
from certpolicy.webhook.policies import PolicyIndex
from certpolicy.webhook.review import parse_review
from scale import (
    BENCH_CA_CONFIGMAP,
    GROUP,
    PLURAL,
    VERSION,
    bench_cluster,
    seed_tls_secrets,
    start_operator,
    stop_operator,
)

POLICY = "bench-deny"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


def summary(values_ms: list[float]) -> str:
    return (f"p50 {statistics.median(values_ms):.2f} ms, p99 {pct(values_ms, 99):.2f} ms, "
            f"max {max(values_ms):.2f} ms (n={len(values_ms)})")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--secrets", type=int, default=10_000)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--decisions", type=int, default=2000)
    ap.add_argument("--writes", type=int, default=400)
    args = ap.parse_args()

    with bench_cluster() as bench:
        core, custom = bench.core, bench.custom
        secrets, created = seed_tls_secrets(core, args.secrets, args.namespaces)
        per_ns = created // len(secrets.namespaces)
        policy = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": POLICY},
                  "spec": {"enforcement": "Deny",
                           "selector": {"namespaceSelector": {"matchLabels": {"bench": "yes"}}},
                           "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"],
                                            "trustBundle": {"configMap": BENCH_CA_CONFIGMAP}}}}
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, policy)

        def update(i: int, usages: tuple[str, ...]) -> dict:
            body = secrets.body(i, usages)
            body["metadata"]["namespace"] = secrets.namespace_of(i, per_ns)
            return body

        # ---- in process ---------------------------------------------------------------------------
        tune_gc()  # as certpolicy run does before its inventory lists
        inventory = Inventory(bench.api).start()
        index = PolicyIndex(RawClient(bench.api)).start()
        t0 = time.monotonic()
        while not (inventory.wait_synced(1) and index.synced and index.get(POLICY)):
            time.sleep(0.1)
        print(f"in-process inventory synced: {len(inventory.secrets)} TLS Secrets in {time.monotonic() - t0:.1f}s",
              flush=True)
        src = index.get(POLICY).bundle_source
        inventory.named[src.kind].acquire("bundle", [(src.namespace, src.name)])  # as the webhook's upkeep does
        decider = Decider(index, inventory)
        import json

        requests = []
        for n in range(args.decisions):
            i = (n * 7919) % created
            old = inventory.secret((secrets.namespace_of(i, per_ns), f"tls-{i}"))
            new = update(i, ("serverAuth",) if n % 2 == 0 else ("serverAuth", "clientAuth"))
            stored = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                      "metadata": {"name": old.name, "namespace": old.namespace,
                                   "resourceVersion": old.resource_version}, "data": {}}
            review = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                      "request": {"uid": str(uuid.uuid4()), "kind": {"group": "", "version": "v1", "kind": "Secret"},
                                  "namespace": old.namespace, "name": old.name, "operation": "UPDATE",
                                  "object": new, "oldObject": stored, "userInfo": {"username": "bench"}}}
            requests.append(json.dumps(review).encode())
        times, cpu, refused = [], [], 0
        for body in requests:
            start, start_cpu = time.perf_counter(), time.thread_time()
            verdict = decider.secret(POLICY, parse_review(body))
            cpu.append((time.thread_time() - start_cpu) * 1000)
            times.append((time.perf_counter() - start) * 1000)
            refused += not verdict.allowed
        print(f"in process ({len(inventory.secrets)} Secrets in the inventory; parse + decide, {refused} refused): "
              f"wall {summary(times)}; the thread's CPU time {summary(cpu)}", flush=True)
        inventory.stop()
        index.stop()

        # ---- end to end -----------------------------------------------------------------------------
        log = Path(tempfile.mkdtemp(prefix="bench-admission-")) / "operator.log"
        proc = start_operator(bench.cluster.kubeconfig, log)
        try:
            def dry_run(n: int) -> tuple[float, bool]:
                i = (n * 104729) % created
                body = update(i, ("serverAuth",) if n % 2 == 0 else ("serverAuth", "clientAuth"))
                start = time.perf_counter()
                try:
                    core.replace_namespaced_secret(body["metadata"]["name"], body["metadata"]["namespace"], body,
                                                   dry_run="All")
                    ok = True
                except kubernetes.client.ApiException as e:
                    if e.status != 403:
                        raise
                    ok = False
                return (time.perf_counter() - start) * 1000, ok

            deadline = time.monotonic() + 180
            while dry_run(0)[1]:  # until the webhook refuses: registered and answering
                if time.monotonic() > deadline:
                    print("the webhook never refused", flush=True)
                    return 1
                time.sleep(0.5)
            # Steady state: the operator's first pass (at 100,000 Secrets, ~45 s of both cores) has
            # finished, so these decisions measure the webhook, not the start-up they compete with.
            deadline = time.monotonic() + 600
            while ((custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, POLICY).get("status") or {})
                   .get("summary", {}).get("selected") != created):
                if time.monotonic() > deadline:
                    print("the policy's status never completed", flush=True)
                    return 1
                time.sleep(0.5)
            for n in range(20):
                dry_run(n)  # warm connections
            webhook = [dry_run(n) for n in range(args.writes)]
            custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, POLICY, {"spec": {"enforcement": "Audit"}})
            deadline = time.monotonic() + 60
            while not dry_run(0)[1]:
                if time.monotonic() > deadline:
                    print("the entry was never removed", flush=True)
                    return 1
                time.sleep(0.5)
            baseline = [dry_run(n)[0] for n in range(args.writes)]
        finally:
            stop_operator(proc)
        refused = sum(not ok for _, ok in webhook)
        print(f"end to end, dry-run UPDATE through the API server with the webhook ({refused} refused): "
              f"{summary([t for t, _ in webhook])}", flush=True)
        print(f"end to end, the same writes without a webhook entry (Audit): {summary(baseline)}", flush=True)
        print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}; {dt.datetime.now(dt.UTC):%Y-%m-%d}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

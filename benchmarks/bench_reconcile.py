"""Reconciliation at scale on the local control plane (issue #4's performance goals).

Creates N kubernetes.io/tls Secrets (distinct certificates, default 10,000) across 100
namespaces, a policy selecting all of them and one selecting a tenth, then starts the operator
as a separate process (``certpolicy run``) and measures:

* time from operator start to every policy's status being complete (goal <= 6 s),
* latency from a Secret update to its Warning event (p50/p95 over 20 updates of Secrets that only the
  policy selecting every Secret judges, the largest pass; goal p95 <= 1 s),
* the operator's peak RSS (goal <= 150 MiB), read from /proc/<pid>/status VmHWM,
* the operator's CPU seconds (user + system) over the updates, with the load average: what the
  passes those changes woke cost (one pass per change since the status write's echo wakes none),
* the ``Compliant`` ("now complies") events after the updates, which only ever make a Secret
  violate: each one would be false (a pass reporting an older record than one already judged).

and, with ``--why N``, how long ``kubectl certpolicy why NS/NAME`` takes for N Secrets (the plugin
run as a user runs it, a process of its own; goal ≤ 1 s at 100,000 Secrets).

``--scale-100k`` is issue 28's large mode: 100,000 Secrets in 1,000 namespaces, 20 ``why`` runs
(goals: start → complete ≤ 25 s, peak RSS ≤ 600 MiB, event p95 ≤ 1 s, ``why`` ≤ 1 s). Creating the
Secrets takes ~2.5 minutes and ~1 GiB of etcd on tmpfs: it is not part of ``make bench`` or CI; the
figures go to docs/benchmarks-cluster.md. ``--keep-log FILE`` keeps the operator's log (the control
plane's directory is removed at the end).

``--source DIR`` runs another tree's ``operator/`` directory instead of this one (an A/B
comparison against a baseline commit, e.g. ``git archive main | tar -x -C /tmp/base``).

Usage: .venv/bin/python benchmarks/bench_reconcile.py [--secrets 10000] [--namespaces 100] [--why 0] [--scale-100k]
       [--source DIR] [--gap SECONDS] [--keep-log FILE]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from certpolicy.pki.issue import issue_leaf
from scale import (
    BENCH_CA_CONFIGMAP,
    GROUP,
    PLURAL,
    VERSION,
    b64,
    bench_cluster,
    cpu_seconds,
    rss_mib,
    seed_tls_secrets,
    start_operator,
    stop_operator,
    wait_for_operator,
)


def why_seconds(kubeconfig, namespace: str, name: str) -> float:
    """One ``kubectl certpolicy why NS/NAME`` as a user runs it (the plugin's own process), in seconds."""
    t = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "certpolicy.plugin.cli", "why", f"{namespace}/{name}",
                           "--kubeconfig", str(kubeconfig)], capture_output=True, text=True, timeout=120)
    took = time.monotonic() - t
    if done.returncode != 0:
        raise SystemExit(f"why {namespace}/{name} exited {done.returncode}: {done.stderr[-500:]}")
    return took


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--secrets", type=int, default=10_000)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--updates", type=int, default=20)
    ap.add_argument("--why", type=int, default=0, metavar="N", help="time `kubectl certpolicy why` for N Secrets")
    ap.add_argument("--scale-100k", action="store_true", help="100,000 Secrets in 1,000 namespaces, --why 20")
    ap.add_argument("--gap", type=float, default=0.0, metavar="SECONDS",
                    help="pause after each update's event (0: the next update at once, so a pass the last "
                         "one woke, such as its status write's echo, may merge with the next one's)")
    ap.add_argument("--source", type=Path, default=None, metavar="DIR",
                    help="another tree's operator/ directory to run instead of this one (A/B)")
    ap.add_argument("--keep-log", type=Path, default=None, metavar="FILE",
                    help="copy the operator's log here at the end (the control plane's directory is removed)")
    args = ap.parse_args()
    if args.scale_100k:
        args.secrets, args.namespaces, args.why = 100_000, 1_000, max(args.why, 20)

    with bench_cluster() as bench:
        cluster, core, custom = bench.cluster, bench.core, bench.custom

        secrets, created = seed_tls_secrets(core, args.secrets, args.namespaces,
                                            lambda i: {"tenth": "yes" if i % 10 == 0 else "no"})
        ca, namespaces, per_ns = secrets.ca, secrets.namespaces, created // args.namespaces

        policies = {
            "bench-all": {"namespaceSelector": {"matchLabels": {"bench": "yes"}}},
            "bench-tenth": {"namespaceSelector": {"matchLabels": {"tenth": "yes"}}},
        }
        for name, selector in policies.items():
            custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
                "spec": {"selector": selector, "requirements": {
                    "extendedKeyUsages": ["serverAuth", "clientAuth"],
                    "trustBundle": {"configMap": BENCH_CA_CONFIGMAP}}}})
        expected = {"bench-all": created, "bench-tenth": sum(1 for i in range(created)
                                                             if (i // per_ns % args.namespaces) % 10 == 0)}

        log_path = cluster.workdir / "bench-operator.log"
        start = time.monotonic()
        proc = start_operator(cluster.kubeconfig, log_path, args.source)
        try:
            def complete() -> bool:
                for name, n in expected.items():
                    st = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name).get("status") or {}
                    if st.get("summary", {}).get("selected") != n:
                        return False
                return True

            to_complete = wait_for_operator(proc, log_path, complete, start, timeout=300, poll=0.05)
            print(f"operator start -> every policy status complete: {to_complete:.2f}s", flush=True)

            # Latency: replace a compliant certificate with one lacking clientAuth, wait for the event.
            latencies = []
            cpu_before, load_before = cpu_seconds(proc.pid), os.getloadavg()[0]
            for k in range(args.updates):
                i = k * (created // args.updates)
                if (i // per_ns % args.namespaces) % 10 == 0:
                    # Selected by bench-tenth too, whose pass over a tenth of the Secrets would post
                    # the event first: time the Secrets only the policy selecting all of them judges.
                    i += per_ns
                ns = namespaces[i // per_ns % args.namespaces]
                bad = issue_leaf(ca, dns_names=[f"svc-{i}.bench.example.com"], usages=["serverAuth"], key=secrets.key)
                t = time.monotonic()
                core.patch_namespaced_secret(f"tls-{i}", ns, {"data": {"tls.crt": b64(bad.cert_pem)}})
                while True:
                    evs = core.list_namespaced_event(ns, field_selector=f"involvedObject.name=tls-{i}").items
                    if any(e.reason == "MissingClientAuth" for e in evs):
                        break
                    if time.monotonic() - t > 30:
                        raise SystemExit(f"no event for tls-{i} after 30s")
                    time.sleep(0.01)
                latencies.append(time.monotonic() - t)
                time.sleep(args.gap)  # independent changes, as a cluster's are: not a wait for a state
            updates_cpu = cpu_seconds(proc.pid) - cpu_before  # the gaps included: what the changes cost in all
            # Every update only ever made a Secret violate: a "now complies" event would be false (a
            # pass reporting a record older than the one already judged).
            false_compliant = len(core.list_event_for_all_namespaces(field_selector="reason=Compliant").items)
            latencies.sort()
            p50 = statistics.median(latencies)
            p95 = latencies[max(0, int(round(0.95 * len(latencies))) - 1)]
            whys = [why_seconds(cluster.kubeconfig, namespaces[i // per_ns % args.namespaces], f"tls-{i}")
                    for i in range(0, created, max(1, created // args.why))][:args.why] if args.why else []
            if whys:
                print(f"kubectl certpolicy why NS/NAME: median {statistics.median(whys):.2f} s, max {max(whys):.2f} s "
                      f"(n={len(whys)}, a process each)", flush=True)
            peak = rss_mib(proc.pid)
            print(f"secret update -> Warning event: p50 {p50 * 1000:.0f} ms, p95 {p95 * 1000:.0f} ms "
                  f"(n={len(latencies)}, includes the 10 ms polling of this benchmark)", flush=True)
            print(f"operator peak RSS (VmHWM): {peak:.0f} MiB", flush=True)
            print(f"false 'now complies' events: {false_compliant}", flush=True)
            print(f"operator CPU over the {len(latencies)} updates ({args.gap:g} s apart): {updates_cpu:.2f} s "
                  f"(load average {load_before:.1f} at their start)", flush=True)
            result = {
                "date": dt.date.today().isoformat(), "secrets": created, "namespaces": len(namespaces),
                "start_to_complete_s": round(to_complete, 2), "event_latency_p50_ms": round(p50 * 1000),
                "event_latency_p95_ms": round(p95 * 1000), "peak_rss_mib": round(peak),
                "updates_cpu_s": round(updates_cpu, 2), "updates_load_average": round(load_before, 2),
                "gap_s": args.gap, "false_compliant_events": false_compliant,
                "python": platform.python_version(), "cpus": os.cpu_count(), "load_average": os.getloadavg()[0],
                **({"why_median_s": round(statistics.median(whys), 2), "why_max_s": round(max(whys), 2)} if whys else {}),
            }
            print(json.dumps(result), flush=True)
        finally:
            stop_operator(proc)
            if args.keep_log is not None:
                shutil.copyfile(log_path, args.keep_log)
    return 0


if __name__ == "__main__":
    sys.exit(main())

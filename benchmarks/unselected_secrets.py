"""Unselected Secrets cost no memory (issue 14): the operator's peak RSS with N TLS Secrets, then
with M unselected Opaque Secrets of S KiB each added (Helm release Secrets reach 1 MiB).

Only Secrets matched server-side are held: the cluster-wide watch is of ``kubernetes.io/tls``
Secrets, and a policy with a ``secretSelector`` adds a watch of Secrets of any type *with those
labels*. The Opaque Secrets here carry other labels, so their bodies must never reach the
operator. Goal: peak RSS with them <= 1.10 x peak RSS without them.

One control plane (``scale.bench_cluster``); the TLS Secrets and the policy (namespaceSelector
plus secretSelector ``app=bench``, so the label-selected watch of any type is in play) are created
first; the operator is started as its own process, runs until every policy's status is complete
and ``--settle`` seconds more, and its VmHWM is read; then the Opaque Secrets are added and a
fresh operator process does the same. If creating the Opaque Secrets takes longer than
``--budget`` seconds, creation stops and the figures are for the number created (printed).

Usage: .venv/bin/python benchmarks/unselected_secrets.py [--secrets 10000] [--opaque 10000] [--kib 100]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import json
import os
import platform
import sys
import time

from scale import (
    BENCH_CA_CONFIGMAP,
    GROUP,
    PLURAL,
    VERSION,
    b64,
    bench_cluster,
    rss_mib,
    seed_tls_secrets,
    start_operator,
    stop_operator,
    wait_for_operator,
)


def operator_peak(bench, expected: int, settle: float, tag: str) -> tuple[float, float]:
    """(seconds to a complete status, peak RSS MiB) of a fresh operator process."""
    log_path = bench.cluster.workdir / f"bench-unselected-{tag}.log"
    start = time.monotonic()
    proc = start_operator(bench.cluster.kubeconfig, log_path)
    try:
        def complete() -> bool:
            st = bench.custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "bench-all").get("status") or {}
            return st.get("summary", {}).get("selected") == expected and not _stale(bench, start)

        took = wait_for_operator(proc, log_path, complete, start, timeout=600, poll=0.2)
        time.sleep(settle)
        return took, rss_mib(proc.pid)
    finally:
        stop_operator(proc)


def _stale(bench, start_monotonic: float) -> bool:
    """The status was written by an earlier operator run (its evaluation time predates this one)."""
    st = bench.custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "bench-all").get("status") or {}
    when = st.get("lastEvaluationTime")
    if not when:
        return False
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=time.monotonic() - start_monotonic)
    return dt.datetime.fromisoformat(when.replace("Z", "+00:00")) < started


def create_opaque(core, namespaces: list[str], count: int, kib: int, budget: float, threads: int = 8) -> int:
    """``count`` Opaque Secrets of ``kib`` KiB of random data, labelled so no policy selects them;
    stops after ``budget`` seconds. Returns how many were created."""
    payload = b64(os.urandom(kib * 1024))
    deadline = time.monotonic() + budget

    def make(i: int) -> bool:
        if time.monotonic() > deadline:
            return False
        core.create_namespaced_secret(namespaces[i % len(namespaces)], {
            "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": f"release-{i}", "labels": {"owner": "helm", "app": "not-bench"}},
            "data": {"release": payload}})
        return True

    with cf.ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(make, range(count)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--secrets", type=int, default=10_000)
    ap.add_argument("--opaque", type=int, default=10_000)
    ap.add_argument("--kib", type=int, default=100)
    ap.add_argument("--namespaces", type=int, default=100)
    ap.add_argument("--settle", type=float, default=10.0, help="seconds the operator runs after a complete status")
    ap.add_argument("--budget", type=float, default=900.0, help="seconds allowed for creating the Opaque Secrets")
    args = ap.parse_args()

    with bench_cluster() as bench:
        core = bench.core
        tls, created = seed_tls_secrets(core, args.secrets, args.namespaces)
        namespaces = tls.namespaces
        bench.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": "bench-all"},
            "spec": {"selector": {"namespaceSelector": {"matchLabels": {"bench": "yes"}},
                                  "secretSelector": {"matchLabels": {"app": "bench"}}},
                     "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"],
                                      "trustBundle": {"configMap": BENCH_CA_CONFIGMAP}}}})

        took_a, peak_a = operator_peak(bench, created, args.settle, "tls-only")
        print(f"A: {created} TLS Secrets: status complete in {took_a:.1f}s, peak RSS {peak_a:.1f} MiB", flush=True)

        t0 = time.monotonic()
        opaque = create_opaque(core, namespaces, args.opaque, args.kib, args.budget)
        print(f"created {opaque} unselected Opaque Secrets of {args.kib} KiB ({opaque * args.kib / 1024:.0f} MiB) "
              f"in {time.monotonic() - t0:.0f}s", flush=True)

        took_b, peak_b = operator_peak(bench, created, args.settle, "with-opaque")
        ratio = peak_b / peak_a
        print(f"B: + {opaque} Opaque Secrets: status complete in {took_b:.1f}s, peak RSS {peak_b:.1f} MiB "
              f"({(ratio - 1) * 100:+.1f}%; goal <= +10%)", flush=True)
        print(json.dumps({
            "date": dt.date.today().isoformat(), "tls_secrets": created, "opaque_secrets": opaque,
            "opaque_kib": args.kib, "peak_rss_tls_only_mib": round(peak_a, 1), "peak_rss_with_opaque_mib": round(peak_b, 1),
            "ratio": round(ratio, 3), "complete_s": [round(took_a, 1), round(took_b, 1)],
            "python": platform.python_version(), "cpus": os.cpu_count()}), flush=True)
        return 0 if ratio <= 1.10 else 1


if __name__ == "__main__":
    sys.exit(main())

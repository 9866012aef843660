"""Operator start-up on a small cluster, paired against a baseline tree (issue 28: 500 Secrets ≤ 0.6 s).

One local control plane with N ``kubernetes.io/tls`` Secrets (default 500, in 10 namespaces) and
one policy selecting them all. Then, R times, the operator (``certpolicy run``, leader election on,
as shipped) is started from this tree and, when ``--baseline DIR`` names another tree's
``operator/`` directory, from that one too, alternately (A B A B ...): each run clears the
policy's status while no operator runs, starts the process, and times process start → the status
complete (``summary.selected`` = N), polling every 10 ms. The ratio is taken pair by pair, so a
comparison holds while the machine's speed drifts; the load average is printed with each pair
(the development machine is shared).

Besides the wall time, each run's log gives the instant the Lease was taken (``became the
leader``) relative to the process start, which the start-up order decides, and ``/proc`` the CPU
seconds the operator had used when its status was complete: close to the wall time means the
start is CPU-bound (it was, at 500 Secrets: 0.63 s of CPU in 0.68 s), so only less work helps.

With ``--enforcement Deny`` the policy enforces, and each run also times process start → the
first write the webhook refuses (a server-side dry run of a Secret without clientAuth, tried every
10 ms alongside the status poll): how soon after a restart admission is back.

Usage: .venv/bin/python benchmarks/bench_startup.py [--secrets 500] [--rounds 5] [--baseline /tmp/base/operator]
[--tree /tmp/other/operator] [--enforcement Deny]
(a baseline tree: ``git archive main operator | tar -x -C /tmp/base``).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

import kubernetes

from scale import (
    GROUP,
    PLURAL,
    VERSION,
    bench_cluster,
    cpu_seconds,
    rss_mib,
    seed_tls_secrets,
    start_operator,
    stop_operator,
    wait_for_operator,
)

_STAMP = re.compile(rb"^\[(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3})\].*became the leader", re.M)


def _leader_at(log: bytes, started_wall: float) -> float | None:
    """Seconds from the process start to its 'became the leader' line (kopf's log time stamps are
    local time with milliseconds)."""
    m = _STAMP.search(log)
    if m is None:
        return None
    stamp = time.mktime(time.strptime(m.group(1)[:19].decode(), "%Y-%m-%d %H:%M:%S")) + int(m.group(1)[20:]) / 1000
    return stamp - started_wall


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--secrets", type=int, default=500)
    ap.add_argument("--namespaces", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--baseline", type=Path, default=None, help="another tree's operator/ directory to pair against")
    ap.add_argument("--tree", type=Path, default=None,
                    help="run this operator/ directory as 'this' instead of the installed one (to pair two old trees)")
    ap.add_argument("--enforcement", choices=("Audit", "Deny"), default="Audit",
                    help="the policy's spec.enforcement; with Deny each run also times the first refused write "
                         "(a server-side dry run of a Secret without clientAuth, every 10 ms)")
    args = ap.parse_args()

    with bench_cluster() as bench:
        cluster, core, custom = bench.cluster, bench.core, bench.custom
        secrets, created = seed_tls_secrets(core, args.secrets, args.namespaces)
        name = "bench-startup"
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": name},
            "spec": {"enforcement": args.enforcement,
                     "selector": {"namespaceSelector": {"matchLabels": {"bench": "yes"}}},
                     "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"],
                                      "trustBundle": {"configMap": {"namespace": "certpolicy-system",
                                                                    "name": "bench-ca"}}}}})
        violating = secrets.body(args.secrets, usages=("serverAuth",))

        def refused() -> bool:
            try:
                core.create_namespaced_secret(secrets.namespaces[0], violating, dry_run="All")
            except kubernetes.client.ApiException as e:
                return e.status == 403 and name in (e.body or "")
            return False

        def once(label: str, source: Path | None, k: int) -> tuple[float, float | None, float, float, float | None]:
            custom.patch_cluster_custom_object_status(GROUP, VERSION, PLURAL, name, {"status": None})
            log_path = cluster.workdir / f"startup-{label}-{k}.log"
            wall, start = time.time(), time.monotonic()
            proc = start_operator(cluster.kubeconfig, log_path, source)
            refusing: list[float] = []
            try:
                def complete() -> bool:
                    if args.enforcement == "Deny" and not refusing and refused():
                        refusing.append(time.monotonic() - start)
                    st = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, name).get("status") or {}
                    return (st.get("summary") or {}).get("selected") == created

                took = wait_for_operator(proc, log_path, complete, start, timeout=120, poll=0.01)
                cpu = cpu_seconds(proc.pid)  # near the wall time: the start is CPU-bound, only less work helps
                peak = rss_mib(proc.pid)
                if args.enforcement == "Deny" and not refusing:
                    wait_for_operator(proc, log_path, refused, start, timeout=120, poll=0.01)
                    refusing.append(time.monotonic() - start)
            finally:
                stop_operator(proc)
            return took, _leader_at(log_path.read_bytes(), wall), peak, cpu, (refusing or [None])[0]

        this = args.tree.resolve() if args.tree else None
        sides = [("this", this)] + ([("baseline", args.baseline.resolve())] if args.baseline else [])
        once("warm-up", this, 0)  # the first start also compiles bytecode and fills the page cache
        if args.baseline:
            once("warm-up-baseline", args.baseline.resolve(), 0)
        results: dict[str, list[tuple[float, float | None, float, float, float | None]]] = {
            label: [] for label, _ in sides}
        for k in range(args.rounds):
            row = []
            for label, source in sides:
                r = once(label, source, k)
                results[label].append(r)
                lead = f"{r[1]:.2f} s" if r[1] is not None else "?"
                refusal = f", refusing at {r[4]:.2f} s" if r[4] is not None else ""
                row.append(f"{label} {r[0]:.2f} s (Lease at {lead}{refusal}, CPU {r[3]:.2f} s, {r[2]:.0f} MiB)")
            ratio = f"  ratio {results['this'][-1][0] / results['baseline'][-1][0]:.2f}" if args.baseline else ""
            print(f"round {k + 1}: " + ", ".join(row) + ratio + f"  [load {os.getloadavg()[0]:.1f}]", flush=True)
        for label, rs in results.items():
            leads = [r[1] for r in rs if r[1] is not None]
            print(f"{label}: start -> complete median {statistics.median(r[0] for r in rs):.2f} s "
                  f"(min {min(r[0] for r in rs):.2f}, max {max(r[0] for r in rs):.2f}); Lease taken median "
                  f"{statistics.median(leads) if leads else float('nan'):.2f} s; CPU until complete median "
                  f"{statistics.median(r[3] for r in rs):.2f} s; peak RSS median "
                  f"{statistics.median(r[2] for r in rs):.0f} MiB"
                  + (f"; first refused write median {statistics.median(r[4] for r in rs if r[4] is not None):.2f} s"
                     if args.enforcement == "Deny" else ""), flush=True)
        if args.baseline:
            ratios = [a[0] / b[0] for a, b in zip(results["this"], results["baseline"], strict=True)]
            print(f"ratio this/baseline, pair by pair: median {statistics.median(ratios):.2f} "
                  f"(min {min(ratios):.2f}, max {max(ratios):.2f}) over {len(ratios)} pairs", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

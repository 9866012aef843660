"""``kubectl certpolicy why`` at scale (issue #26 item 5): wall time and peak RSS of one ``why``
with N TLS Secrets in the cluster, for one or more source trees of the plugin (before/after).

One control plane (``scale.bench_cluster``) seeded by ``scale.seed_tls_secrets`` (N Secrets with
``app=bench`` over ``--namespaces`` namespaces labelled ``bench=yes``) and one policy selecting
them all by labels, its trust bundle the ``bench-ca`` ConfigMap. No operator runs: ``why`` needs
none. Each tree's plugin (``--src NAME=DIR``, DIR holding the ``certpolicy`` package, e.g. a
``git archive main operator`` extract) runs ``why bench-000/tls-0 -o json`` ``--runs`` times as
its own process; wall time (including the interpreter's start) and peak RSS (``wait4``'s ru_maxrss,
measured from a small intermediate process) per run; the documents must agree (minus
``evaluatedAt``).

Usage: .venv/bin/python benchmarks/plugin_why.py --src before=/tmp/before/operator \
           --src after=operator [--secrets 10000] [--namespaces 20] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

from scale import BENCH_CA_CONFIGMAP, GROUP, PLURAL, VERSION, bench_cluster, seed_tls_secrets

#: Runs argv[1:] as its child and prints that child's wait4 rusage ru_maxrss (KiB) on stderr's last
#: line. The measured process must be forked from this small one: a child's ru_maxrss starts from
#: the high-water mark of the process it was forked from (exec keeps it), and the benchmark itself
#: holds the seeded Secrets.
_MEASURE = ("import os, subprocess, sys\n"
            "p = subprocess.Popen(sys.argv[1:], close_fds=True)\n"
            "_pid, status, usage = os.wait4(p.pid, 0)\n"
            "p.returncode = os.waitstatus_to_exitcode(status)\n"
            "print(f'maxrss-kib {usage.ru_maxrss}', file=sys.stderr)\n"
            "sys.exit(p.returncode)\n")


def run_once(src: Path, kubeconfig: Path, target: str) -> tuple[float, float, dict]:
    """(seconds, peak RSS MiB, the JSON document) of one `why` in its own process."""
    env = dict(os.environ, PYTHONPATH=str(src.resolve()))
    argv = [sys.executable, "-c", _MEASURE, sys.executable, "-c",
            "import sys; from certpolicy.plugin.cli import main; sys.exit(main())",
            "why", target, "-o", "json", "--kubeconfig", str(kubeconfig)]
    start = time.monotonic()
    proc = subprocess.run(argv, env=env, capture_output=True, timeout=900)
    took = time.monotonic() - start
    err = proc.stderr.decode()
    if proc.returncode != 0:
        raise SystemExit(f"{src}: why exited {proc.returncode}: {err[-2000:]}")
    rss = int(err.strip().splitlines()[-1].split()[1]) / 1024
    doc = json.loads(proc.stdout)
    doc.pop("evaluatedAt", None)
    return took, rss, doc


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", action="append", required=True, metavar="NAME=DIR")
    ap.add_argument("--secrets", type=int, default=10_000)
    ap.add_argument("--namespaces", type=int, default=20)
    ap.add_argument("--runs", type=int, default=3)
    opts = ap.parse_args()
    trees = dict(s.split("=", 1) for s in opts.src)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}", flush=True)
    with bench_cluster() as bench:
        _secrets, created = seed_tls_secrets(bench.core, opts.secrets, opts.namespaces)
        bench.custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": "bench-all"},
            "spec": {"selector": {"namespaceSelector": {"matchLabels": {"bench": "yes"}},
                                  "secretSelector": {"matchLabels": {"app": "bench"}}},
                     "requirements": {"trustBundle": {"configMap": dict(BENCH_CA_CONFIGMAP)}}}})
        docs = {}
        for name, src in trees.items():
            times, peaks = [], []
            for _ in range(opts.runs):
                took, rss, doc = run_once(Path(src), bench.cluster.kubeconfig, "bench-000/tls-0")
                times.append(took)
                peaks.append(rss)
                docs[name] = doc
            print(f"{name}: why with {created} TLS Secrets: wall best {min(times):.2f} s, median "
                  f"{statistics.median(times):.2f} s; peak RSS {max(peaks):.0f} MiB (runs: "
                  f"{', '.join(f'{t:.2f}' for t in times)} s), load {os.getloadavg()[0]:.1f}", flush=True)
        first = next(iter(docs.values()))
        for name, doc in docs.items():
            assert doc == first, f"{name} answers differently: {json.dumps(doc)[:2000]}"
        (secret,) = first["secrets"]
        assert [p["name"] for p in secret["policies"]] == ["bench-all"] and secret["policies"][0]["compliant"], secret
        print("all trees give the same document", flush=True)


if __name__ == "__main__":
    main()

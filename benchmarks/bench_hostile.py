"""Evaluation time per hostile Secret (issue #8): bad input must cost a bounded time, not a stall.

Each shape of tests/hostile.py (garbage, DER in a PEM field, truncated PEM, a 1 MiB tls.crt, a
chain of 500 certificates, a self-loop, two cross-signed CAs, key mismatch, non-UTF-8, empty
values) is loaded and evaluated from its raw Secret data with every engine cache cleared first,
as for a Secret the operator has never seen; best and worst of ``--rounds`` are printed per shape,
with a well-formed Secret for reference.

Usage: .venv/bin/python benchmarks/bench_hostile.py [--rounds 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "operator"), str(REPO / "tests")]

import certgen  # noqa: E402
from certpolicy.pki import cache, secretdata  # noqa: E402
from certpolicy.pki.chain import TrustAnchors  # noqa: E402
from certpolicy.policy import evaluate as policy_evaluate  # noqa: E402
from certpolicy.policy.spec import requirements_from_spec  # noqa: E402
from hostile import hostile_secrets  # noqa: E402


def cold() -> None:
    cache.clear_all()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    ca = certgen.root("bench hostile CA")
    shapes = hostile_secrets(ca)
    cases = {"(well-formed, for reference)": certgen.tls_secret(shapes.good)["data"], **shapes.data}
    req = requirements_from_spec({"extendedKeyUsages": ["serverAuth", "clientAuth"], "requirePrivateKey": True})
    anchors = TrustAnchors.of([ca.cert])
    now = dt.datetime.now(dt.UTC)
    results = {}
    print(f"{'shape':32} {'best ms':>9} {'worst ms':>9}  reasons")
    for name, data in cases.items():
        times = []
        for _ in range(args.rounds):
            cold()
            t = time.perf_counter()
            material = secretdata.material_from_secret("kubernetes.io/tls", data)
            ev = policy_evaluate.evaluate(req, material, anchors, now)
            times.append((time.perf_counter() - t) * 1000)
        reasons = ",".join(ev.reasons[:3]) or "-"
        results[name] = {"best_ms": round(min(times), 2), "worst_ms": round(max(times), 2), "reasons": list(ev.reasons)}
        print(f"{name:32} {min(times):9.2f} {max(times):9.2f}  {reasons}")
    worst = max(v["worst_ms"] for k, v in results.items() if not k.startswith("("))
    print(json.dumps({"date": dt.date.today().isoformat(), "worst_ms_any_hostile_shape": worst, "cpus": os.cpu_count(),
                      "shapes": results}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Memory the engine holds per Secret (issue #28): tracemalloc, deterministic whatever the load.

2,000 distinct P-256 leaves under one intermediate (a fixed JSON input, built once and reused so
that base and candidate trees read the same bytes), each read with ``material_from_secret`` and checked with
``Evaluator.evaluate``; the materials and evaluations are kept as the inventory keeps them, with
every engine cache. Printed: Python-heap bytes per Secret (tracemalloc; cryptography's Rust-side
allocations are not traced by it) and the process's resident-set growth per Secret (both sides,
but page-granular and allocator-dependent: a cross-check, not the figure).

Usage: .venv/bin/python benchmarks/memory_engine.py [--secrets 2000] [--tree .]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def make(path: Path, n: int) -> None:
    """The fixed input: ``n`` P-256 Secrets under one intermediate, the bundle and the instant."""
    import base64
    import json

    sys.path.insert(0, str(REPO / "operator"))
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "benchmarks"))
    from cryptography.hazmat.primitives.serialization import Encoding

    import certgen
    from bench_engine import build

    now = certgen.utcnow()
    secrets, bundle = build("p256", n, False, now)
    path.write_text(json.dumps({"now": now.isoformat(), "secrets": secrets,
                                "bundle": [base64.b64encode(c.public_bytes(Encoding.PEM)).decode() for c in bundle]}))


def measure(path: Path, tree: Path) -> None:
    import base64
    import datetime as dt
    import json

    sys.path.insert(0, str(tree / "operator"))
    from cryptography import x509

    from certpolicy.pki.publicroots import default_public_roots
    from certpolicy.pki.secretdata import material_from_secret
    from certpolicy.policy.evaluate import Evaluator
    from certpolicy.policy.spec import requirements_from_spec

    doc = json.loads(path.read_text())
    now = dt.datetime.fromisoformat(doc["now"])
    secrets = doc["secrets"]
    bundle = tuple(x509.load_pem_x509_certificate(base64.b64decode(b)) for b in doc["bundle"])
    req = requirements_from_spec({
        "extendedKeyUsages": ["serverAuth", "clientAuth"], "allowedDNSNames": ["*.uat.example.com"],
        "requiredDNSNames": [], "expiry": {"warningBefore": "720h", "criticalBefore": "168h"},
        "minimumRSABits": 2048, "requirePrivateKey": True,
    })
    default_public_roots()
    evaluator = Evaluator(workers=1)
    # Warm: imports, the intermediate's and the bundle's summaries, the verifier.
    evaluator.evaluate(req, material_from_secret(secrets[0]["type"], secrets[0]["data"]), bundle, now)
    gc.collect()
    tracemalloc.start()
    before, rss_before = tracemalloc.take_snapshot(), rss_kib()
    held = []
    for s in secrets[1:]:
        m = material_from_secret(s["type"], s["data"])
        held.append((m, evaluator.evaluate(req, m, bundle, now)))
    gc.collect()
    after, rss_after = tracemalloc.take_snapshot(), rss_kib()
    n = len(held)
    total = sum(d.size_diff for d in after.compare_to(before, "filename"))
    print(f"{n} Secrets held: {total / n:,.0f} B per Secret (tracemalloc), RSS +{(rss_after - rss_before) * 1024 / n:,.0f} B per Secret")
    for d in after.compare_to(before, "lineno")[:8]:
        print(f"  {d.size_diff / n:8,.0f} B  {d.traceback}")


def main() -> None:
    import subprocess

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--secrets", type=int, default=2000)
    ap.add_argument("--input", type=Path, default=Path("/tmp/engine-memory-input.json"))
    ap.add_argument("--tree", type=Path, default=REPO)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        measure(args.input, args.tree)
        return
    if not args.input.exists():
        make(args.input, args.secrets)
    # A fresh process, so that only ``--tree``'s engine is imported.
    subprocess.run([sys.executable, __file__, "--one", "--input", str(args.input), "--tree", str(args.tree)], check=True)


if __name__ == "__main__":
    main()

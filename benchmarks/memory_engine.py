"""Memory the engine holds per Secret (issue #28): tracemalloc, deterministic whatever the load.

2,000 distinct P-256 leaves under one intermediate (a fixed JSON input, built once and reused so
that base and candidate trees read the same bytes), each read with ``material_from_secret`` and checked with
``Evaluator.evaluate``; the materials and evaluations are kept as the inventory keeps them, with
every engine cache. Printed: Python-heap bytes per Secret (tracemalloc; cryptography's Rust-side
allocations are not traced by it) and the process's resident-set growth per Secret (both sides,
but page-granular and allocator-dependent: a cross-check, not the figure).

Then the renewal baselines a policy holds for the same Secrets (``kube/baselines.py``): as its
first pass puts them, and as a restarted operator holds them after reading every stored entry.

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
    default_public_roots().parse()  # loaded and parsed here, not in a measured evaluation
    evaluator = Evaluator()
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
    baselines(held, tree)


def baselines(held: list, tree: Path) -> None:
    """The renewal guard's baselines a policy holds, one per Secret: as its first pass puts them
    (unsaved), and as a later process holds them once it has read every stored entry."""
    import json

    from certpolicy.kube.baselines import BaselineShards, _Shard, entry_key, shard_of
    from certpolicy.kube.ownership import Owner
    from certpolicy.policy.renewal import baseline_of

    owner, n = Owner("bench", "uid"), len(held)
    keys = [("bench-000", f"tls-{i}") for i in range(n)]
    gc.collect()
    start = tracemalloc.get_traced_memory()[0]
    store = BaselineShards(owner, "certpolicy-system")
    for (ns, name), (m, ev) in zip(keys, held):
        store.put(ns, name, baseline_of(m.leaf, ev.anchor_fingerprint))
    gc.collect()
    put = tracemalloc.get_traced_memory()[0] - start
    stored = json.dumps({entry_key(ns, name): store.get(ns, name).to_compact() for ns, name in keys})
    del store
    gc.collect()
    start = tracemalloc.get_traced_memory()[0]
    again = BaselineShards(owner, "certpolicy-system")
    for key, text in json.loads(stored).items():  # as a list of the shards returns them
        ns, name = key.split(".", 1)
        again.shards.setdefault(shard_of(ns, name), _Shard("1", {})).entries[key] = text
    for ns, name in keys:
        again.get(ns, name)
    gc.collect()
    read = tracemalloc.get_traced_memory()[0] - start
    print(f"renewal baselines held: {put / n:,.0f} B per Secret as a first pass puts them, "
          f"{read / n:,.0f} B once every stored entry was read")


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

"""The renewal guard's baseline store at scale: bytes per entry, per shard and in total (issue 23).

Builds N distinct leaves the way ``scale.py`` does (a private CA, one shared key, two DNS SANs,
serverAuth + clientAuth), records each Secret's baseline in a :class:`BaselineShards` exactly as the
operator does (``kube/baselines.py``, in memory: no API server needed for sizes) and prints what the
ConfigMaps would hold: bytes per entry (data key + compact value), the largest shard against the
768 KiB cap and the 1 MiB object limit, and the total; plus the time to record and to re-check
them (a pass where nothing changed).

Usage: .venv/bin/python benchmarks/renewal_baseline.py [--secrets 10000] [--dns-names 2]
"""

from __future__ import annotations

import argparse
import json
import time

from certpolicy.kube.baselines import MAX_SHARD_BYTES, SHARDS, BaselineShards, shard_bytes, shard_name
from certpolicy.kube.ownership import Owner
from certpolicy.pki.fingerprint import fingerprint
from certpolicy.pki.issue import create_ca, generate_key, issue_leaf
from certpolicy.policy.renewal import baseline_of, plain_fingerprint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--secrets", type=int, default=10_000)
    parser.add_argument("--dns-names", type=int, default=2, help="DNS SANs per leaf")
    args = parser.parse_args()

    ca = create_ca("Bench Renewal Root CA")
    anchor = fingerprint(ca.cert)
    key = generate_key()
    owner = Owner("payments-mtls", "5d1c0b0e-0000-4000-8000-000000000001")
    store = BaselineShards(owner, "certpolicy-system")
    t0 = time.perf_counter()
    leaves = []
    for i in range(args.secrets):
        names = [f"svc-{i}.payments.example.com"] + [f"svc-{i}-{j}.payments.svc.cluster.local"
                                                     for j in range(args.dns_names - 1)]
        leaves.append((f"team-payments-{i % 50:02d}", f"svc-{i}-tls",
                       issue_leaf(ca, dns_names=names, key=key, usages=["serverAuth", "clientAuth"]).cert))
    issued = time.perf_counter() - t0

    t0 = time.perf_counter()
    for ns, name, cert in leaves:
        assert store.put(ns, name, baseline_of(cert, anchor))
    recorded = time.perf_counter() - t0

    t0 = time.perf_counter()
    for ns, name, cert in leaves:  # an unchanged pass: the operator's fast path compares fingerprints
        stored = store.get(ns, name)
        assert stored is not None and stored.sha256 == plain_fingerprint(fingerprint(cert))
    rechecked = time.perf_counter() - t0

    sizes = sorted(shard_bytes(s.entries) for s in store.shards.values())
    total = sum(sizes)
    objects = [json.dumps({"apiVersion": "v1", "kind": "ConfigMap",
                           "metadata": {"name": shard_name(owner, i), "namespace": store.namespace},
                           "data": s.entries}, separators=(",", ":")) for i, s in store.shards.items()]
    sample = next(iter(next(iter(store.shards.values())).entries.items()))
    print(f"renewal baselines for {args.secrets} Secrets ({args.dns_names} DNS SANs each, EC P-256, "
          f"serverAuth+clientAuth, anchor known):")
    print(f"  one entry: {len(sample[0]) + len(sample[1].encode())} bytes ({sample[0]} = {sample[1][:60]}...)")
    print(f"  bytes per entry (key + value): {total / args.secrets:.0f}; total {total / 1024:.0f} KiB "
          f"in {len(sizes)} of {SHARDS} shards")
    print(f"  shard data: smallest {sizes[0] / 1024:.0f} KiB, largest {sizes[-1] / 1024:.0f} KiB "
          f"(cap {MAX_SHARD_BYTES // 1024} KiB, object limit 1024 KiB); largest ConfigMap as JSON "
          f"{max(len(o) for o in objects) / 1024:.0f} KiB")
    print(f"  memory of the copy: ~{total / 1024 / 1024:.1f} MiB of entry text per policy")
    print(f"  time: issue {issued:.1f} s (set-up), record {recorded * 1000:.0f} ms "
          f"({recorded / args.secrets * 1e6:.0f} µs per Secret), unchanged re-check {rechecked * 1000:.0f} ms")


if __name__ == "__main__":
    main()

"""Randomized crash runs of the CA rotation (issue #8): the invariant must hold in every run.

One local control plane, one policy (a CA, trust bundles in 2 namespaces, 2 managed leaves), the
operator as a real process. Each run requests a rotation and SIGKILLs the operator at a random
moment (uniformly within an undisturbed rotation's duration, measured first, or just after a
randomly chosen step begins; in a third of the runs a second time while it resumes), restarts
it, and waits for the rotation to complete. A recorder watches every bundle ConfigMap and leaf
Secret for the whole session; the invariant on API objects (every leaf chains to a CA present in
every bundle target) is checked by replaying all recorded versions in etcd order.

The workload-level invariant (every leaf a workload presents is trusted by the bundle each of its
peers has loaded) is measured where it matters: two mTLS workload processes
(tests/integration/mtls_workload.py) present leaf-0 and leaf-1 and trust their namespace's
bundle, each re-reading both from the API with its own lag (0.8 s + 0.4 s period, 1.2 s + 0.5 s,
out of phase), and handshake with each other every 100 ms for the whole session. The policy's
propagationDelay and leafPropagationDelay are 2 s, longer than either workload's staleness.
A failed handshake is a violation.

Usage: .venv/bin/python benchmarks/chaos_rotation.py [--runs 50] [--seed 2026]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
import uuid

from scale import GROUP, PLURAL, REPO, VERSION, bench_cluster

sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "integration")]

from rotation_support import MTLSPair, Recorder, check_invariant  # noqa: E402

from certpolicy.kube.namespaces import ensure_namespace  # noqa: E402
from certpolicy.kube.rawapi import RawClient  # noqa: E402
from operator_process import OperatorProcess  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    with bench_cluster() as bench:
        cluster, api, core, custom = bench.cluster, bench.api, bench.core, bench.custom
        namespaces = [f"chaos-{i}" for i in range(2)]
        for ns in namespaces:
            ensure_namespace(core, ns, labels={"chaos": "yes"})
        leaves = {f"leaf-{i}" for i in range(2)}
        recorder = Recorder(RawClient(api), namespaces, "chaos-ca", leaves).start()
        custom.create_cluster_custom_object(GROUP, VERSION, PLURAL, {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": "chaos"},
            "spec": {
                "selector": {"namespaceSelector": {"matchLabels": {"chaos": "yes"}}},
                "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
                "ca": {"secretName": "chaos-ca"},
                "trustBundles": [{"configMap": {"name": "chaos-ca"},
                                  "namespaceSelector": {"matchLabels": {"chaos": "yes"}}}],
                "issuance": [{"secretName": f"leaf-{i}", "namespace": namespaces[i],
                              "dnsNames": [f"leaf-{i}.chaos.test"]} for i in range(2)],
                "rotation": {"propagationDelay": "2s", "leafPropagationDelay": "2s"},
            }})
        op = OperatorProcess(cluster, cluster.workdir / "chaos-operator.log")
        op.start()

        def rotation() -> dict:
            return (custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "chaos").get("status") or {}
                    ).get("rotation") or {}

        def wait(pred, timeout: float, what: str):
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                value = pred()
                if value:
                    return value
                time.sleep(0.05)
            raise SystemExit(f"timed out waiting for {what}; see {op.log_path}")

        wait(lambda: (custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "chaos").get("status") or {}
                      ).get("issued", {}).get("ready") == 2, 60, "set-up")
        pair = MTLSPair(cluster.workdir, "chaos-ca", [(namespaces[0], "leaf-0", 0.8, 0.4, 0.0),
                                                      (namespaces[1], "leaf-1", 1.2, 0.5, 0.2)],
                        kubeconfig=cluster.kubeconfig)
        wait(lambda: pair.totals()[0] >= 20, 60, "the mTLS workloads handshaking")
        def request(rid: str) -> None:
            custom.patch_cluster_custom_object(GROUP, VERSION, PLURAL, "chaos",
                                               {"metadata": {"annotations": {"certpolicy.io/rotate": rid}}})

        def finished(rid: str) -> bool:
            r = rotation()
            h = r.get("history") or []
            return not r.get("id") and bool(h) and h[0]["id"] == rid and h[0]["outcome"] == "Completed"

        def where(rid: str) -> str:
            r = rotation()
            if r.get("id") == rid:
                return str(r.get("step"))
            return "after completion" if finished(rid) else "before step 1"

        # Calibration: how long an undisturbed rotation takes here, so that kills land inside one.
        t0 = time.monotonic()
        request("chaos-calibration")
        wait(lambda: finished("chaos-calibration"), 120, "the calibration rotation")
        duration = time.monotonic() - t0
        print(f"undisturbed rotation: {duration:.1f}s", flush=True)

        kills, steps, started = 0, [], time.monotonic()
        try:
            for run in range(args.runs):
                rid = f"chaos-{run}-{uuid.uuid4().hex[:4]}"
                request(rid)
                # One kill at a random moment of the rotation; in a third of the runs a second one
                # after the restart (a crash while resuming).
                run_steps = []
                for _ in range(2 if rng.random() < 1 / 3 else 1):
                    if rng.random() < 0.5:
                        time.sleep(rng.uniform(0, duration))  # a random moment in time...
                    else:  # ...or just after a random step begins (steps 3-5 last ~0.1 s each)
                        target = rng.randint(1, 5)
                        deadline = time.monotonic() + 30
                        while time.monotonic() < deadline and not finished(rid):
                            r = rotation()
                            if r.get("id") == rid and (r.get("step") or 0) >= target:
                                break
                            time.sleep(0.005)
                        time.sleep(rng.uniform(0, 0.1))
                    run_steps.append(where(rid))
                    op.kill()
                    kills += 1
                    op.start()
                steps += run_steps
                wait(lambda: finished(rid), 120, f"rotation {rid}")  # noqa: B023 - waited on in this iteration
                ok, failed = pair.totals()
                print(f"run {run + 1}/{args.runs}: killed at step {', '.join(run_steps)}; completed; "
                      f"handshakes so far {ok} ok, {failed} failed", flush=True)
            done = pair.totals()[0]
            wait(lambda: pair.totals()[0] >= done + 20, 30, "handshakes after the last rotation")
            handshakes = pair.counts()  # before stopping: a peer shutting down is no rotation's doing
        finally:
            pair.stop()
            op.stop()
            recorder.stop()
        checked, violations = check_invariant(recorder, targets=2)
        by_step = {s: steps.count(s) for s in sorted(set(steps))}
        result = {"runs": args.runs, "kills": kills, "kills_by_step": by_step,
                  "undisturbed_rotation_s": round(duration, 1),
                  "instants_checked": checked, "violations": len(violations),
                  "handshakes_ok": sum(c["ok"] for c in handshakes),
                  "handshakes_failed": sum(c["fail"] for c in handshakes),
                  "seconds": round(time.monotonic() - started), "seed": args.seed, "cpus": os.cpu_count()}
        print(json.dumps(result), flush=True)
        for v in violations[:20]:
            print("VIOLATION", v)
        for c in handshakes:
            for e in c["errors"]:
                print("FAILED HANDSHAKE", e)
        return 1 if violations or result["handshakes_failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

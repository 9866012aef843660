"""The validation engine against its floor in *instructions* per Secret (issue #28), not time.

On a shared 2-core machine wall-clock ratios swing by 30 % for the same code (docs/benchmarks.md,
"Issue 28"); valgrind's callgrind counts instructions, which load does not change. The method:

1. ``make`` writes a fixed JSON input once (100 ``kubernetes.io/tls`` Secrets per key type, a
   distinct leaf under one shared intermediate, the bundle and the instant), so that neither key
   generation nor randomness is counted and base and candidate trees read the same bytes;
2. for each key type and each of *floor* (bare cryptography calls, as in bench_engine.py) and
   *engine* (``material_from_secret`` + ``evaluate``, every engine cache cleared before each
   round), one process runs 1 round and one runs 4 under callgrind (``PYTHONHASHSEED=0``); the
   difference divided by 3 × the Secrets is the cost per Secret, start-up and imports cancelled.

``--tree`` points the engine at another checkout's ``operator/`` (the base to compare with).

Usage: .venv/bin/python benchmarks/callgrind_engine.py [--input /tmp/engine-input.json] [--tree .]
       [--kinds rsa2048,p256] [--modes floor,engine]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SECRETS = 100


def make(path: Path) -> None:
    sys.path.insert(0, str(REPO / "operator"))
    sys.path.insert(0, str(REPO / "tests"))
    sys.path.insert(0, str(REPO / "benchmarks"))
    import certgen
    from bench_engine import build

    now = certgen.utcnow()
    out: dict[str, object] = {"now": now.isoformat()}
    for kind in ("rsa2048", "p256"):
        secrets, bundle = build(kind, SECRETS, False, now)
        from cryptography.hazmat.primitives.serialization import Encoding

        out[kind] = {"secrets": secrets, "bundle": [base64.b64encode(c.public_bytes(Encoding.PEM)).decode() for c in bundle]}
    path.write_text(json.dumps(out))


def run(path: Path, tree: Path, kind: str, mode: str, rounds: int) -> None:
    """One measured process: ``rounds`` rounds of ``mode`` over the input's ``kind`` Secrets."""
    sys.path.insert(0, str(tree / "operator"))
    import datetime as dt

    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.verification import PolicyBuilder, Store

    from certpolicy.pki import cache
    from certpolicy.pki.publicroots import default_public_roots
    from certpolicy.pki.secretdata import material_from_secret
    from certpolicy.policy.evaluate import evaluate
    from certpolicy.policy.spec import requirements_from_spec

    doc = json.loads(path.read_text())
    now = dt.datetime.fromisoformat(doc["now"])
    secrets = doc[kind]["secrets"]
    bundle = tuple(x509.load_pem_x509_certificate(base64.b64decode(b)) for b in doc[kind]["bundle"])
    req = requirements_from_spec({
        "extendedKeyUsages": ["serverAuth", "clientAuth"], "allowedDNSNames": ["*.uat.example.com"],
        "requiredDNSNames": [], "expiry": {"warningBefore": "720h", "criticalBefore": "168h"},
        "minimumRSABits": 2048, "requirePrivateKey": True,
    })
    default_public_roots().parse()  # loaded and parsed here, not in a measured evaluation
    store = Store(list(bundle))
    for _ in range(rounds):
        if mode == "floor":
            for s in secrets:
                data = s["data"]
                certs = x509.load_pem_x509_certificates(base64.b64decode(data["tls.crt"]))
                key = serialization.load_pem_private_key(base64.b64decode(data["tls.key"]), None, unsafe_skip_rsa_key_validation=True)
                assert certs[0].public_key() == key.public_key()
                PolicyBuilder().store(store).time(now).build_client_verifier().verify(certs[0], certs[1:])
        else:
            cache.clear_all()
            for s in secrets:
                ev = evaluate(req, material_from_secret(s["type"], s["data"]), bundle, now)
                assert ev.compliant, [f.message for f in ev.findings]


def instructions(path: Path, tree: Path, kind: str, mode: str, rounds: int) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, __file__,
                        "--input", str(path), "--tree", str(tree), "--one", kind, mode, str(rounds)],
                       env=env, check=True, capture_output=True)
        m = re.search(r"^summary: (\d+)", out.read_text(), re.M)
        assert m, "no summary line in the callgrind output"
        return int(m.group(1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--input", type=Path, default=Path(tempfile.gettempdir()) / "engine-input.json")
    ap.add_argument("--tree", type=Path, default=REPO)
    ap.add_argument("--kinds", default="rsa2048,p256")
    ap.add_argument("--modes", default="floor,engine")
    ap.add_argument("--one", nargs=3, metavar=("KIND", "MODE", "ROUNDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        run(args.input, args.tree, args.one[0], args.one[1], int(args.one[2]))
        return
    if not args.input.exists():
        make(args.input)
        print(f"wrote {args.input}")
    for kind in args.kinds.split(","):
        per: dict[str, float] = {}
        for mode in args.modes.split(","):
            one = instructions(args.input, args.tree, kind, mode, 1)
            four = instructions(args.input, args.tree, kind, mode, 4)
            per[mode] = (four - one) / (3 * SECRETS)
            print(f"{kind:8} {mode:6} {per[mode] / 1e6:6.3f} M instructions per Secret", flush=True)
        if "floor" in per and "engine" in per:
            print(f"{kind:8} ratio  {per['engine'] / per['floor']:.3f}x", flush=True)


if __name__ == "__main__":
    main()

"""Same findings before and after an engine change: every fixture evaluated by two trees, compared.

A performance change to the engine must not change one verdict. This writes a fixed corpus once
(the certificate fixtures of the unit tests: every key kind, a quirky private CA, malformed and
unknown extensions, v1, SHA-1, self-signed, expiring, a key mismatch, no key, no bundle, the
hostile Secrets of ``tests/hostile.py``, plus trust stores checked with ``missing_anchors``), then
evaluates it in a fresh process with each tree's ``operator/`` and compares the JSON of every
evaluation (findings, roles, summaries, validity window) and of every trust-store check.

Usage: .venv/bin/python benchmarks/compare_engine.py --base /path/to/base/checkout [--tree .]
Exit status 1 when anything differs.
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def make(path: Path) -> None:
    sys.path.insert(0, str(REPO / "operator"))
    sys.path.insert(0, str(REPO / "tests"))
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding
    from cryptography.x509.oid import ExtensionOID

    import certgen
    from hostile import hostile_secrets

    def pem(*certs: Any) -> str:
        return _b64(b"".join(c.public_bytes(Encoding.PEM) for c in certs))

    now = certgen.utcnow()
    cases: list[dict[str, Any]] = []

    def add(name: str, data: dict[str, bytes | str], bundle: list[x509.Certificate] | None, stores: list[list[x509.Certificate]] = ()) -> None:
        enc = {k: (v if isinstance(v, str) else _b64(v)) for k, v in data.items()}
        cases.append({"name": name, "data": enc, "bundle": None if bundle is None else pem(*bundle),
                      "stores": [pem(*s) for s in stores]})

    other = certgen.pki("p384")
    for kind in ("p256", "rsa2048", "p384"):
        p = certgen.pki(kind)
        data = certgen.tls_secret(p.leaf, [p.intermediate], encoded=False)["data"]
        add(f"{kind}-chain", data, p.bundle, [[p.root.cert], [other.root.cert], [p.intermediate.cert]])
        add(f"{kind}-no-bundle", data, None, [[p.root.cert], [other.root.cert]])
        add(f"{kind}-ca-crt", certgen.tls_secret(p.leaf, [p.intermediate], ca=[p.root], encoded=False)["data"], None)
        add(f"{kind}-wrong-bundle", data, other.bundle)
        add(f"{kind}-key-mismatch", certgen.tls_secret(p.leaf, [p.intermediate], key=certgen.key(kind, 3), encoded=False)["data"], p.bundle)
        add(f"{kind}-no-key", certgen.tls_secret(p.leaf, [p.intermediate], key=False, encoded=False)["data"], p.bundle)
        add(f"{kind}-missing-intermediate", certgen.tls_secret(p.leaf, [], encoded=False)["data"], p.bundle)
    p = certgen.pki()
    root = p.root
    bad_san = x509.UnrecognizedExtension(ExtensionOID.SUBJECT_ALTERNATIVE_NAME, b"\x30\x05\x82\x09oops")
    quirky_root = certgen.root("Quirky Root", key_usage=None, basic_constraints="noncritical", ski=False)
    quirky_inter = certgen.intermediate(quirky_root, "Quirky Intermediate", basic_constraints="noncritical", aki=False, ski=False)
    rsa_root = certgen.root(key_kind="rsa2048")
    singles = {
        "malformed-san": (certgen.leaf(root, "a.example.com", dns_names=(), extra_extensions=[(bad_san, False)]), root),
        "unknown-eku": (certgen.leaf(root, "x.example.com", eku=["serverAuth", x509.ObjectIdentifier("1.3.6.1.4.1.99999.1")]), root),
        "no-eku-no-san": (certgen.leaf(root, "x.example.com", eku=None, dns_names=()), root),
        "ip-uri-email": (certgen.leaf(root, "x", dns_names=["a.example.com"], ip_addresses=["10.0.0.1", "fd00::1"],
                                      uris=["spiffe://td/ns/x"], emails=["a@example.com"]), root),
        "leaf-is-ca": (certgen.intermediate(root, "ca-as-leaf"), root),
        "expiring": (certgen.leaf(root, "soon.example.com", valid_for=dt.timedelta(days=3)), root),
        "ed25519": (certgen.leaf(root, "k.example.com", key_kind="ed25519"), root),
        "self-signed": (certgen.root("self.example.com"), root),
        "v1": (certgen.leaf(rsa_root, "v1.example.com", key_kind="rsa2048", version=1), rsa_root),
        "sha1": (certgen.leaf(rsa_root, "sha1.example.com", key_kind="rsa2048", hash="sha1"), rsa_root),
    }
    for name, (leaf, anchor) in singles.items():
        add(name, certgen.tls_secret(leaf, encoded=False)["data"], [anchor.cert], [[anchor.cert], [other.root.cert]])
    quirky = certgen.leaf(quirky_inter, "q.example.com", aki=False, ski=False)
    add("quirky", certgen.tls_secret(quirky, [quirky_inter], encoded=False)["data"], [quirky_root.cert])
    hostile_ca = certgen.root("hostile CA")
    for name, data in hostile_secrets(hostile_ca).data.items():
        add(f"hostile-{name}", data, [hostile_ca.cert], [[hostile_ca.cert]])
    path.write_text(json.dumps({"now": now.isoformat(), "cases": cases}))


def run(path: Path, tree: Path, out: Path) -> None:
    sys.path.insert(0, str(tree / "operator"))
    from cryptography import x509

    from certpolicy.pki import cache
    from certpolicy.pki.secretdata import material_from_secret
    from certpolicy.policy.evaluate import evaluate
    from certpolicy.policy.spec import requirements_from_spec
    from certpolicy.policy.truststores import LeafAnchor, missing_anchors

    def certs(b64: str | None) -> list[x509.Certificate] | None:
        return None if b64 is None else x509.load_pem_x509_certificates(base64.b64decode(b64))

    doc = json.loads(path.read_text())
    now = dt.datetime.fromisoformat(doc["now"])
    reqs = [requirements_from_spec({}), requirements_from_spec({
        "extendedKeyUsages": ["serverAuth", "clientAuth"], "allowedDNSNames": ["*.example.com"],
        "expiry": {"warningBefore": "720h", "criticalBefore": "168h"}, "requirePrivateKey": True})]
    result: dict[str, Any] = {}
    for case in doc["cases"]:
        bundle = certs(case["bundle"])
        for i, req in enumerate(reqs):
            for cold in (True, False):  # a first sight (caches cleared) and a re-check
                if cold:
                    cache.clear_all()
                m = material_from_secret("kubernetes.io/tls", case["data"])
                ev = evaluate(req, m, tuple(bundle) if bundle is not None else None, now)
                key = f"{case['name']}/req{i}/{'cold' if cold else 'warm'}"
                result[key] = ev.to_dict()
                anchor = LeafAnchor.of("ns/" + case["name"], m, ev.chain_path, bundle or ())
                if anchor is not None:
                    result[key + "/stores"] = [[f.to_dict() for f in missing_anchors(certs(s) or [], [anchor])]
                                               for s in case["stores"]]
    out.write_text(json.dumps(result, indent=1, sort_keys=True, default=str))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", type=Path, required=False)
    ap.add_argument("--tree", type=Path, default=REPO)
    ap.add_argument("--input", type=Path, default=Path(tempfile.gettempdir()) / "engine-corpus.json")
    ap.add_argument("--one", nargs=2, metavar=("TREE", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        run(args.input, Path(args.one[0]), Path(args.one[1]))
        return
    if not args.input.exists():
        make(args.input)
    with tempfile.TemporaryDirectory() as tmp:
        outs = []
        for label, tree in (("base", args.base), ("tree", args.tree)):
            out = Path(tmp) / f"{label}.json"
            subprocess.run([sys.executable, __file__, "--input", str(args.input), "--one", str(tree), str(out)], check=True)
            outs.append(json.loads(out.read_text()))
    base, new = outs
    differ = sorted(k for k in base.keys() | new.keys() if base.get(k) != new.get(k))
    print(f"{len(base)} evaluations and store checks compared; {len(differ)} differ")
    for k in differ[:20]:
        print("  differs:", k)
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()

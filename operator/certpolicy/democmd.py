"""``certpolicy demo``: the operator's main job on an embedded default, from nothing.

Starts a local control plane (or uses ``--kubeconfig``), installs the CRD, starts the operator as
a real process, creates a UAT namespace with three HL7 certificates — one good, one renewed
without clientAuth (the 2026 failure), one carrying a production name — applies the example
policies and prints what ``kubectl get certpol`` and the policy status say. It ends with a CA
rotation (``examples/ca-rotation.yaml`` in a namespace of its own, delays shortened and said so) showing the five steps as
they happen and what the trust bundle holds at the end, and then with enforcement: hl7-mtls goes to
``Deny`` and a renewal that drops clientAuth is refused (kubectl's message, and the old certificate
still in the Secret).

With ``--keep`` it then prints the ``export`` lines a second terminal needs for the README's
commands (:func:`exports`) and runs until Ctrl-C or SIGTERM, either of which stops the operator and
the control plane and deletes their directories (the operator's log is kept only after a failure,
whose message names it).
"""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
DEMO_POLICIES = ("hl7-mtls.yaml", "uat-vs-prod-sans.yaml")
DEMO_NAMESPACE = "integration"
OPERATOR_NAMESPACE = "certpolicy-system"
#: The demo's CA, kept so that the demo run again on the same cluster issues its leaves from the
#: same CA: leaves from a new CA would be renewals to another trust anchor, which the operator's
#: renewal guard rightly reports (RenewalChangedAnchor) and the demo's expected output would not say.
DEMO_CA_SECRET = "hl7-demo-ca"
ROTATION_EXAMPLE = "ca-rotation.yaml"
ROTATION_NAMESPACE = "rotation-demo"
#: The demo's rotation delays; the defaults (2 minutes each) are for kubelets and real workloads.
DEMO_DELAY = "3s"


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", help="use this cluster instead of starting a local control plane")
    parser.add_argument("--keep", action="store_true",
                        help="keep the cluster and operator running until Ctrl-C and print the KUBECONFIG line "
                             "to inspect them from another terminal (make demo KEEP=1)")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait for policy status")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _demo_objects(ca=None) -> list[dict]:
    from certpolicy.pki.issue import create_ca, issue_leaf

    ca = ca or create_ca("HL7 UAT demo CA", validity=dt.timedelta(days=3650))
    leaves = {
        "mirth-tls": issue_leaf(ca, dns_names=["hl7tls.uat.example.com"], usages=["serverAuth", "clientAuth"]),
        # A 2026 renewal from a public-CA-style profile: valid, unexpired, right name, no clientAuth.
        "lab-feed-tls": issue_leaf(ca, dns_names=["labfeed.uat.example.com"], usages=["serverAuth"]),
        # A UAT certificate that also carries the production name.
        "adt-tls": issue_leaf(ca, dns_names=["adt.uat.example.com", "adt.example.com"],
                              usages=["serverAuth", "clientAuth"]),
    }
    objs: list[dict] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEMO_NAMESPACE, "labels": {"env": "uat"}}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "hl7-ca", "namespace": OPERATOR_NAMESPACE},
         "data": {"ca.crt": ca.cert_pem.decode()}},
        {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
         "metadata": {"name": DEMO_CA_SECRET, "namespace": OPERATOR_NAMESPACE},
         "data": {"tls.crt": _b64(ca.cert_pem), "tls.key": _b64(ca.key_pem)}},
    ]
    for name, kp in leaves.items():
        objs.append({
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": name, "namespace": DEMO_NAMESPACE, "labels": {"app": "hl7"}},
            "data": {"tls.crt": _b64(kp.cert_pem), "tls.key": _b64(kp.key_pem), "ca.crt": _b64(ca.cert_pem)},
        })
    return objs


def _demo_ca(kubectl):
    """The CA an earlier demo left on this cluster (Secret ``DEMO_CA_SECRET``), else a new one."""
    from certpolicy.pki.issue import create_ca, load_key_pair

    proc = kubectl("get", "secret", DEMO_CA_SECRET, "-n", OPERATOR_NAMESPACE, "-o", "json", check=False)
    if proc.returncode == 0:
        data = json.loads(proc.stdout).get("data") or {}
        try:
            return load_key_pair(base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"]))
        except (KeyError, ValueError):
            pass  # not a CA the demo can use: a new one replaces it
    return create_ca("HL7 UAT demo CA", validity=dt.timedelta(days=3650))


def _failed(what: str, log_path: Path) -> int:
    """Say what failed, with the end of the operator's log inline (kept on disk too)."""
    try:
        tail = log_path.read_text(errors="replace").splitlines()[-25:]
    except OSError:
        tail = []
    print(f"demo failed: {what}.", file=sys.stderr)
    if tail:
        print("last lines of the operator log:\n    " + "\n    ".join(tail), file=sys.stderr)
    print(f"full operator log (kept): {log_path}", file=sys.stderr)
    return 1


def _policy_status_complete(kubectl, name: str) -> bool:
    proc = kubectl("get", "certpol", name, "-o", "yaml", check=False)
    if proc.returncode != 0:
        return False
    obj = yaml.safe_load(proc.stdout)
    status = obj.get("status") or {}
    types = {c["type"] for c in status.get("conditions", [])}
    return status.get("observedGeneration") == obj["metadata"]["generation"] and {"Ready", "Compliant"} <= types


def _show_rotation(kubectl, timeout: float) -> str | None:
    """Apply the rotation example, rotate its CA once and print each step as it happens; returns
    what went wrong, or None."""
    from certpolicy.pki.bundle import read_bundle
    from certpolicy.pki.fingerprint import fingerprint, short

    # examples/ca-rotation.yaml in a namespace of its own (the examples' policies select env=uat
    # namespaces: nothing here changes what they see), with the delays shortened.
    policy = next(d for d in yaml.safe_load_all((REPO / "examples" / ROTATION_EXAMPLE).read_text()) if d)
    name = policy["metadata"]["name"] = "demo-rotation"
    spec = policy["spec"]
    spec["selector"]["namespaceSelector"] = {"matchLabels": {"demo": "rotation"}}
    spec["ca"]["secretName"] = f"{name}-ca"
    spec["trustBundles"] = [{"configMap": {"name": f"{name}-ca", "key": "ca.crt"},
                             "namespaceSelector": {"matchLabels": {"demo": "rotation"}}}]
    for item in spec["issuance"]:
        item["namespace"] = ROTATION_NAMESPACE
    spec["rotation"].update(propagationDelay=DEMO_DELAY, leafPropagationDelay=DEMO_DELAY)
    print(f"\n==> CA rotation: examples/{ROTATION_EXAMPLE} as policy {name} in namespace {ROTATION_NAMESPACE}", flush=True)
    print(f"    delays shortened for the demo: propagationDelay and leafPropagationDelay {DEMO_DELAY} "
          "(the defaults are 2m each: kubelet sync plus workload reload)", flush=True)
    kubectl("apply", "-f", "-", input=yaml.safe_dump_all([
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ROTATION_NAMESPACE, "labels": {"demo": "rotation"}}},
        policy]))

    def status() -> dict:
        proc = kubectl("get", "certpol", name, "-o", "json", check=False)
        return (json.loads(proc.stdout).get("status") or {}) if proc.returncode == 0 else {}

    deadline = time.monotonic() + timeout
    st = status()
    while not ((st.get("issued") or {}).get("ready") == 1 and (st.get("bundleTargets") or {}).get("verified")):
        if time.monotonic() > deadline:
            return f"the CA, bundle and leaf of {name} were not in place after {timeout:.0f}s"
        time.sleep(0.2)
        st = status()
    print(f"    active CA: {st['ca']['subject']} ({short(st['ca']['fingerprint'])})", flush=True)
    rid = f"demo-{int(time.time())}"
    print(f"$ kubectl annotate certpol {name} certpolicy.io/rotate={rid}", flush=True)
    kubectl("annotate", "certpol", name, f"certpolicy.io/rotate={rid}", "--overwrite")
    # Each step transition is an event on the policy; the status says what the step waits for.
    started, seen, waiting = time.monotonic(), set(), None
    while time.monotonic() < deadline + 60:
        events = json.loads(kubectl("get", "events", "-A", f"--field-selector=involvedObject.name={name}",
                                    "-o", "json", check=False).stdout or '{"items": []}')["items"]
        order = ["RotationStarted", "RotationVerifyBundles", "RotationIssueFromNewCA", "RotationAwaitLeaves",
                 "RotationRemoveOldCA", "RotationCompleted"]  # events of one second sort by step
        for e in sorted(events, key=lambda e: (e.get("firstTimestamp") or e.get("eventTime") or "",
                                               order.index(e["reason"]) if e.get("reason") in order else 9)):
            if e["metadata"]["uid"] in seen or not e.get("reason", "").startswith("Rotation") or rid not in e["message"]:
                continue
            seen.add(e["metadata"]["uid"])
            print(f"    [{time.monotonic() - started:5.1f}s] {e['reason']}: {e['message']}", flush=True)
        rot = status().get("rotation") or {}
        history = rot.get("history") or []
        if not rot.get("id") and history and history[0].get("id") == rid and "RotationCompleted" in {
                e["reason"] for e in events if e["metadata"]["uid"] in seen}:
            break
        if rot.get("id") == rid and rot.get("message") != waiting and "until" in rot.get("message", ""):
            waiting = rot["message"]  # what a step waits for: the propagation delays
            print(f"    [{time.monotonic() - started:5.1f}s]   step {rot.get('step')}/5 {rot.get('phase')}: {waiting}",
                  flush=True)
        time.sleep(0.2)
    else:
        return f"rotation {rid} of {name} did not complete"
    cm = json.loads(kubectl("get", "configmap", name + "-ca", "-n", ROTATION_NAMESPACE, "-o", "json").stdout)
    certs = read_bundle((cm.get("data") or {}).get("ca.crt", "")).certificates
    print(f"\n$ kubectl get configmap {name}-ca -n {ROTATION_NAMESPACE}   # the trust bundle after the rotation")
    for cert in certs:
        print(f"    {cert.subject.rfc4514_string()}  {short(fingerprint(cert))}")
    st = status()
    print(f"    active CA: {st['ca']['subject']} ({short(st['ca']['fingerprint'])}); the old CA is retired, "
          "every leaf was re-issued from the new one", flush=True)
    return None


def _show_enforcement(kubectl, ca, timeout: float) -> str | None:
    """hl7-mtls goes to enforcement Deny; a renewal of mirth-tls that drops clientAuth is refused,
    kubectl's message is printed and the Secret still holds the old certificate. Returns what went
    wrong, or None."""
    from certpolicy.pki.inspect import summarize
    from certpolicy.pki.issue import issue_leaf
    from certpolicy.pki.load import load_certificates

    print("\n==> enforcement at admission (docs/enforcement.md)", flush=True)
    print('$ kubectl patch certpol hl7-mtls --type merge -p \'{"spec":{"enforcement":"Deny"}}\'', flush=True)
    kubectl("patch", "certpol", "hl7-mtls", "--type", "merge", "-p", '{"spec":{"enforcement":"Deny"}}')
    renewed = issue_leaf(ca, dns_names=["hl7tls.uat.example.com"], usages=["serverAuth"])  # a 2026 renewal
    secret = yaml.safe_dump({"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                             "metadata": {"name": "mirth-tls", "namespace": DEMO_NAMESPACE, "labels": {"app": "hl7"}},
                             "data": {"tls.crt": _b64(renewed.cert_pem), "tls.key": _b64(renewed.key_pem),
                                      "ca.crt": _b64(ca.cert_pem)}})
    deadline = time.monotonic() + timeout
    while True:  # the operator registers the policy's webhook entry a moment after the patch
        probe = kubectl("apply", "--dry-run=server", "-f", "-", input=secret, check=False)
        if probe.returncode != 0 and "hl7-mtls" in probe.stderr:
            break
        if time.monotonic() > deadline:
            return f"the webhook did not start refusing for hl7-mtls within {timeout:.0f}s"
        time.sleep(0.5)
    print("$ kubectl replace -f mirth-tls-renewed.yaml   # renewed by a public-CA-style profile: no clientAuth",
          flush=True)
    # replace, not apply: apply's error message repeats the patch it sent, tls.key included.
    proc = kubectl("replace", "-f", "-", input=secret, check=False)
    if proc.returncode == 0:
        return "the renewal without clientAuth was admitted under enforcement Deny"
    refusal = [line for line in proc.stderr.splitlines() if "denied the request" in line]
    if not refusal:
        return f"the renewal failed for another reason: {proc.stderr.strip()[:300]}"
    print("    " + "\n    ".join(refusal), flush=True)
    stored = json.loads(kubectl("get", "secret", "mirth-tls", "-n", DEMO_NAMESPACE, "-o", "json").stdout)
    leaf = summarize(load_certificates(base64.b64decode(stored["data"]["tls.crt"])).certificates[0])
    print(f"$ kubectl get secret mirth-tls -n {DEMO_NAMESPACE}   # still the certificate it had", flush=True)
    print(f"    {leaf.subject}  EKU [{', '.join(leaf.extended_key_usages)}]  {leaf.fingerprint[:23]}...", flush=True)
    if "clientAuth" not in leaf.extended_key_usages:
        return "the Secret lost clientAuth although the write was refused"
    return None


def _interrupt_on_sigterm() -> None:
    """SIGTERM stops the demo as Ctrl-C does: the ``finally`` of :func:`run` stops the operator and
    the control plane and removes their directories. Python's default for SIGTERM ends the process
    at once, leaving ``certpolicy run``, etcd and kube-apiserver running and their directories behind."""

    def handler(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def exports(kubeconfig: Path, kubectl_bin: Path, metrics_port: int) -> list[str]:
    """What a second terminal needs for the README's commands: the cluster, kubectl, and this
    installation's commands (``kubectl-certpolicy`` for ``kubectl certpolicy``, and the Python that
    imports ``certpolicy`` for ``python scripts/...``), whose directory is the interpreter's."""
    bins = dict.fromkeys([str(kubectl_bin.parent), str(Path(sys.executable).parent)])  # in order, once
    return [f"export KUBECONFIG={kubeconfig}", f"export PATH={os.pathsep.join(bins)}{os.pathsep}$PATH",
            f"export METRICS_PORT={metrics_port}"]


def run(args: argparse.Namespace) -> int:
    from certpolicy.kube.crd import install_crd
    from certpolicy.localcluster import LocalCluster
    from certpolicy.localcluster.binaries import ensure_binaries
    from certpolicy.localcluster.cluster import free_port

    _interrupt_on_sigterm()
    cluster = None
    operator = None
    log_path: Path | None = None
    failed = False
    try:
        if args.kubeconfig:
            kubeconfig = Path(args.kubeconfig)
            kubectl_bin = ensure_binaries().kubectl
        else:
            print("==> starting a local control plane (etcd + kube-apiserver on loopback)", flush=True)
            cluster = LocalCluster()
            cluster.start()
            assert cluster.binaries is not None  # start() resolved them
            kubeconfig, kubectl_bin = cluster.kubeconfig, cluster.binaries.kubectl
            print(f"    ready in {cluster.startup_seconds:.1f}s; KUBECONFIG={kubeconfig}", flush=True)

        def kubectl(*a: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess:
            return subprocess.run([str(kubectl_bin), f"--kubeconfig={kubeconfig}", *a], capture_output=True,
                                  text=True, check=check, input=input, timeout=120)

        print("==> installing the CertificatePolicy CRD", flush=True)
        install_crd(kubeconfig)
        kubectl("create", "namespace", OPERATOR_NAMESPACE, check=False)
        print("==> starting the operator (certpolicy run)", flush=True)
        env = dict(os.environ, KUBECONFIG=str(kubeconfig), CERTPOLICY_NAMESPACE=OPERATOR_NAMESPACE,
                   CERTPOLICY_METRICS_ADDR="127.0.0.1")
        # Outside the cluster's directory, which cluster.stop() deletes: a failure message can
        # point at this log after the clean-up. Removed when the demo succeeds.
        log_path = Path(tempfile.mkdtemp(prefix="certpolicy-demo-")) / "operator.log"
        metrics_port = free_port()  # 9090 may be taken on a laptop; the demo needs none in particular
        with open(log_path, "wb") as log:
            operator = subprocess.Popen(
                [sys.executable, "-m", "certpolicy.cli", "run", f"--liveness=http://127.0.0.1:{free_port()}/healthz",
                 f"--metrics-port={metrics_port}"],
                env=env, stdout=log, stderr=subprocess.STDOUT,
            )
        print("==> creating namespace 'integration' (env=uat) with three HL7 TLS Secrets", flush=True)
        demo_ca = _demo_ca(kubectl)
        kubectl("apply", "-f", "-", input=yaml.safe_dump_all(_demo_objects(demo_ca)))
        names = []
        for fname in DEMO_POLICIES:
            path = REPO / "examples" / fname
            print(f"==> kubectl apply -f examples/{fname}", flush=True)
            kubectl("apply", "-f", str(path))
            names += [d["metadata"]["name"] for d in yaml.safe_load_all(path.read_text()) if d]
        deadline = time.monotonic() + args.timeout
        pending = set(names)
        while pending and time.monotonic() < deadline:
            if operator.poll() is not None:
                failed = True
                return _failed(f"the operator exited with {operator.returncode}", log_path)
            pending = {n for n in pending if not _policy_status_complete(kubectl, n)}
            time.sleep(0.2)
        if pending:
            failed = True
            return _failed(f"timed out after {args.timeout:.0f}s waiting for the status of {sorted(pending)}", log_path)
        print("\n$ kubectl get certpol", flush=True)
        print(kubectl("get", "certpol").stdout, flush=True)
        for n in names:
            obj = yaml.safe_load(kubectl("get", "certpol", n, "-o", "yaml").stdout)
            status = obj.get("status", {})
            print(f"--- {n}: conditions")
            for c in status.get("conditions", []):
                print(f"    {c['type']}={c['status']} {c['reason']}: {c['message']}")
            for v in status.get("violations", [])[:10]:
                print(f"    violation {v.get('namespace')}/{v.get('name')}: {', '.join(v.get('reasons', []))}")
        events = kubectl("get", "events", "-n", DEMO_NAMESPACE, "--field-selector=type=Warning",
                         "-o", "custom-columns=OBJECT:.involvedObject.name,REASON:.reason,MESSAGE:.message",
                         check=False).stdout
        if events.strip():
            print(f"\n$ kubectl get events -n {DEMO_NAMESPACE} --field-selector=type=Warning\n{events}")
        problem = _show_rotation(kubectl, args.timeout) or _show_enforcement(kubectl, demo_ca, args.timeout)
        if problem:
            failed = True
            return _failed(problem, log_path)
        if args.keep:
            lines = "\n".join(f"    {line}" for line in exports(kubeconfig, kubectl_bin, metrics_port))
            print(f"\nThe cluster and the operator keep running (Ctrl-C or SIGTERM here stops and deletes them). "
                  f"In another terminal:\n\n{lines}\n    kubectl get certpol\n"
                  f"\noperator log: {log_path}", flush=True)
            operator.wait()  # it is not expected to end while kept
            failed = True
            return _failed(f"the operator exited with {operator.returncode}", log_path)
        return 0
    except KeyboardInterrupt:  # Ctrl-C, or SIGTERM (_interrupt_on_sigterm): a clean stop
        print("\n==> stopping the operator and the control plane", flush=True)
        return 0
    except BaseException:
        failed = True  # an unexpected error: keep the operator's log for whoever reads the traceback
        raise
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the clean-up short
        if operator is not None and operator.poll() is None:
            operator.terminate()
            try:
                operator.wait(15)
            except subprocess.TimeoutExpired:
                operator.kill()
                operator.wait(5)
        if cluster is not None:
            cluster.stop()
        if log_path is not None and not failed:  # a failure's message points at the log: kept then
            shutil.rmtree(log_path.parent, ignore_errors=True)

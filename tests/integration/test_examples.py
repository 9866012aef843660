"""A newcomer's path, on the cluster `make demo` builds: the demo, every example in the documented
order (each reaching the state examples/README.md promises), then every shell block of README.md,
docs/*.md and examples/README.md marked runnable.

README.md's blocks run where their reader runs them: `certpolicy demo --keep` (what `make demo
KEEP=1` runs) on its own control plane, in one shell holding only the export lines it prints (a
PATH without the venv's commands before them), followed by examples/README.md's
`python scripts/hl7_java_stores.py` (the printed PATH's python must import certpolicy). Then
SIGTERM stops that demo, which must leave no process and no directory behind.

Doc blocks are marked with an HTML comment on the line before the fence: ``<!-- runnable -->``
or ``<!-- not runnable: why -->``. A shell block with neither fails the test, so every command a
reader may copy either runs here or says why not. The runnable blocks of one file run in order in
one ``bash -e -o pipefail``, as a reader types them into one terminal (a directory changed to, a
variable or a background job ``%1`` carries over to the next block), started from the repository
root with KUBECONFIG, kubectl and the venv's commands on PATH, METRICS_PORT set, and TMPDIR a
directory of the test's. The shell has a process group of its own, killed when the file's blocks
end, pass or fail: a server a block starts in the background never outlives the test.

The demo's cluster is a second control plane for this module: the examples' policies select
``env=uat`` namespaces cluster-wide and must not meet other tests' objects.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from kopf.testing import KopfRunner

from certpolicy import metrics
from certpolicy.localcluster import LocalCluster
from certpolicy.localcluster.cluster import free_port
from crd import GROUP, PLURAL, VERSION
from kubewait import WaitTimeout, events_since, wait_for
from paths import EXAMPLES, REPO

DOC_FILES = [REPO / "examples" / "README.md", REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^\s*```(sh|bash|shell|console)\s*$")
MARK = re.compile(r"^\s*<!-- (runnable|not runnable: .+) -->\s*$")


@pytest.fixture(scope="module")
def demo_cluster(cluster) -> Iterator[LocalCluster]:  # after the session's, so KUBECONFIG is restored in order
    with LocalCluster() as c:
        yield c


def certpolicy(*args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "certpolicy.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


def test_demo_failure_points_at_a_log_that_still_exists(demo_cluster):
    proc = certpolicy("demo", f"--kubeconfig={demo_cluster.kubeconfig}", "--timeout=0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "demo failed: timed out" in proc.stderr
    (log,) = re.findall(r"full operator log \(kept\): (\S+)", proc.stderr)
    assert Path(log).is_file()
    Path(log).unlink()
    Path(log).parent.rmdir()


def test_demo_succeeds_on_its_cluster(demo_cluster):
    proc = certpolicy("demo", f"--kubeconfig={demo_cluster.kubeconfig}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "MissingClientAuth" in proc.stdout and "DNSNameNotAllowed" in proc.stdout
    # It ends with a CA rotation, the five steps in order, delays shortened and said so.
    out = proc.stdout
    assert "delays shortened for the demo" in out
    steps = ["RotationStarted", "RotationVerifyBundles", "RotationIssueFromNewCA", "RotationAwaitLeaves",
             "RotationRemoveOldCA", "RotationCompleted"]
    assert [out.index(f"] {s}:") for s in steps] == sorted(out.index(f"] {s}:") for s in steps), out
    assert "the trust bundle after the rotation" in out
    # And with enforcement: Deny, a renewal that drops clientAuth is refused; the Secret keeps its leaf.
    refusal = out[out.index("==> enforcement at admission"):]
    assert 'admission webhook "hl7-mtls.secrets.certpolicy.io" denied the request' in refusal
    assert "MissingClientAuth" in refusal and "still the certificate it had" in refusal
    assert "EKU [serverAuth, clientAuth]" in refusal and "PRIVATE KEY" not in out and "LS0tLS1" not in out


class Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name}: {record.getMessage()}")


LOG = Lines()


@pytest.fixture(scope="module")
def demo_operator(demo_cluster) -> Iterator[int]:
    """The operator in-process against the demo's cluster; yields its metrics port. Its INFO log
    lines (kopf's and ours) go to ``LOG``."""
    levels = {}
    for name in ("kopf.objects", "certpolicy.reconcile"):
        levels[name] = logging.getLogger(name).level
        logging.getLogger(name).setLevel(logging.INFO)
        logging.getLogger(name).addHandler(LOG)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KUBECONFIG", str(demo_cluster.kubeconfig))
        mp.setenv(metrics.PORT_ENV, "0")
        # What docs/rotation.md "Trying it" tells the reader to start the demo with: its probe
        # goes to an openssl s_server on loopback, which the default allow-list (*.svc) refuses.
        mp.setenv("CERTPOLICY_PROBE_ALLOW", "127.0.0.1/32")
        args = ["run", "--all-namespaces", "--standalone", f"--liveness=http://127.0.0.1:{free_port()}/healthz",
                "-m", "certpolicy.handlers.registry"]
        with KopfRunner(args, timeout=60) as runner:
            wait_for(lambda: metrics._server, timeout=60, what="the operator's metrics endpoint")
            yield metrics._server[1]
        assert runner.exception is None, runner.exception
    for name in ("kopf.objects", "certpolicy.reconcile"):
        logging.getLogger(name).removeHandler(LOG)
        logging.getLogger(name).setLevel(levels[name])


def policy(c: LocalCluster, name: str) -> dict:
    return yaml.safe_load(c.kubectl("get", "certpol", name, "-o", "yaml").stdout)


def condition(obj: dict, type_: str) -> dict:
    return next((c for c in (obj.get("status") or {}).get("conditions") or () if c["type"] == type_), {})


def settled(c: LocalCluster, name: str) -> dict | None:
    obj = policy(c, name)
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"]["generation"] or not condition(obj, "Compliant"):
        return None
    return obj


def state(c: LocalCluster, name: str, check, what: str) -> dict:
    """Wait until the policy's status satisfies ``check``; fail with the last settled status seen
    (its conditions, summary and violations: what a person would read to see why)."""
    last: dict = {}

    def probe() -> dict | None:
        obj = settled(c, name)
        if obj:
            last["status"] = {k: obj["status"].get(k) for k in ("conditions", "summary", "violations")}
        return obj if obj and check(obj) else None

    try:
        return wait_for(probe, timeout=90, what=f"{name}: {what}")
    except WaitTimeout as e:
        raise WaitTimeout(f"{e}; last settled status: {json.dumps(last.get('status'))[:3000]}") from None


#: Commands (argv after the interpreter, from the repository root) whose stdout is applied before an
#: example: the setup its examples/README.md row and header document.
SETUP = {"java-hl7-stores.yaml": [["scripts/hl7_java_stores.py"]]}


def documented_order() -> list[str]:
    text = (EXAMPLES / "README.md").read_text()
    return re.findall(r"^\| \d+ \| \[([\w.-]+\.yaml)\]", text, re.M)


def test_examples_reach_their_documented_state_in_order(demo_cluster, demo_operator):
    files = documented_order()
    assert sorted(files) == sorted(p.name for p in EXAMPLES.glob("*.yaml")), "examples/README.md lists every example"
    c = demo_cluster
    for f in files:
        for setup in SETUP.get(f, ()):  # what the example's "needs" column says to run first
            made = subprocess.run([sys.executable, *setup], cwd=REPO, capture_output=True, text=True, timeout=120)
            assert made.returncode == 0, made.stderr
            out = c.kubectl("apply", "-f", "-", input=made.stdout)
            assert out.returncode == 0, out.stderr
        out = c.kubectl("apply", "-f", str(EXAMPLES / f))
        assert out.returncode == 0, out.stderr

    hl7 = state(c, "hl7-mtls", lambda o: o["status"]["summary"]["violating"] == 2, "2 of 3 violating")
    assert condition(hl7, "Ready")["status"] == "True" and hl7["status"]["summary"]["selected"] == 3
    assert {r for v in hl7["status"]["violations"] for r in v["reasons"]} == {"MissingClientAuth", "DNSNameNotAllowed"}

    uat = state(c, "uat-sans", lambda o: condition(o, "Compliant")["reason"] == "DNSNameNotAllowed", "DNSNameNotAllowed")
    assert [v["name"] for v in uat["status"]["violations"]] == ["adt-tls"]
    prod = state(c, "prod-sans", lambda o: condition(o, "Compliant")["reason"] == "NothingSelected",
                 "NothingSelected")
    assert condition(prod, "Compliant")["status"] == "Unknown"  # judged nothing: not "compliant"

    trust = state(c, "hl7-uat-trust", lambda o: (o["status"].get("bundleTargets") or {}).get("verified", 0) >= 1,
                  "bundle targets verified")
    assert condition(trust, "Degraded")["status"] == "False", condition(trust, "Degraded")
    assert condition(trust, "Compliant")["reason"] == "UnknownRoot"
    cm = yaml.safe_load(c.kubectl("get", "cm", "hl7-ca", "-n", "integration", "-o", "yaml").stdout)
    assert "truststore.p12" in cm["binaryData"] and "BEGIN CERTIFICATE" in cm["data"]["ca.crt"]

    rot = state(c, "hl7-rotation", lambda o: (o["status"].get("issued") or {}).get("ready") == 1
                and o["status"]["summary"]["selected"] == 1 and condition(o, "Compliant")["status"] == "True",
                "issued its leaf and selects it")
    assert condition(rot, "Degraded")["status"] == "False", condition(rot, "Degraded")
    assert condition(rot, "Rotating")["reason"] == "Idle"
    leaf = yaml.safe_load(c.kubectl("get", "secret", "hl7-engine-tls", "-n", "integration", "-o", "yaml").stdout)
    assert leaf["metadata"]["labels"]["app"] == "hl7-engine"  # secretTemplate: the policy selects its own leaf
    assert leaf["metadata"]["labels"]["certpolicy.io/managed-by"] == "hl7-rotation"

    java = state(c, "hl7-java-engine", lambda o: condition(o, "Compliant")["reason"] == "TruststoreMissingAnchor",
                 "the stale peer store found")
    assert condition(java, "Ready")["status"] == "True" and java["status"]["summary"]["selected"] == 3
    (stale,) = java["status"]["violations"]
    assert (stale["kind"], stale["name"], stale["reasons"]) == ("Secret", "hl7-billing-truststore", ["TruststoreMissingAnchor"])
    assert "integration/hl7-java-engine-keystore" in stale["message"]
    engine_ca = c.kubectl("get", "cm", "hl7-java-ca", "-n", "integration", "-o", "jsonpath={.data.ca\\.crt}").stdout
    made = subprocess.run([sys.executable, *SETUP["java-hl7-stores.yaml"][0], "--billing-trusts", "-"], cwd=REPO,
                          input=engine_ca, capture_output=True, text=True, timeout=120)
    assert c.kubectl("apply", "-f", "-", input=made.stdout).returncode == 0
    java = state(c, "hl7-java-engine", lambda o: condition(o, "Compliant")["status"] == "True", "Compliant once fixed")
    assert java["status"]["violations"] == [] and java["status"]["summary"]["selected"] == 3

    # The log says what each evaluation changed, one line per change; kopf's per-event
    # "Handler 'policy_changed' succeeded." (no policy name, ~100 lines) is gone.
    assert any(line.startswith("certpolicy.reconcile: policy hl7-rotation: ") and "Compliant=True" in line
               for line in LOG.lines), LOG.lines[-20:]
    assert not [line for line in LOG.lines if "policy_changed' succeeded" in line]


def test_paused_rotation_reads_paused_in_kubectl_get(demo_cluster, demo_operator):
    """A rotation asked for while paused reads Paused and does not start: no version of the policy
    from the pause until 3 s after Paused shows a step, no -next- CA Secret is created; once
    unpaused the same rotation starts (so it was the pause that held it)."""
    import kubernetes

    c = demo_cluster
    api = kubernetes.config.new_client_from_config(config_file=str(c.kubeconfig))
    custom, core = kubernetes.client.CustomObjectsApi(api), kubernetes.client.CoreV1Api(api)
    c.kubectl("patch", "certpol", "hl7-rotation", "--type", "merge", "-p", '{"spec":{"rotation":{"paused":true}}}')
    paused_rv = custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "hl7-rotation")["metadata"]["resourceVersion"]
    c.kubectl("annotate", "certpol", "hl7-rotation", "certpolicy.io/rotate=paused-1", "--overwrite")

    def column() -> str:
        header, row = c.kubectl("get", "certpol", "hl7-rotation").stdout.splitlines()[:2]
        return dict(zip(header.split(), row.split()))["ROTATION"]

    wait_for(lambda: column() == "Paused", timeout=60, what="ROTATION column Paused")
    versions = events_since(custom.list_cluster_custom_object, GROUP, VERSION, PLURAL, resource_version=paused_rv,
                            seconds=3, field_selector="metadata.name=hl7-rotation")
    assert versions, "the annotation and the Paused status are in the window"
    for _, obj in versions:
        rot = (obj.get("status") or {}).get("rotation") or {}
        assert rot.get("step") is None and rot.get("newCA") is None, rot
        assert "paused-1" not in [h.get("id") for h in rot.get("history") or ()], rot
    secrets = events_since(core.list_namespaced_secret, "certpolicy-system", resource_version=paused_rv, seconds=1)
    assert not [o["metadata"]["name"] for t, o in secrets if "-next-" in o["metadata"]["name"]]
    c.kubectl("patch", "certpol", "hl7-rotation", "--type", "merge", "-p", '{"spec":{"rotation":{"paused":false}}}')

    def started() -> bool:
        rot = (custom.get_cluster_custom_object(GROUP, VERSION, PLURAL, "hl7-rotation").get("status") or {}).get("rotation") or {}
        return rot.get("id") == "paused-1" or "paused-1" in [h.get("id") for h in rot.get("history") or ()]

    wait_for(started, timeout=60, what="the rotation starts once unpaused")


def doc_blocks() -> Iterator[tuple[str, int, str | None, str]]:
    """(file, line, mark, code) for every shell block of the docs."""
    for path in DOC_FILES:
        lines = path.read_text().splitlines()
        for i, line in enumerate(lines):
            if not FENCE.match(line):
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].strip() == "```")
            mark = MARK.match(lines[i - 1]) if i else None
            yield str(path.relative_to(REPO)), i + 1, mark.group(1) if mark else None, "\n".join(lines[i + 1:end])


def test_every_shell_block_in_the_docs_is_marked():
    unmarked = [f"{f}:{line}" for f, line, mark, _ in doc_blocks() if mark is None]
    assert unmarked == [], f"mark these with <!-- runnable --> or <!-- not runnable: why -->: {unmarked}"
    assert sum(1 for *_, mark, _ in doc_blocks() if mark == "runnable") >= 4


#: Doc blocks use fixed ports a reader would (docs/rotation.md's peer listens on 18032): two test
#: runs on one machine take turns.
DOC_LOCK = Path(tempfile.gettempdir()) / "certpolicy-runnable-docs.lock"


@contextlib.contextmanager
def doc_lock(timeout: float = 900) -> Iterator[None]:
    with open(DOC_LOCK, "w") as lock:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{DOC_LOCK} held for {timeout:.0f}s by another test run") from None
                time.sleep(0.5)
        yield


def run_in_one_shell(script: str, env: dict[str, str], log: Path, timeout: float) -> str | None:
    """Run ``script`` in ``bash -e -o pipefail`` in a new session; output to ``log`` (a file, so a
    background process holding it open delays nothing); None when it exits 0, else what went
    wrong. Whatever is left of the session, the background processes the script started
    included, is killed on the way out."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(["bash", "-e", "-o", "pipefail", "-c", script], cwd=REPO, env=env,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        rc = proc.wait(timeout)
        return None if rc == 0 else f"exited {rc}"
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout:.0f}s"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):  # the group outlives its leader while members remain
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(5)


#: Run in the kept demo's shell (test_readme_runs_in_the_shell_make_demo_keep_prints).
KEPT_DEMO_DOCS = ["README.md"]
#: examples/README.md's first command, the one that needs the printed PATH's python (it imports
#: certpolicy), run in that shell too; its blocks run on the in-process demo cluster below.
EXAMPLES_SCRIPT = "python scripts/hl7_java_stores.py > /dev/null"


def test_runnable_doc_commands_work_on_the_demo_cluster(demo_cluster, demo_operator, tmp_path):
    env = dict(os.environ, KUBECONFIG=str(demo_cluster.kubeconfig), METRICS_PORT=str(demo_operator),
               TMPDIR=str(tmp_path), PATH=os.pathsep.join([str(demo_cluster.binaries.kubectl.parent),
                                                           str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    files: dict[str, list[tuple[int, str]]] = {}
    for f, line, mark, code in doc_blocks():
        if mark == "runnable" and f not in KEPT_DEMO_DOCS:
            files.setdefault(f, []).append((line, code))
    failures = []
    # The earlier tests ran examples/README.md on this cluster already. Its Java block generates the
    # engine's keystore from a fresh CA; on a second run that is a renewal to another CA, which the
    # renewal guard rightly reports (RenewalChangedAnchor). Start that example as a first-time reader
    # would: without the policy (its baselines are keyed by the policy's UID) or the keystore.
    demo_cluster.kubectl("delete", "certpol", "hl7-java-engine", "--ignore-not-found", "--wait=false")
    demo_cluster.kubectl("delete", "secret", "hl7-java-engine-keystore", "-n", "integration", "--ignore-not-found")
    with doc_lock():
        for f, blocks in files.items():
            # A marker before each block: the last one in the output names the block that failed.
            script = "\n".join(f"echo \">>> {f}:{line} at $(date +%T)\"\n{code}" for line, code in blocks)
            log = tmp_path / (f.replace("/", "_") + ".log")
            problem = run_in_one_shell(script, env, log, timeout=240 * len(blocks))
            if problem:
                out = log.read_text(errors="replace")
                at = re.findall(r"^>>> (\S+) at ", out, re.M)[-1:] or [f]
                failures.append(f"{at[0]}: {problem}:\n{out[-3000:]}")
    assert not failures, "\n\n".join(failures)


@dataclass(frozen=True)
class KeptDemo:
    proc: subprocess.Popen
    output: Path

    def text(self) -> str:
        return self.output.read_text(errors="replace")


@pytest.fixture(scope="module")
def kept_demo(tmp_path_factory) -> Iterator[KeptDemo]:
    """``certpolicy demo --keep`` as ``make demo KEEP=1`` runs it (the venv's console script, its
    own control plane), until it prints the lines to paste into another terminal."""
    output = tmp_path_factory.mktemp("kept-demo") / "demo.out"
    with open(output, "wb") as out:
        proc = subprocess.Popen([str(Path(sys.executable).parent / "certpolicy"), "demo", "--keep"], cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    demo = KeptDemo(proc, output)
    try:
        wait_for(lambda: proc.poll() is not None or "export METRICS_PORT=" in demo.text(), timeout=600,
                 interval=0.5, what="certpolicy demo --keep to print its exports")
        assert proc.poll() is None, demo.text()[-3000:]
        yield demo
    finally:
        if proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(120)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever a failed stop left in its session
        for left in demo_directories(demo.text()):  # and on disk (asserted on in the SIGTERM test)
            shutil.rmtree(left, ignore_errors=True)


def demo_directories(text: str) -> list[Path]:
    """The control plane's and the operator log's directories, as the demo prints them."""
    found = [re.search(r"^    export KUBECONFIG=(\S+)/kubeconfig$", text, re.M),
             re.search(r"^operator log: (\S+)/operator\.log$", text, re.M)]
    return [Path(m.group(1)) for m in found if m]


def user_path() -> str:
    """The PATH of a reader's fresh terminal: without this venv or any directory holding the
    plugin or ``certpolicy``, so only the demo's exports can provide them (a system kubectl may
    stay: the exported PATH puts the demo's first)."""
    venv = Path(sys.executable).parent

    def foreign(d: str) -> bool:
        return bool(d) and Path(d) != venv and not any((Path(d) / c).exists() for c in ("kubectl-certpolicy", "certpolicy"))

    return os.pathsep.join(d for d in os.environ.get("PATH", "").split(os.pathsep) if foreign(d))


def test_readme_runs_in_the_shell_make_demo_keep_prints(kept_demo, tmp_path):
    exports = re.findall(r"^    (export (\w+)=.*)$", kept_demo.text(), re.M)
    assert [name for _line, name in exports] == ["KUBECONFIG", "PATH", "METRICS_PORT"], kept_demo.text()[-2000:]
    blocks = {f: [(line, code) for g, line, mark, code in doc_blocks() if g == f and mark == "runnable"]
              for f in KEPT_DEMO_DOCS}
    assert all(blocks.values()), blocks
    script = "\n".join(line for line, _name in exports) + "\n" + "\n".join(
        f"echo \">>> {f}:{line} at $(date +%T)\"\n{code}" for f in KEPT_DEMO_DOCS for line, code in blocks[f]
    ) + f"\necho '>>> examples/README.md: {EXAMPLES_SCRIPT}'\n{EXAMPLES_SCRIPT}"
    assert EXAMPLES_SCRIPT.split(" >")[0] in (REPO / "examples" / "README.md").read_text()
    env = {"HOME": os.environ.get("HOME", str(tmp_path)), "LANG": "C.UTF-8", "TMPDIR": str(tmp_path),
           "PATH": user_path()}
    log = tmp_path / "kept-demo-shell.log"
    problem = run_in_one_shell(script, env, log, timeout=240 * sum(len(b) for b in blocks.values()))
    out = log.read_text(errors="replace")
    at = (re.findall(r"^>>> (\S+) at ", out, re.M) or ["the exports"])[-1]
    assert problem is None, f"{at}: {problem}:\n{out[-3000:]}"


def descendants(pid: int) -> set[int]:
    """Every process below ``pid`` (from /proc: parent links)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            parents[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_sigterm_stops_the_kept_demo_and_removes_what_it_started(kept_demo):
    """SIGTERM to `certpolicy demo` left `certpolicy run` (and etcd, kube-apiserver) running and
    their directories behind: Python's default for SIGTERM skips every clean-up."""
    workdir, logdir = demo_directories(kept_demo.text())
    started = descendants(kept_demo.proc.pid)
    commands = {pid: Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                for pid in started if running(pid)}
    assert any("certpolicy.cli run" in c for c in commands.values()), commands
    assert workdir.is_dir() and (logdir / "operator.log").is_file()

    kept_demo.proc.send_signal(signal.SIGTERM)
    assert kept_demo.proc.wait(120) == 0, kept_demo.text()[-3000:]
    assert "stopping the operator and the control plane" in kept_demo.text()
    wait_for(lambda: not [pid for pid in commands if running(pid)], timeout=30,
             what=f"the demo's processes to be gone: {sorted(commands.values())}")
    assert not workdir.exists() and not logdir.exists()

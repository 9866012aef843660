"""Shared fixtures: one real control plane per session, a fresh namespace per test, the operator as
``certpolicy run`` runs it (a process shared by consecutive tests; see tests/operator_process.py).

Integration tests talk to a real kube-apiserver + etcd on loopback (see certpolicy.localcluster);
nothing about the Kubernetes API is mocked. The e2e tests (tests/e2e) run with
CERTPOLICY_TEST_BACKEND=node (a local node, root) or =kind (pytest-kind, Docker).
"""

from __future__ import annotations

import logging
import os
import time
import urllib.request
import uuid

import pytest

import timers
from crd import GROUP, PLURAL, VERSION
from paths import CRD_FILE


def pytest_configure(config: pytest.Config) -> None:
    # Every operator this session runs (processes inherit it) re-checks every few seconds, not 30 s.
    for name, value in timers.OPERATOR_ENV.items():
        os.environ.setdefault(name, value)


#: The files that take longest (each 1.5-3 min of one worker under load, ``--durations``), run first,
#: longest first. ``make test`` hands whole files to its workers (``--dist loadfile``) in collection
#: order: one of these handed out last is a tail one worker runs alone while the other idles (the
#: alphabetical order put test_watch_bounds among the last files). The rest keep their order.
RUN_FIRST = ("test_faults.py", "test_cert_manager_rotation.py", "test_watch_bounds.py", "test_rotation_workloads.py",
             "test_failover.py", "test_examples.py", "test_rotation.py", "test_plugin_leftovers.py",
             "test_enforcement.py", "test_plugin.py", "test_selection_truth.py", "test_check_cluster.py")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        path = str(item.path)
        if f"{os.sep}integration{os.sep}" in path:
            item.add_marker(pytest.mark.integration)
        if f"{os.sep}e2e{os.sep}" in path:
            item.add_marker(pytest.mark.e2e)
    rank = {name: i for i, name in enumerate(RUN_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(RUN_FIRST)))  # stable: a file's tests stay in order


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory):
    """The session's control plane; KUBECONFIG points at it for every client in this process."""
    from certpolicy.localcluster import LocalCluster

    c = LocalCluster()
    c.start()
    old = os.environ.get("KUBECONFIG")
    os.environ["KUBECONFIG"] = str(c.kubeconfig)
    try:
        yield c
    finally:
        if old is None:
            os.environ.pop("KUBECONFIG", None)
        else:
            os.environ["KUBECONFIG"] = old
        c.stop()


@pytest.fixture(scope="session")
def api_client(cluster):
    import kubernetes

    return kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))


@pytest.fixture(scope="session")
def core_v1(api_client):
    import kubernetes

    return kubernetes.client.CoreV1Api(api_client)


@pytest.fixture(scope="session")
def custom_api(api_client):
    import kubernetes

    return kubernetes.client.CustomObjectsApi(api_client)


@pytest.fixture(scope="session")
def crd(cluster):
    """The CRD, applied once and Established."""
    from certpolicy.kube.crd import install_crd

    install_crd(cluster.kubeconfig)
    return CRD_FILE


@pytest.fixture(scope="session")
def operator_namespace(core_v1) -> str:
    from certpolicy.kube.namespaces import ensure_namespace

    ensure_namespace(core_v1, "certpolicy-system")
    return "certpolicy-system"


@pytest.fixture
def namespace(core_v1) -> str:
    """A fresh namespace (with the ServiceAccount Pods need); never waited on for deletion."""
    from certpolicy.kube.namespaces import ensure_namespace

    name = f"t-{uuid.uuid4().hex[:10]}"
    ensure_namespace(core_v1, name, labels={"certpolicy-test": "true"})
    yield name
    # No controller-manager: namespaces never finish deleting. Leave them; names are unique.


@pytest.fixture
def unique_name() -> str:
    return f"p-{uuid.uuid4().hex[:10]}"


AUDIT_SUMMARY: list[str] = []


def _go_tool(name: str):
    """A Go tool (helm, promtool) from the cache, built on first use; a build's cost is reported."""
    from certpolicy.localcluster.binaries import GO_TOOLS, ensure_tool

    cached = (GO_TOOLS[name].cache / name).exists()
    start = time.monotonic()
    path = ensure_tool(name)
    if not cached:
        AUDIT_SUMMARY.append(f"{name} {GO_TOOLS[name].version}: built from the Go module proxy in "
                             f"{time.monotonic() - start:.0f} s (then cached in {path.parent})")
    return path


@pytest.fixture(scope="session")
def helm():
    return _go_tool("helm")


@pytest.fixture(scope="session")
def promtool():
    return _go_tool("promtool")


@pytest.fixture(scope="session")
def cert_manager(cluster, tmp_path_factory):
    """cert-manager's real controllers (tests/certmanager.py) on the session's control plane: its
    CRDs installed, the controller running until the session ends, its exit status then 0. Built by
    ``make binaries`` (or here on first use; the cold build's cost goes in the summary)."""
    import certmanager
    from certpolicy.localcluster.binaries import GO_MAINS

    cm = certmanager.CertManager(cluster, tmp_path_factory.mktemp("cert-manager"))
    try:
        cm.start()
    except BaseException:
        cm.stop()  # started but not working: not left running for the rest of the session
        raise
    finally:
        if cm.build_seconds is not None:
            AUDIT_SUMMARY.append(f"{certmanager.NAME} (cert-manager {GO_MAINS[certmanager.NAME].module_version()}): "
                                 f"built from the Go module proxy in {cm.build_seconds:.0f} s (then cached)")
    yield cm
    alive = cm.alive()
    status = cm.stop()
    assert alive, f"{certmanager.NAME} exited during the session ({status}):\n{cm.log_text()[-3000:]}"
    assert status in (0, -15), f"{certmanager.NAME} exited with {status} on SIGTERM:\n{cm.log_text()[-3000:]}"


#: Summary lines sent by pytest-xdist workers (each has its own control plane, operator and audit).
WORKER_SUMMARIES: list[str] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand its summary lines (audit, figures) to the controller, which prints them."""
    import figures

    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "?")
        workeroutput["certpolicy_summary"] = [f"[{worker}] {line}" for line in AUDIT_SUMMARY + figures.FIGURES]


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:
    WORKER_SUMMARIES.extend(getattr(node, "workeroutput", {}).get("certpolicy_summary", []))


def pytest_terminal_summary(terminalreporter) -> None:
    import figures

    for line in AUDIT_SUMMARY + figures.FIGURES + sorted(WORKER_SUMMARIES, key=lambda line: line.split("]", 1)[0]):
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def audit(cluster, core_v1, custom_api):
    """Secret hygiene for the whole session (see tests/hygiene.py): fails at the end of the
    session if any log line, event, status or metric of any test held key material."""
    import certgen
    import hygiene
    import operator_process

    collected = hygiene.Audit(log_files=operator_process.LOG_FILES)
    yield collected
    keys = list(certgen.GENERATED_KEYS)  # certgen.key() goes through new_key(): included
    for secret in core_v1.list_secret_for_all_namespaces().items:
        keys += hygiene.keys_in_secret_data(secret.data)
    for event in core_v1.list_event_for_all_namespaces().items:
        collected.add(f"event {event.metadata.namespace}/{event.metadata.name}", f"{event.reason} {event.message}")
    for policy in custom_api.list_cluster_custom_object(GROUP, VERSION, PLURAL)["items"]:
        collected.add(f"policy {policy['metadata']['name']}", str(policy))
    assert collected.volume > 0
    leaks = collected.leaks(keys)
    AUDIT_SUMMARY.append(f"hygiene audit: {len(collected.texts)} texts and {len(collected.log_files)} operator log "
                         f"files ({collected.volume / 1e6:.1f} MB) searched for {len(keys)} private keys: "
                         f"{len(leaks)} leaks")
    assert not leaks, f"key material found ({len(keys)} keys checked): {leaks[:10]}"


@pytest.fixture(scope="session")
def shared_operator(cluster, crd, operator_namespace, tmp_path_factory, audit):
    """The ``certpolicy run`` process behind ``operator`` (tests/operator_process.py): one per
    session (per xdist worker), reused by consecutive tests; its exit status at the end must be 0.
    (``audit`` first: it is torn down after this, so the log's last lines are searched too.)"""
    import figures
    import operator_process

    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    shared = operator_process.SharedOperator(cluster, tmp_path_factory.mktemp("operator"), f"suite-{worker}",
                                             timers.OPERATOR_ENV)
    operator_process.SHARED.append(shared)
    yield shared
    operator_process.SHARED.remove(shared)
    status = shared.stop()
    figures.record(f"shared operator ({worker}): started {shared.starts} times, {shared.start_seconds:.1f} s "
                   f"starting (until it led and its watches were synced), {shared.stop_seconds:.1f} s stopping")
    assert status in (None, 0), f"the shared operator exited with {status} on SIGTERM"


@pytest.fixture(autouse=True)
def _no_shared_operator_unless_asked(request):
    """A test that does not ask for ``operator`` runs without it: it may start its own operator
    (same Lease: the shared one would lead) or expect none to be running."""
    import operator_process

    if "operator" not in request.fixturenames:
        for shared in operator_process.SHARED:
            status = shared.stop()
            assert status in (None, 0), f"the shared operator exited with {status} on SIGTERM"


@pytest.fixture
def operator(request, shared_operator, audit):
    """The operator as users run it: ``certpolicy run`` (Lease, write gate, inventory before kopf),
    a separate process logging at DEBUG to a file the hygiene audit reads. Shared by consecutive
    tests (see tests/operator_process.py); this test gets it leading, with its watches synced, and
    sees its log from now on (``operator.log_text()``, ``operator.log_records()``) and its /metrics
    (``operator.scrape()``). ``@pytest.mark.operator_env(NAME="value")`` runs it with more
    environment (restarted if it ran with other). It must still run when the test ends."""
    marker = request.node.get_closest_marker("operator_env")
    run = shared_operator.run(dict(marker.kwargs) if marker else {})
    yield run
    proc = run.process.proc
    if proc is None or proc.poll() is not None:
        pytest.fail(f"the operator exited ({proc.returncode if proc else None}) during the test:\n"
                    f"{run.log_text()[-3000:]}")
    audit.add("metrics", run.scrape())


@pytest.fixture
def operator_in_process(cluster, crd, operator_namespace, caplog, monkeypatch, audit):
    """The operator's handlers in this process (kopf.testing.KopfRunner, kopf's own CLI: no Lease,
    no write gate), logs captured at DEBUG by caplog. Only for tests that inject a fault into the
    operator's code (``monkeypatch.setattr`` on a stage or a constant): a process cannot be
    patched. Everything else uses ``operator``, the shipped entry point."""
    from kopf.testing import KopfRunner

    from certpolicy import metrics
    from certpolicy.localcluster.cluster import free_port

    monkeypatch.setenv("CERTPOLICY_METRICS_PORT", "0")  # a free port: parallel runs never collide
    caplog.set_level(logging.DEBUG, logger="kopf")
    caplog.set_level(logging.DEBUG, logger="certpolicy")
    args = ["run", "--all-namespaces", "--standalone", f"--liveness=http://127.0.0.1:{free_port()}/healthz",
            "-m", "certpolicy.handlers.registry"]
    with KopfRunner(args, timeout=60) as runner:
        yield runner
        if metrics._server:
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics._server[1]}/metrics", timeout=5) as resp:  # noqa: S310
                audit.add("metrics", resp.read().decode())
    audit.add("operator log", caplog.text)
    assert runner.exception is None, runner.exception


@pytest.fixture
def policies(custom_api, crd, audit):
    """Create CertificatePolicies for one test; they are deleted (finalizer included) afterwards,
    so a policy of one test never selects the Secrets of another."""
    from kubernetes.client import ApiException

    created: list[str] = []

    def create(body: dict) -> dict:
        obj = custom_api.create_cluster_custom_object(GROUP, VERSION, PLURAL, body)
        created.append(obj["metadata"]["name"])
        return obj

    yield create
    for name in created:
        try:  # the status as the test left it, for the hygiene audit
            audit.add(f"policy {name}", str(custom_api.get_cluster_custom_object(
                GROUP, VERSION, PLURAL, name)))
        except ApiException as e:
            if e.status != 404:
                raise
        for call in (
            # B023: each lambda is called within this iteration, while `name` is still this one
            lambda: custom_api.delete_cluster_custom_object(GROUP, VERSION, PLURAL, name),  # noqa: B023
            lambda: custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name,  # noqa: B023
                                                           {"metadata": {"finalizers": None}}),
        ):
            try:
                call()
            except ApiException as e:
                if e.status != 404:
                    raise

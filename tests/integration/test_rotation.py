"""The five-step CA rotation on a real API server, with the invariant checked at every recorded instant."""

from __future__ import annotations

import uuid

import pytest
from rotation_support import Recorder, bundle_fingerprints, check_invariant, watch_versions

from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.kube.rawapi import RawClient
from crd import GROUP, PLURAL, VERSION
from kubewait import events_since, wait_for
from operator_process import OperatorProcess


@pytest.fixture
def rotation_setup(core_v1, policies, unique_name):
    label = uuid.uuid4().hex[:8]
    namespaces = []
    for _ in range(2):
        ns = f"t-{uuid.uuid4().hex[:10]}"
        ensure_namespace(core_v1, ns, labels={"rot": label})
        namespaces.append(ns)
    leaves = [{"secretName": f"leaf-{i}", "namespace": ns, "dnsNames": [f"leaf-{i}.rot.test"]}
              for i, ns in enumerate(namespaces)]
    body = {
        "apiVersion": f"{GROUP}/{VERSION}", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
        "spec": {
            "selector": {"namespaceSelector": {"matchLabels": {"rot": label}}},
            "requirements": {"extendedKeyUsages": ["serverAuth", "clientAuth"]},
            "ca": {"secretName": f"{unique_name}-ca"},
            "trustBundles": [{"configMap": {"name": "rot-ca"}, "namespaceSelector": {"matchLabels": {"rot": label}}}],
            "issuance": leaves,
            "rotation": {"propagationDelay": "0s"},
        },
    }
    return body, namespaces, {leaf["secretName"] for leaf in leaves}


def get(custom_api, name):
    return custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL, name)


def settled(custom_api, name):
    st = get(custom_api, name).get("status") or {}
    return st if (st.get("issued") or {}).get("ready") == 2 and (st.get("bundleTargets") or {}).get("verified") == 2 \
        else None


def test_full_rotation_keeps_every_leaf_trusted_by_every_bundle(
        operator, api_client, custom_api, core_v1, policies, unique_name, rotation_setup):
    body, namespaces, leaf_names = rotation_setup
    recorder = Recorder(RawClient(api_client), namespaces, "rot-ca", leaf_names).start()
    try:
        policies(body)
        st = wait_for(lambda: settled(custom_api, unique_name), timeout=30, what="CA, bundles and leaves in place")
        old_ca = st["ca"]["fingerprint"]

        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                               {"metadata": {"annotations": {"certpolicy.io/rotate": "r1"}}})

        def completed():
            rot = (get(custom_api, unique_name).get("status") or {}).get("rotation") or {}
            hist = rot.get("history") or []
            return rot if not rot.get("id") and hist and hist[0].get("outcome") == "Completed" else None

        rot = wait_for(completed, timeout=90, what="rotation completed")
        new_ca = rot["history"][0]["newCA"]
        assert new_ca and new_ca != old_ca
        status = get(custom_api, unique_name)["status"]
        assert status["ca"]["fingerprint"] == new_ca
        # Every target now holds the new CA only (of ours); every leaf chains to the new CA.
        wait_for(lambda: all(bundle_fingerprints(core_v1.read_namespaced_config_map("rot-ca", ns).to_dict())
                             == {new_ca} for ns in namespaces), timeout=30, what="old CA removed everywhere")
        history = {h["fingerprint"]: h["state"] for h in status["ca"]["history"]}
        assert history[old_ca] == "retired" and history[new_ca] == "active"
        rotating = next(c for c in status["conditions"] if c["type"] == "Rotating")
        assert rotating["status"] == "False" and rotating["reason"] == "Completed"
        reasons = [e.reason for e in core_v1.list_namespaced_event("default").items
                   if e.involved_object.name == unique_name]
        assert len([r for r in reasons if r]) >= 5, reasons
    finally:
        recorder.stop()
    checked, violations = check_invariant(recorder, targets=2)
    assert violations == []
    assert checked >= 6, f"only {checked} instants recorded"


# ---- crash and resume ------------------------------------------------------------------------------
import threading  # noqa: E402
import time  # noqa: E402


class CASecretCounter:
    """Counts the distinct CA Secrets created for each rotation id (GenerateNewCA must be once-only)."""

    def __init__(self, raw, namespace):
        self.by_rotation: dict[str, set[str]] = {}
        self.watcher = watch_versions(raw, f"/api/v1/namespaces/{namespace}/secrets", self._seen, "ca-counter")

    def _seen(self, etype, obj):
        meta = obj.get("metadata") or {}
        rid = (meta.get("annotations") or {}).get("certpolicy.io/rotation")
        if etype != "DELETED" and rid:
            self.by_rotation.setdefault(rid, set()).add(meta["uid"])

    def stop(self):
        self.watcher.stop()


def put_team_leaf(core_v1, namespace, ca_namespace, ca_secret):
    """A leaf the operator does not manage, issued by whatever CA the CA Secret holds now."""
    import base64

    from certpolicy.pki.issue import issue_leaf, load_key_pair

    ca = core_v1.read_namespaced_secret(ca_secret, ca_namespace)
    pair = load_key_pair(base64.b64decode(ca.data["tls.crt"]), base64.b64decode(ca.data["tls.key"]))
    leaf = issue_leaf(pair, dns_names=["team.rot.test"])
    data = {"tls.crt": base64.b64encode(leaf.cert_pem).decode(), "tls.key": base64.b64encode(leaf.key_pem).decode()}
    try:
        core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "team-tls"}, "type": "kubernetes.io/tls",
                                                     "data": data})
    except Exception:  # noqa: BLE001 - exists: replace its certificate
        core_v1.patch_namespaced_secret("team-tls", namespace, {"data": data})


def disrupt_during_each_step(custom_api, core_v1, name: str, team_namespace: str, operator_namespace: str,
                             prefix: str, disrupt) -> list[int]:
    """Five rotations of policy ``name``; the n-th is disrupted (``disrupt()``) once it has reached
    step n, then must complete. For steps 4 and 5 an unmanaged leaf from the old CA holds step 4
    until its owner renews it from the new CA. Returns the step each disruption landed in."""
    landed = []
    ca_secret = f"{name}-ca"

    def rotation() -> dict:
        return (get(custom_api, name).get("status") or {}).get("rotation") or {}

    for target_step in range(1, 6):
        rid = f"{prefix}-{target_step}"
        if target_step >= 4:
            put_team_leaf(core_v1, team_namespace, operator_namespace, ca_secret)
        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, name,
                                               {"metadata": {"annotations": {"certpolicy.io/rotate": rid}}})

        def at_step(step: int, rid=rid):
            rot = rotation()
            if rot.get("id") == rid and (rot.get("step") or 0) >= step:
                return rot["step"]
            hist = rot.get("history") or []
            return 6 if hist and hist[0]["id"] == rid else None  # 6: already finished, too fast to catch

        try:
            step = wait_for(lambda: at_step(min(target_step, 4)), timeout=60, interval=0.01,  # noqa: B023
                            what=f"rotation {rid} at step {target_step}")
            if target_step == 5:  # the owner renews from the new CA; catch the last step
                put_team_leaf(core_v1, team_namespace, operator_namespace, ca_secret)
                step = wait_for(lambda: at_step(5), timeout=60, interval=0.005, what="rotation in step 5")
        except AssertionError:
            st = get(custom_api, name)["status"]
            raise AssertionError(f"{st.get('rotation')} {st.get('conditions')}") from None
        disrupt()
        landed.append(step)
        if target_step == 4:
            wait_for(lambda: rotation().get("step") == 4, timeout=60, what="still awaiting the unmanaged leaf")
            put_team_leaf(core_v1, team_namespace, operator_namespace, ca_secret)

        def finished(rid=rid):
            rot = rotation()
            hist = rot.get("history") or []
            return not rot.get("id") and hist and hist[0]["id"] == rid and hist[0]["outcome"] == "Completed"

        wait_for(finished, timeout=120, what=f"rotation {rid} completed after the disruption")
        if target_step >= 4:
            core_v1.delete_namespaced_secret("team-tls", team_namespace)  # decommissioned
    return landed


def assert_each_rotation_sound(recorder, counter, prefix: str) -> int:
    """Each rotation generated exactly one new CA, however often its step ran again, and the
    invariant held at every recorded instant. Returns the number of instants checked."""
    for target_step in range(1, 6):
        assert len(counter.by_rotation.get(f"{prefix}-{target_step}", ())) == 1, counter.by_rotation
    checked, violations = check_invariant(recorder, targets=2)
    assert violations == []
    assert checked > 10
    return checked


def test_operator_killed_during_each_step_resumes_and_completes(
        cluster, crd, operator_namespace, api_client, custom_api, core_v1, policies, unique_name,
        rotation_setup, tmp_path):
    body, namespaces, leaf_names = rotation_setup
    body["spec"]["rotation"]["propagationDelay"] = "2s"  # keeps step 2 observable
    leaf_names.add("team-tls")  # an unmanaged leaf: holds step 4 (AwaitLeaves) until its owner replaces it
    raw = RawClient(api_client)
    recorder = Recorder(raw, namespaces, "rot-ca", leaf_names).start()
    counter = CASecretCounter(raw, operator_namespace)
    op = OperatorProcess(cluster, tmp_path / "operator.log")

    def crash():
        op.kill()
        op.start()

    try:
        op.start()
        policies(body)
        wait_for(lambda: settled(custom_api, unique_name), timeout=60, what="CA, bundles and leaves in place")
        killed_at = disrupt_during_each_step(custom_api, core_v1, unique_name, namespaces[0], operator_namespace,
                                             "crash", crash)
    finally:
        op.stop()
        recorder.stop()
        counter.stop()
    checked = assert_each_rotation_sound(recorder, counter, "crash")
    # Killed during a running rotation every time (6 would mean it had already finished).
    assert all(1 <= s <= 5 for s in killed_at), killed_at
    assert killed_at[:4] == [1, 2, 3, 4], f"kills landed in steps {killed_at}"
    print(f"operator killed during steps {killed_at}; invariant checked at {checked} instants")


# ---- the probe gate and abort ----------------------------------------------------------------------
import socket  # noqa: E402
import ssl  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import certgen  # noqa: E402


class MTLSServer:
    """A TLS server on loopback that requires a client certificate from the CAs it trusts."""

    def __init__(self, trusted_pem: bytes):
        self.server_ca = certgen.root("probe server CA")  # a third CA: neither the policy's old nor new
        self.server_cert = certgen.leaf(self.server_ca, "localhost", dns_names=["localhost"])
        self.dir = tempfile.TemporaryDirectory()
        d = Path(self.dir.name)
        (d / "c.pem").write_bytes(self.server_cert.pem)
        (d / "k.pem").write_bytes(self.server_cert.key_pem())
        self.ctx = self._context(trusted_pem)
        self.trusted_pem = trusted_pem
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.rejected = 0
        self._stop = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _context(self, trusted_pem: bytes) -> ssl.SSLContext:
        d = Path(self.dir.name)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(d / "c.pem"), str(d / "k.pem"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=trusted_pem.decode())
        return ctx

    def trust(self, trusted_pem: bytes) -> None:
        self.ctx = self._context(trusted_pem)
        self.trusted_pem = trusted_pem

    def serve(self, cert_pem: bytes, key_pem: bytes) -> None:
        """Present another certificate from the next handshake on (a server reloading its leaf)."""
        d = Path(self.dir.name)
        (d / "c.pem").write_bytes(cert_pem)
        (d / "k.pem").write_bytes(key_pem)
        self.ctx = self._context(self.trusted_pem)

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            with self.ctx.wrap_socket(conn, server_side=True) as tls:
                self.accepted += 1
                tls.settimeout(3)
                try:
                    tls.recv(1)  # hold the connection until the client goes away
                except (OSError, ssl.SSLError):
                    pass
        except (ssl.SSLError, OSError):
            self.rejected += 1

    def close(self):
        self._stop.set()
        self.sock.close()
        self.dir.cleanup()


def _ca_pem(core_v1, ns, name) -> bytes:
    import base64

    return base64.b64decode(core_v1.read_namespaced_secret(name, ns).data["tls.crt"])


def _rotation(custom_api, name) -> dict:
    return (get(custom_api, name).get("status") or {}).get("rotation") or {}


@pytest.mark.operator_env(CERTPOLICY_PROBE_ALLOW="127.0.0.1/32")  # --probe-allow: the default is *.svc only
def test_probe_gate_holds_until_the_peer_trusts_the_new_ca_then_abort_rolls_back(
        operator, operator_namespace, custom_api, core_v1, policies, unique_name, rotation_setup):
    body, namespaces, _ = rotation_setup
    policies(body)
    wait_for(lambda: settled(custom_api, unique_name), timeout=30, what="CA, bundles and leaves in place")
    old_pem = _ca_pem(core_v1, operator_namespace, f"{unique_name}-ca")
    settled_policy = get(custom_api, unique_name)
    old_ca, policy_rv = settled_policy["status"]["ca"]["fingerprint"], settled_policy["metadata"]["resourceVersion"]
    ca_rv = core_v1.read_namespaced_secret(f"{unique_name}-ca", operator_namespace).metadata.resource_version
    leaf_versions = {ns: core_v1.read_namespaced_secret(f"leaf-{i}", ns).metadata.resource_version
                     for i, ns in enumerate(namespaces)}
    server = MTLSServer(old_pem)  # a partner that has not been told about the new CA
    try:
        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name, {
            "metadata": {"annotations": {"certpolicy.io/rotate": "gate"}},
            "spec": {"rotation": {"probes": [{"host": "127.0.0.1", "port": server.port, "timeout": "2s"}]}}})
        rot = wait_for(lambda: (r := _rotation(custom_api, unique_name)).get("probes") and r, timeout=30,
                       what="the probe ran")
        assert rot["step"] == 2 and rot["phase"] == "VerifyBundles"
        assert rot["probes"][0]["accepted"] is False
        assert server.rejected >= 1 and server.accepted == 0
        # Held: the CA is not promoted and no leaf was re-issued -- not only now, but at any moment
        # from before the rotation began until 3 s after the refused probe (watches from the
        # resourceVersions read before it: every write in between is replayed).
        ca_writes = events_since(core_v1.list_namespaced_secret, operator_namespace, resource_version=ca_rv,
                                 seconds=3, field_selector=f"metadata.name={unique_name}-ca")
        assert ca_writes == [], [(t, o["metadata"]["resource_version"]) for t, o in ca_writes]
        for i, ns in enumerate(namespaces):
            leaf_writes = events_since(core_v1.list_namespaced_secret, ns, resource_version=leaf_versions[ns],
                                       seconds=1, field_selector=f"metadata.name=leaf-{i}")
            assert leaf_writes == [], (ns, [t for t, _ in leaf_writes])
        policy_events = events_since(custom_api.list_cluster_custom_object, GROUP, VERSION, PLURAL,
                                     resource_version=policy_rv, seconds=1,
                                     field_selector=f"metadata.name={unique_name}")
        assert policy_events, "the rotation's own status writes are in the window"
        for _, obj in policy_events:
            st = obj.get("status") or {}
            assert st["ca"]["fingerprint"] == old_ca, st["ca"]
            assert (st.get("rotation") or {}).get("step") in (None, 1, 2), st.get("rotation")
        new_ca = rot["newCA"]
        assert all(bundle_fingerprints(core_v1.read_namespaced_config_map("rot-ca", ns).to_dict())
                   == {old_ca, new_ca} for ns in namespaces)

        # Abort before step 3: every bundle goes back to the old CA alone.
        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                               {"spec": {"rotation": {"abort": True}}})

        def aborted():
            r = _rotation(custom_api, unique_name)
            hist = r.get("history") or []
            return not r.get("id") and hist and hist[0]["outcome"] == "Aborted"

        wait_for(aborted, timeout=30, what="rotation aborted")
        wait_for(lambda: all(bundle_fingerprints(core_v1.read_namespaced_config_map("rot-ca", ns).to_dict())
                             == {old_ca} for ns in namespaces), timeout=30, what="bundles rolled back")
        assert get(custom_api, unique_name)["status"]["ca"]["fingerprint"] == old_ca
    finally:
        server.close()


def _leaf_pair(core_v1, ns: str, name: str) -> tuple[bytes, bytes]:
    import base64

    data = core_v1.read_namespaced_secret(name, ns).data
    return base64.b64decode(data["tls.crt"]), base64.b64decode(data["tls.key"])


def _completed(custom_api, name):
    r = _rotation(custom_api, name)
    hist = r.get("history") or []
    return not r.get("id") and hist and hist[0]["outcome"] == "Completed" and r


@pytest.mark.operator_env(CERTPOLICY_PROBE_ALLOW="127.0.0.1/32")  # --probe-allow: the default is *.svc only
def test_probe_gate_holds_step_4_while_the_endpoint_serves_an_old_ca_leaf(
        operator, operator_namespace, custom_api, core_v1, policies, unique_name, rotation_setup):
    """The endpoint serves a leaf from the policy's CA (the old one, issued before the rotation):
    step 4 holds and names it in probesServingOldCA until it serves its re-issued leaf."""
    body, namespaces, _ = rotation_setup
    policies(body)
    wait_for(lambda: settled(custom_api, unique_name), timeout=30, what="CA, bundles and leaves in place")
    old_pem = _ca_pem(core_v1, operator_namespace, f"{unique_name}-ca")
    server = MTLSServer(old_pem)
    server.serve(*_leaf_pair(core_v1, namespaces[0], "leaf-0"))  # a leaf from the old CA
    try:
        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name, {
            "metadata": {"annotations": {"certpolicy.io/rotate": "gate-pass"}},
            "spec": {"rotation": {"probes": [{"host": "127.0.0.1", "port": server.port, "timeout": "2s"}]}}})
        rot = wait_for(lambda: (r := _rotation(custom_api, unique_name)).get("probes") and r, timeout=30,
                       what="the first probe ran")
        assert rot["probes"][0]["accepted"] is False and rot["step"] == 2
        # The partner installs the distributed bundle (old + new): the next probe round passes.
        server.trust(core_v1.read_namespaced_config_map("rot-ca", namespaces[0]).data["ca.crt"].encode())

        # Step 4 holds while the endpoint still *serves* a certificate from the old CA, and says so.
        rot = wait_for(lambda: (r := _rotation(custom_api, unique_name)).get("probesServingOldCA") and r,
                       timeout=60, what="step 4 names the endpoint serving a leaf from the old CA")
        probe_id = f"127.0.0.1:{server.port}"
        assert rot["step"] == 4 and rot["probesServingOldCA"] == [probe_id], rot
        assert not rot.get("probesServingOtherCA")
        assert f"{probe_id} (serves a leaf from the old CA" in rot["message"]
        record = next(p for p in rot["probes"] if p["probe"] == probe_id)
        assert record["servedCA"] == rot["oldCA"] and record["accepted"] is True
        # Still held through the next probe rounds (CERTPOLICY_PROBE_RETRY: 2 s in the suite): watched.
        policy_rv = get(custom_api, unique_name)["metadata"]["resourceVersion"]
        later = events_since(custom_api.list_cluster_custom_object, GROUP, VERSION, PLURAL,
                             resource_version=policy_rv, seconds=3, field_selector=f"metadata.name={unique_name}")
        assert all(((o.get("status") or {}).get("rotation") or {}).get("step") == 4 for _, o in later)
        # The server reloads its own leaf, re-issued by the operator from the new CA.
        server.serve(*_leaf_pair(core_v1, namespaces[0], "leaf-0"))
        wait_for(lambda: _completed(custom_api, unique_name), timeout=90,
                 what="rotation completed after the endpoint served its new leaf")
        assert server.accepted >= 1
    finally:
        server.close()


@pytest.mark.operator_env(CERTPOLICY_PROBE_ALLOW="127.0.0.1/32")
def test_a_partner_serving_a_third_cas_certificate_lets_the_rotation_complete(
        operator, operator_namespace, custom_api, core_v1, policies, unique_name, rotation_setup):
    """The HL7 partner link: the partner's server certificate comes from its own CA, only the
    client certificates from the policy's CA. Step 2 waits until it accepts the new CA's canary;
    step 4 does not wait for a served leaf from the new CA (it never comes) and lists the endpoint
    in probesServingOtherCA; the rotation completes, and with the old CA removed from the bundle
    the partner installs, a client presenting its re-issued leaf still completes a handshake."""
    body, namespaces, _ = rotation_setup
    policies(body)
    wait_for(lambda: settled(custom_api, unique_name), timeout=30, what="CA, bundles and leaves in place")
    server = MTLSServer(_ca_pem(core_v1, operator_namespace, f"{unique_name}-ca"))  # serves a third CA's leaf
    probe_id = f"127.0.0.1:{server.port}"
    seen_other: list[dict] = []
    try:
        custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name, {
            "metadata": {"annotations": {"certpolicy.io/rotate": "partner"}},
            "spec": {"rotation": {"probes": [{"host": "127.0.0.1", "port": server.port, "timeout": "2s"}]}}})
        wait_for(lambda: (r := _rotation(custom_api, unique_name)).get("probes") and r["step"] == 2,
                 timeout=30, what="step 2 probed the partner")
        server.trust(core_v1.read_namespaced_config_map("rot-ca", namespaces[0]).data["ca.crt"].encode())

        def done_noting():
            r = _rotation(custom_api, unique_name)
            if r.get("probesServingOtherCA"):
                seen_other.append(r)
            return _completed(custom_api, unique_name)

        rot = wait_for(done_noting, timeout=90, what="rotation completed with the partner serving its own CA")
        entry = rot["history"][0]
        bundle = core_v1.read_namespaced_config_map("rot-ca", namespaces[0]).data["ca.crt"]
        assert bundle_fingerprints(core_v1.read_namespaced_config_map("rot-ca", namespaces[0]).to_dict()) \
            == {entry["newCA"]}
        # The partner takes the bundle without the old CA; the re-issued client leaf still gets in,
        # and the client still verifies the partner by the partner's own CA.
        server.trust(bundle.encode())
        cert_pem, key_pem = _leaf_pair(core_v1, namespaces[0], "leaf-0")
        accepted = server.accepted
        with tempfile.TemporaryDirectory() as d:
            Path(d, "c.pem").write_bytes(cert_pem)
            Path(d, "k.pem").write_bytes(key_pem)
            client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            client.load_verify_locations(cadata=server.server_ca.pem.decode())
            client.check_hostname = False
            client.load_cert_chain(str(Path(d, "c.pem")), str(Path(d, "k.pem")))
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock, \
                client.wrap_socket(sock) as tls:
            tls.sendall(b"x")  # TLS 1.3: a refused client certificate surfaces on the first exchange
        # The server counts a handshake as accepted only once it verified the client certificate.
        wait_for(lambda: server.accepted > accepted, timeout=10, what="the partner accepted the re-issued leaf")
    finally:
        server.close()
    # While it waited at step 4 (when it waited at all), status named the partner as serving
    # another CA, never as serving the old one.
    for r in seen_other:
        assert r["probesServingOtherCA"] == [probe_id] and not r.get("probesServingOldCA"), r


# ---- CA identity and the truststore's bare alias ----------------------------------------------------
import re  # noqa: E402


def _keytool_aliases(store: bytes) -> dict[str, str]:
    """alias -> sha256:<hex>, as Java's ``keytool -list -v`` reads the PKCS#12 truststore."""
    listing = certgen.keytool_list(store, "", "PKCS12")
    found = re.findall(r"^Alias name: (\S+)\n(?:.*\n)*?\s*SHA256: ([0-9A-F:]+)", listing, flags=re.M)
    return {alias: "sha256:" + fp.replace(":", "").lower() for alias, fp in found}


@certgen.needs_keytool
def test_each_ca_has_its_own_subject_and_the_bare_alias_names_the_issuing_ca_at_every_step(
        operator, custom_api, core_v1, policies, unique_name, rotation_setup):
    import base64

    body, namespaces, _ = rotation_setup
    body["spec"]["trustBundles"][0]["formats"] = {"pkcs12": {"key": "truststore.p12", "alias": "rot"}}
    # Steps 2 and 4 last a few seconds each, so every step is sampled.
    body["spec"]["rotation"] = {"propagationDelay": "4s", "leafPropagationDelay": "4s"}
    policies(body)
    st = wait_for(lambda: settled(custom_api, unique_name), timeout=30, what="CA, bundles and leaves in place")
    old_ca, old_subject = st["ca"]["fingerprint"], st["ca"]["subject"]
    generation = re.compile(rf"CN={re.escape(unique_name)} CA \d{{4}}-\d{{2}}-\d{{2}} [0-9a-f]{{6}}")
    assert generation.search(old_subject), old_subject

    def store() -> dict[str, str]:
        cm = core_v1.read_namespaced_config_map("rot-ca", namespaces[0])
        return _keytool_aliases(base64.b64decode(cm.binary_data["truststore.p12"]))

    assert store() == {"rot": old_ca}
    custom_api.patch_cluster_custom_object(GROUP, VERSION, PLURAL, unique_name,
                                           {"metadata": {"annotations": {"certpolicy.io/rotate": "alias"}}})
    seen: dict[int, dict[str, str]] = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        before = _rotation(custom_api, unique_name)
        aliases = store()
        after = _rotation(custom_api, unique_name)
        step = before.get("step")
        if not before.get("id") and (before.get("history") or [{}])[0].get("id") == "alias":
            seen[6] = aliases  # completed
            break
        if step is not None and step == after.get("step") and before.get("newCA"):
            new_ca = before["newCA"]
            if step <= 2:  # the incoming CA has its own alias; the bare one stays on the issuing CA
                assert aliases["rot"] == old_ca, (step, aliases)
            if step == 3:  # promotion happens within this step: both CAs held, the bare alias on one of them
                assert set(aliases.values()) == {old_ca, new_ca} and aliases["rot"] in (old_ca, new_ca), (step, aliases)
                bare, other = (old_ca, new_ca) if aliases["rot"] == old_ca else (new_ca, old_ca)
                assert aliases == {"rot": bare, f"rot-{other[7:19]}": other}, (step, aliases)
            if step >= 4:  # promoted at step 3: the bare alias follows
                assert aliases["rot"] == new_ca, (step, aliases)
            seen.setdefault(step, aliases)
        time.sleep(0.2)  # sampling interval, not synchronisation: each sample is checked on its own
    assert 6 in seen, "rotation did not complete"
    new_ca = get(custom_api, unique_name)["status"]["ca"]["fingerprint"]
    assert 2 in seen and 4 in seen, sorted(seen)
    assert seen[2] == {"rot": old_ca, f"rot-{new_ca[7:19]}": new_ca}
    assert seen[4] == {"rot": new_ca, f"rot-{old_ca[7:19]}": old_ca}
    assert seen[6] == {"rot": new_ca}
    new_subject = get(custom_api, unique_name)["status"]["ca"]["subject"]
    assert generation.search(new_subject) and new_subject != old_subject

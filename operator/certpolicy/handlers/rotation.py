"""Driving the five-step CA rotation: observe the cluster, ask the pure machine, perform its actions.

The machine (``certpolicy.rotation``) decides; this module only reads and writes. Every
observation is a fresh read from the API (CA Secrets, each bundle target read back on its own,
the leaves in scope), so progress never rests on "the write succeeded". Actions are idempotent:
a restarted operator repeats the last decision's actions harmlessly (create-only CA Secrets,
merges that add what is present already, re-issues only of leaves still on the old CA).
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import socket
import ssl
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from kubernetes.client import ApiException

from certpolicy.handlers.bundles import TargetRef, _current_content, distribute, entry_namespaces, target_id
from certpolicy.handlers.ca import CAInfo as CAPair
from certpolicy.handlers.ca import load_ca_secret
from certpolicy.handlers.issuance import RateLimiter, issue_all
from certpolicy.handlers.rotation_memory import RotationMemory
from certpolicy.handlers.settings import operator_namespace
from certpolicy.inventory.inventory import Inventory
from certpolicy.inventory.selection import select
from certpolicy.kube.events import EventRecorder, ObjectRef
from certpolicy.kube.managed import NotManaged, b64, read, write_managed_secret
from certpolicy.kube.ownership import ROLE_CA, Owner
from certpolicy.kube.rawapi import RawClient
from certpolicy.pki.bundle import read_bundle
from certpolicy.pki.chain import verify_chain
from certpolicy.pki.fingerprint import short
from certpolicy.pki.issue import create_ca, issue_leaf
from certpolicy.pki.truststore import read_truststore
from certpolicy.policy.report import Problem
from certpolicy.policy.spec import Requirements, parse_duration
from certpolicy.rotation import (
    CAInfo, CARef, Decision, DeleteCASecret, EmitEvent, GenerateNewCA, Leaf, Observation, Probe, ProbeResult,
    PromoteNewCA, ReissueLeaf, RotationSettings, RotationState, RunProbes, UpdateBundles, secrets_to_observe,
)
from certpolicy.rotation.triggers import FORCE_ANNOTATION, ROTATE_ANNOTATION

log = logging.getLogger("certpolicy.rotation")


@dataclass
class RotationOutcome:
    decision: Decision | None
    problems: list[Problem] = field(default_factory=list)
    new_ca: CAPair | None = None  # the rotation's new CA while it is trusted but not yet active
    writes: int = 0


# ---- observation ------------------------------------------------------------------------------------

def target_ids(inventory: Inventory, entries: Sequence[Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any], str]]:
    """Every bundle target as (id ``namespace/kind/name/key``, entry, namespace)."""
    out = []
    for entry in entries:
        ref = TargetRef.of(entry)
        for ns in entry_namespaces(inventory, entry):
            out.append((target_id(ref.kind, ns, ref.name, ref.key), entry, ns))
    return out


def _read_target(raw: RawClient, entry: Mapping[str, Any], ns: str, password: bytes | None) -> frozenset[str] | None:
    ref = TargetRef.of(entry)
    kind = ref.kind
    try:
        obj = read(raw, kind, ns, ref.name)
    except ApiException:
        return None
    pem, data, binary = _current_content(kind, obj, ref.key)
    fps = frozenset(read_bundle(pem).fingerprint_set) if pem is not None else frozenset()
    p12 = (entry.get("formats") or {}).get("pkcs12")
    if p12 and obj is not None:
        store = (data if kind == "Secret" else binary).get(p12["key"])
        entries = read_truststore(base64.b64decode(store), password) if store else None
        # A CA counts only when every format of the target holds it.
        fps = fps & frozenset(e.fingerprint for e in entries) if entries is not None else frozenset()
    return fps


def observe(raw: RawClient, inventory: Inventory, spec: Mapping[str, Any], annotations: Mapping[str, str],
            state: RotationState, settings: RotationSettings, memory: RotationMemory, now: dt.datetime,
            passwords: Mapping[int, bytes | None], owner: Owner) -> tuple[Observation, dict[str, CAPair]]:
    pairs: dict[str, CAPair] = {}
    cas: dict[str, CAInfo | None] = {}
    for name in secrets_to_observe(state, settings):
        pair, _problem = load_ca_secret(raw, name, owner)
        if pair is not None:
            pairs[name] = pair
            cas[name] = CAInfo(pair.fingerprint, pair.key_pair.cert.not_valid_after_utc)
        else:
            cas[name] = None
    targets = {}
    for i, entry in enumerate(spec.get("trustBundles") or ()):
        for tid, e, ns in target_ids(inventory, [entry]):
            targets[tid] = _read_target(raw, e, ns, passwords.get(i, b""))
    anchors = [p.key_pair.cert for p in pairs.values()]
    leaves = []
    managed = {(i["namespace"], i["secretName"]) for i in spec.get("issuance") or ()}
    seen = set()
    for rec in select(inventory, spec.get("selector") or {}).secrets:
        seen.add((rec.namespace, rec.name))
        leaves.append(_leaf(rec, anchors, now, (rec.namespace, rec.name) in managed))
    for key in managed - seen:
        rec = inventory.secret(key)
        if rec is not None:
            leaves.append(_leaf(rec, anchors, now, True))
    obs = Observation(
        ca_secrets=cas, targets=targets, leaves=tuple(leaves), probe_results=tuple(memory.probe_results),
        rotate_request=annotations.get(ROTATE_ANNOTATION), force=annotations.get(FORCE_ANNOTATION),
    )
    return obs, pairs


def _leaf(rec, anchors: Sequence[x509.Certificate], now: dt.datetime, managed: bool) -> Leaf:
    issuer = None
    if rec.material.leaf is not None and anchors:
        result = verify_chain(rec.material.leaf, rec.material.intermediates, anchors, now)
        issuer = result.anchor_fingerprint if result.trusted else None
    return Leaf(f"{rec.namespace}/{rec.name}", issuer, managed)


# ---- actions ----------------------------------------------------------------------------------------

def canary_handshake(probe: Probe, ca: CAPair, now: dt.datetime) -> ProbeResult:
    """Present a short-lived client certificate signed by ``ca``; accepted only if the peer says so.

    With TLS 1.3 a server rejects a client certificate *after* the client's handshake completes,
    so the canary also reads briefly: an alert means rejected, a timeout or data means accepted,
    and a connection closed without a word is counted as rejected (the gate must be sure).
    """
    canary = issue_leaf(ca.key_pair, common_name="certpolicy-rotation-canary", usages=["clientAuth"],
                        validity=dt.timedelta(minutes=10), now=now)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # the gate tests the peer's trust in our CA, not ours in the peer
    with tempfile.TemporaryDirectory(prefix="certpolicy-canary-") as d:
        cert_file, key_file = Path(d, "c.pem"), Path(d, "k.pem")
        cert_file.write_bytes(canary.cert_pem)
        key_file.touch(mode=0o600)
        key_file.write_bytes(canary.key_pem)
        ctx.load_cert_chain(str(cert_file), str(key_file))
    timeout = probe.timeout.total_seconds()
    try:
        with socket.create_connection((probe.host, probe.port), timeout=timeout) as sock, \
                ctx.wrap_socket(sock, server_hostname=probe.server_name or probe.host) as tls:
            tls.settimeout(min(1.0, timeout))
            try:
                data = tls.recv(1)
            except (TimeoutError, socket.timeout):
                return ProbeResult(probe.id, ca.fingerprint, True, now, "handshake accepted")
            if data:
                return ProbeResult(probe.id, ca.fingerprint, True, now, "handshake accepted")
            return ProbeResult(probe.id, ca.fingerprint, False, now, "connection closed after the handshake")
    except ssl.SSLError as e:
        return ProbeResult(probe.id, ca.fingerprint, False, now, f"TLS rejected: {e.reason or type(e).__name__}")
    except OSError as e:
        return ProbeResult(probe.id, ca.fingerprint, False, now, f"connection failed: {type(e).__name__}")


def perform(raw: RawClient, inventory: Inventory, recorder: EventRecorder, policy: Mapping[str, Any],
            spec: Mapping[str, Any], requirements: Requirements, decision: Decision, pairs: dict[str, CAPair],
            memory: RotationMemory, now: dt.datetime) -> RotationOutcome:
    """Carry out the decision's actions in order; stop at the first failure (observed again next pass)."""
    name = policy["metadata"]["name"]
    owner = Owner.of(policy)
    out = RotationOutcome(decision)
    memory.probe_results = []  # the machine has seen them; new ones come from this decision's RunProbes
    ns = operator_namespace()

    def pair_for(ref: CARef) -> CAPair | None:
        pair = pairs.get(ref.secret_name)
        if pair is None or pair.fingerprint != ref.fingerprint:
            pair, _ = load_ca_secret(raw, ref.secret_name, owner)
            if pair is not None:
                pairs[ref.secret_name] = pair
        return pair if pair is not None and pair.fingerprint == ref.fingerprint else None

    for action in decision.actions:
        try:
            if isinstance(action, EmitEvent):
                recorder.post(ObjectRef(kind="CertificatePolicy", name=name, uid=policy["metadata"].get("uid", ""),
                                        api_version="certpolicy.io/v1alpha1"),
                              action.type, action.reason, action.message, [action.reason, action.message], now)
            elif isinstance(action, GenerateNewCA):
                if read(raw, "Secret", ns, action.secret_name) is None:  # create-only
                    ca_spec = spec["ca"]
                    kp = create_ca(ca_spec.get("commonName") or f"{name} CA",
                                   validity=parse_duration(ca_spec.get("validity", "87600h")),
                                   key_algorithm=ca_spec.get("keyAlgorithm", "ECDSAP256"),
                                   organization=["certpolicy"], now=now)
                    try:
                        raw.post(f"/api/v1/namespaces/{ns}/secrets", {
                            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
                            "metadata": {"name": action.secret_name, "labels": owner.labels(ROLE_CA),
                                         "annotations": {**owner.annotations(),
                                                         "certpolicy.io/rotation": action.rotation_id}},
                            "data": {"tls.crt": b64(kp.cert_pem), "tls.key": b64(kp.key_pem),
                                     "ca.crt": b64(kp.cert_pem)}})
                        out.writes += 1
                    except ApiException as e:
                        if e.status != 409:  # 409: it is there already, keep the first one
                            raise
            elif isinstance(action, UpdateBundles):
                certs = []
                for ref in action.add:
                    pair = pair_for(ref)
                    if pair is None:
                        raise RuntimeError(f"Secret {ref.secret_name} no longer holds CA {short(ref.fingerprint)}")
                    certs.append(pair.key_pair.cert)
                wanted = set(action.targets)
                entries = [e for e in spec.get("trustBundles") or ()
                           if any(t[0] in wanted for t in target_ids(inventory, [e]))]
                report = distribute(raw, inventory, owner, entries, certs, set(action.remove), None,
                                    only=wanted)
                out.writes += report.writes
                out.problems += report.problems
            elif isinstance(action, RunProbes):
                pair = pair_for(action.ca)
                if pair is None:
                    raise RuntimeError(f"Secret {action.ca.secret_name} no longer holds CA {short(action.ca.fingerprint)}")
                memory.probe_results = [canary_handshake(p, pair, now) for p in action.probes]
            elif isinstance(action, PromoteNewCA):
                _promote(raw, owner, action, pair_for)
                out.writes += 1
            elif isinstance(action, ReissueLeaf):
                pair = pair_for(action.ca)
                if pair is None:
                    raise RuntimeError(f"Secret {action.ca.secret_name} no longer holds CA {short(action.ca.fingerprint)}")
                leaf_ns, leaf_name = action.leaf.split("/", 1)
                report = issue_all(raw, inventory, owner, spec.get("issuance") or (), requirements, pair,
                                   [pair.key_pair.cert, *[p.key_pair.cert for p in pairs.values()]],
                                   RateLimiter(10**6), now, only_for={(leaf_ns, leaf_name)})
                out.writes += report.issued
                out.problems += report.problems
            elif isinstance(action, DeleteCASecret):
                pair, _ = load_ca_secret(raw, action.secret_name, owner)  # None unless it is this policy's
                if pair is not None and pair.fingerprint == action.fingerprint:
                    raw.delete(f"/api/v1/namespaces/{ns}/secrets/{action.secret_name}")
                    out.writes += 1
        except (ApiException, NotManaged, RuntimeError) as e:
            detail = f"HTTP {e.status}" if isinstance(e, ApiException) else str(e)
            out.problems.append(Problem("RotationActionFailed", f"{action.kind} failed: {detail[:300]}; "
                                                                "it is retried on the next pass"))
            log.warning("policy %s: rotation action %s failed: %s", name, action.kind, detail[:300])
            break
    return out


def _promote(raw: RawClient, owner: Owner, action: PromoteNewCA, pair_for) -> None:
    ns = operator_namespace()
    current, _ = load_ca_secret(raw, action.ca_secret_name, owner)
    if current is not None and current.fingerprint == action.new.fingerprint:
        return
    new = pair_for(action.new)
    if new is None:
        raise RuntimeError(f"Secret {action.new.secret_name} no longer holds CA {short(action.new.fingerprint)}")
    if current is not None and current.fingerprint == action.old_fingerprint:
        # Keep the old CA's key pair (create-only) until step 5 ends.
        if read(raw, "Secret", ns, action.retired_secret_name) is None:
            try:
                write_managed_secret(raw, ns, action.retired_secret_name, owner,
                                     {"tls.crt": current.key_pair.cert_pem, "tls.key": current.key_pair.key_pem,
                                      "ca.crt": current.key_pair.cert_pem}, role=ROLE_CA)
            except ApiException as e:
                if e.status != 409:
                    raise
    write_managed_secret(raw, ns, action.ca_secret_name, owner,
                         {"tls.crt": new.key_pair.cert_pem, "tls.key": new.key_pair.key_pem,
                          "ca.crt": new.key_pair.cert_pem}, role=ROLE_CA)

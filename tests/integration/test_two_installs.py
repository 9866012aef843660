"""Two installs, one cluster: only one leads; the other stays standby and says why.

Each install keeps its CAs in its own namespace, so two leading installs would reconcile the same
cluster-scoped CertificatePolicies with two sets of CAs. The leader Lease is therefore the
cluster's one (kube-system, kube/lease.py), whatever namespace an install runs in: here two real
`certpolicy run` processes with different namespaces, against the real API server. The first
leads and issues the policy's CA in its namespace; the second stays standby: its log, /healthz
and metrics name the other install, and nothing is written in its namespace.
"""

from __future__ import annotations

import json
import urllib.request
import uuid

import pytest

from certpolicy.kube.lease import DEFAULT_LEASE_NAMESPACE, INSTALL_ANNOTATION
from certpolicy.kube.namespaces import ensure_namespace
from certpolicy.kube.rawapi import RawClient
from certpolicy.localcluster.cluster import free_port
from kubewait import events_since, wait_for
from operator_process import OperatorProcess


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback
        return resp.read().decode()


@pytest.fixture
def installs(cluster, crd, core_v1, tmp_path, unique_name):
    """Two installs' namespaces and processes (one replica each), not started."""
    lease = f"{unique_name}-lease"  # one Lease per test; kube-system as shipped
    procs = {}
    for which in ("a", "b"):
        ns = f"install-{which}-{uuid.uuid4().hex[:6]}"
        ensure_namespace(core_v1, ns)
        port = free_port()
        procs[which] = (ns, port, OperatorProcess(
            cluster, tmp_path / f"install-{which}.log",
            args=["--identity", f"install-{which}-0", "--namespace", ns, "--lease-name", lease,
                  "--metrics-port", str(port)]))
    yield lease, procs
    for _ns, _port, proc in procs.values():
        proc.stop()


def test_a_second_install_stays_standby_and_says_why(installs, api_client, core_v1, custom_api, policies,
                                                      namespace, unique_name, tmp_path):
    lease, procs = installs
    (ns_a, _, a), (ns_b, port_b, b) = procs["a"], procs["b"]
    raw = RawClient(api_client)
    path = f"/apis/coordination.k8s.io/v1/namespaces/{DEFAULT_LEASE_NAMESPACE}/leases/{lease}"

    a.start()
    held = wait_for(lambda: (o := raw.get(path))["spec"].get("holderIdentity") == "install-a-0" and o,
                    timeout=60, what="install a leads")
    assert held["metadata"]["annotations"][INSTALL_ANNOTATION] == ns_a

    before_b = core_v1.list_namespaced_secret(ns_b).metadata.resource_version
    b.start()
    port = int(b.liveness.rsplit(":", 1)[1].split("/")[0])

    def standby_says_why():
        try:
            body = json.loads(get(f"http://127.0.0.1:{port}/healthz"))
        except OSError:
            return None
        return body if body.get("holderInstall") == ns_a else None

    body = wait_for(standby_says_why, timeout=60, what="install b's /healthz names install a")
    assert body["role"] == "standby" and body["holder"] == "install-a-0"
    assert f"another certpolicy-operator install (namespace {ns_a}, replica install-a-0) leads this cluster" \
        in body["reason"] and f"this one ({ns_b}) stays standby" in body["reason"]
    scrape = get(f"http://127.0.0.1:{port_b}/metrics")
    assert f'certpolicy_standby_other_install_leads{{holder_namespace="{ns_a}"}} 1.0' in scrape
    assert "certpolicy_leader 0.0" in scrape
    line = f"standby: another certpolicy-operator install (namespace {ns_a}, replica install-a-0) leads"
    wait_for(lambda: line in (tmp_path / "install-b.log").read_text(), timeout=10, what="install b's log line")

    # The leader issues the policy's CA in its own namespace; the standby writes nothing in its own.
    core_v1.patch_namespace(namespace, {"metadata": {"labels": {"installs": unique_name}}})
    policies({"apiVersion": "certpolicy.io/v1alpha1", "kind": "CertificatePolicy", "metadata": {"name": unique_name},
              "spec": {"selector": {"namespaceSelector": {"matchLabels": {"installs": unique_name}}},
                       "ca": {"secretName": f"{unique_name}-ca"}}})
    wait_for(lambda: any(s.metadata.name == f"{unique_name}-ca" for s in core_v1.list_namespaced_secret(ns_a).items),
             timeout=60, what="the CA Secret in install a's namespace")
    assert events_since(core_v1.list_namespaced_secret, ns_b, resource_version=before_b, seconds=3) == []
    assert raw.get(path)["spec"]["holderIdentity"] == "install-a-0"
    assert b.proc is not None and b.proc.poll() is None  # standby, alive

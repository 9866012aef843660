"""`certpolicy run` under an arbitrary UID with no passwd entry, as OpenShift's restricted-v2 runs it.

kopf names its operator after ``getpass.getuser()`` unless given an identity, and that raises
``KeyError: 'getpwuid(): uid not found'`` for a UID the image does not know: the operator died at
start. runcmd.py now passes the replica's name. Here the real process runs as UID 1000770000,
group 0 (OpenShift's pattern) and no user name in its environment, against the real API server:
it takes the Lease and reconciles a policy.

The interpreter lives under /root (mode 0700) on this machine, so the process keeps one
capability, CAP_DAC_READ_SEARCH (read any file): everything else is that of an unprivileged UID,
and what decides this test, the UID's missing passwd entry, is unchanged by it.
"""

from __future__ import annotations

import pwd
import shutil
from pathlib import Path

import pytest

import certgen
from certpolicy.kube.lease import DEFAULT_LEASE_NAMESPACE
from certpolicy.kube.rawapi import RawClient
from crd import GROUP, PLURAL, VERSION
from kubewait import wait_for
from operator_process import OperatorProcess

UID = 1000770000  # in OpenShift's default range; no passwd entry here
USER_ENV = ("USER", "LOGNAME", "LNAME", "USERNAME")  # getpass.getuser() reads these before passwd


@pytest.fixture
def as_arbitrary_uid() -> list[str]:
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv (util-linux) is needed to change the operator's UID")
    with pytest.raises(KeyError):
        pwd.getpwuid(UID)
    return ["setpriv", f"--reuid={UID}", "--regid=0", "--clear-groups",
            "--inh-caps=+dac_read_search", "--ambient-caps=+dac_read_search"]


def test_certpolicy_run_leads_and_reconciles_under_a_uid_with_no_passwd_entry(
        cluster, crd, operator_namespace, namespace, core_v1, custom_api, policies, unique_name, tmp_path,
        as_arbitrary_uid):
    lease = f"{unique_name}-uid"
    tmp_path.chmod(0o777)  # the log is written by this process; nothing else needs writing
    proc = OperatorProcess(cluster, tmp_path / "operator.log", prefix=as_arbitrary_uid, unset=USER_ENV,
                           args=["--identity", "uid-replica", "--lease-name", lease],
                           env={"HOME": "/nonexistent"})
    core_v1.patch_namespace(namespace, {"metadata": {"labels": {"uid-test": unique_name}}})
    chain = certgen.pki(leaf_kw={"cn": "api.uid.test", "eku": ["serverAuth"]})
    core_v1.create_namespaced_secret(namespace, {"metadata": {"name": "app-tls"}, "type": "kubernetes.io/tls",
                                                 "data": chain.secret(ca=[chain.root])["data"]})
    proc.start()
    try:
        assert proc.proc is not None
        raw = RawClient(custom_api.api_client)

        def holder():
            if proc.proc.poll() is not None:
                raise AssertionError(f"certpolicy run exited with {proc.proc.returncode}: "
                                     + (tmp_path / "operator.log").read_text()[-2000:])
            try:
                spec = raw.get(f"/apis/coordination.k8s.io/v1/namespaces/{DEFAULT_LEASE_NAMESPACE}/leases/{lease}")["spec"]
            except Exception:  # noqa: BLE001 - not created yet
                return None
            return spec.get("holderIdentity") == "uid-replica"

        wait_for(holder, timeout=60, what="the Lease held by the arbitrary-UID process")
        policies({"apiVersion": "certpolicy.io/v1alpha1", "kind": "CertificatePolicy",
                  "metadata": {"name": unique_name},
                  "spec": {"selector": {"namespaceSelector": {"matchLabels": {"uid-test": unique_name}}},
                           "requirements": {"extendedKeyUsages": ["serverAuth"]}}})

        def compliant():
            assert proc.proc.poll() is None, (tmp_path / "operator.log").read_text()[-2000:]
            status = custom_api.get_cluster_custom_object(GROUP, VERSION, PLURAL,
                                                          unique_name).get("status") or {}
            cond = next((c for c in status.get("conditions") or () if c["type"] == "Compliant"), None)
            return cond if cond and cond["status"] == "True" and status.get("summary", {}).get("selected") == 1 else None

        cond = wait_for(compliant, timeout=60, what="the policy reconciled by the arbitrary-UID process")
        assert cond["observedGeneration"] == 1
        log = (tmp_path / "operator.log").read_text()
        assert "getpwuid" not in log and "KeyError" not in log
        assert f"Uid:\t{UID}\t{UID}" in (Path("/proc") / str(proc.proc.pid) / "status").read_text()
    finally:
        proc.stop()

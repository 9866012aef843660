"""The operator as users run it: the image built from the Dockerfile, `kubectl apply -k manifests/`
as shipped (securityContext, ServiceAccount, least-privilege RBAC), the examples reaching status."""

from __future__ import annotations

import sys

import yaml

from kubewait import wait_for
from paths import EXAMPLES

OPERATOR_NAMESPACE = "certpolicy-system"


def _exec_python(backend, pod: dict, code: str) -> str:
    return backend.kubectl("exec", "-n", OPERATOR_NAMESPACE, pod["metadata"]["name"], "--",
                           "python", "-c", code).strip()


def test_operator_pod_runs_non_root_on_a_read_only_root_with_the_tests_python(installed):
    pods = installed.operator_pods()
    assert len(pods) == 2, "the Deployment's two replicas are Ready (leader and standby)"
    assert installed.leader() in {p["metadata"]["name"] for p in pods}
    pod = pods[0]
    container = pod["spec"]["containers"][0]
    assert pod["spec"]["serviceAccountName"] == "certpolicy-operator"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    # What the running process really is, not what the spec asks for.
    uid, gid, python = _exec_python(
        installed, pod, "import os, sys; print(os.getuid(), os.getgid(), '%d.%d' % sys.version_info[:2])").split()
    assert (uid, gid) == ("65532", "65532")
    assert python == f"{sys.version_info.major}.{sys.version_info.minor}", "image and tests must run the same Python"
    errno = _exec_python(installed, pod, "import errno\ntry:\n open('/probe', 'w')\nexcept OSError as e:\n print(e.errno)")
    assert errno == "30", "the root filesystem must be read-only (EROFS)"


def _status(backend, name: str) -> dict | None:
    obj = backend.get("certpol", name)
    status = obj.get("status") or {}
    if status.get("observedGeneration") != obj["metadata"]["generation"]:
        return None
    if not {"Ready", "Compliant"} <= {c["type"] for c in status.get("conditions", [])}:
        return None
    return status


def _condition(status: dict, ctype: str) -> dict:
    return next(c for c in status["conditions"] if c["type"] == ctype)


def _violations(status: dict) -> dict[str, set[str]]:
    return {v["name"]: set(v["reasons"]) for v in status.get("violations", [])}


def test_examples_reach_their_expected_status(installed):
    """`make demo`'s scenario, with the operator in its Pod: three HL7 certificates in a UAT
    namespace (good, renewed without clientAuth, carrying a production name) and the examples."""
    from certpolicy.democmd import _demo_objects

    k = installed.kubectl
    k("apply", "-f", "-", input=yaml.safe_dump_all(_demo_objects()))
    for example in ("hl7-mtls.yaml", "uat-vs-prod-sans.yaml", "trust-bundle-pkcs12.yaml"):
        k("apply", "-f", str(EXAMPLES / example))
    names = ("hl7-mtls", "uat-sans", "prod-sans", "hl7-uat-trust")
    statuses = {n: wait_for(lambda n=n: _status(installed, n), timeout=180, interval=1, what=f"status of {n}")
                for n in names}

    hl7 = statuses["hl7-mtls"]
    assert _condition(hl7, "Compliant")["status"] == "False"
    assert "MissingClientAuth" in _violations(hl7)["lab-feed-tls"]
    assert "mirth-tls" not in _violations(hl7)
    assert "DNSNameNotAllowed" in _violations(statuses["uat-sans"])["adt-tls"]
    assert not _violations(statuses["prod-sans"])  # no prod namespace here
    assert _condition(statuses["prod-sans"], "Compliant")["status"] != "False"

    trust = statuses["hl7-uat-trust"]
    assert _condition(trust, "Ready")["status"] == "True", trust["conditions"]
    bundle = installed.get("configmap", "-n", "integration", "hl7-ca")
    assert "BEGIN CERTIFICATE" in bundle["data"]["ca.crt"]
    assert "truststore.p12" in bundle.get("binaryData", {}), "the PKCS#12 truststore is distributed too"

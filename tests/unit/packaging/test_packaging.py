"""The shipped files are well-formed: Dockerfile lint, manifests build with kustomize, CRD is structural."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from certpolicy.kube.lease import DEFAULT_LEASE_NAME, DEFAULT_LEASE_NAMESPACE

REPO = Path(__file__).resolve().parents[3]


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint") or str(Path(__import__("sys").executable).parent / "hadolint")
    proc = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dockerfile_runs_as_non_root_with_the_operator_entrypoint():
    text = (REPO / "Dockerfile").read_text()
    assert "USER 65532:65532" in text
    assert 'ENTRYPOINT ["certpolicy"]' in text and 'CMD ["run"]' in text
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    assert text.count("FROM ") == 2


def test_deployment_security_context():
    dep = yaml.safe_load((REPO / "manifests" / "deployment.yaml").read_text())
    pod = dep["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    c = pod["containers"][0]
    assert c["securityContext"] == {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}}
    assert dep["spec"]["replicas"] == 2 and dep["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    env = {e["name"]: e for e in c["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"  # the Lease holder's identity
    anti = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]
    assert anti["topologyKey"] == "kubernetes.io/hostname"
    assert anti["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]


def test_disruption_budget_and_lease_role_are_installed():
    kust = yaml.safe_load((REPO / "manifests" / "kustomization.yaml").read_text())
    assert "poddisruptionbudget.yaml" in kust["resources"]
    pdb = yaml.safe_load((REPO / "manifests" / "poddisruptionbudget.yaml").read_text())
    dep = yaml.safe_load((REPO / "manifests" / "deployment.yaml").read_text())
    assert pdb["spec"]["minAvailable"] == 1 and pdb["spec"]["selector"] == dep["spec"]["selector"]
    role = next(d for d in yaml.safe_load_all((REPO / "manifests" / "rbac.yaml").read_text())
                if d["kind"] == "Role" and d["metadata"]["name"].endswith("-leader-election"))
    # the cluster's one Lease (kube/lease.py), not the install's namespace: one install leads
    assert role["metadata"]["namespace"] == DEFAULT_LEASE_NAMESPACE != dep["metadata"]["namespace"]
    assert role["rules"] == [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                              "resourceNames": [DEFAULT_LEASE_NAME], "verbs": ["get", "update"]},
                             {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]}]


def test_crd_is_the_one_in_the_kustomization():
    kust = yaml.safe_load((REPO / "manifests" / "kustomization.yaml").read_text())
    assert "../crds" in kust["resources"]
    crd = yaml.safe_load((REPO / "crds" / "certificatepolicies.certpolicy.io.yaml").read_text())
    assert crd["spec"]["scope"] == "Cluster" and crd["spec"]["names"]["shortNames"] == ["certpol"]


def test_crd_reference_is_generated_from_the_current_schema():
    proc = subprocess.run([__import__("sys").executable, str(REPO / "scripts" / "gen_crd_docs.py"), "--check"],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr

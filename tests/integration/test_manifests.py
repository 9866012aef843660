"""`kubectl apply -k manifests/` is accepted by a real API server (server-side dry run)."""

from __future__ import annotations

from paths import REPO


def test_kustomization_applies_cleanly(cluster, crd, operator_namespace):
    # (a server-side dry run cannot create objects in a namespace it only pretends to create)
    out = cluster.kubectl("apply", "-k", str(REPO / "manifests"), "--dry-run=server").stdout
    for obj in ("customresourcedefinition.apiextensions.k8s.io/certificatepolicies.certpolicy.io",
                "namespace/certpolicy-system", "serviceaccount/certpolicy-operator",
                "clusterrole.rbac.authorization.k8s.io/certpolicy-operator",
                "clusterrolebinding.rbac.authorization.k8s.io/certpolicy-operator",
                "service/certpolicy-operator-metrics", "deployment.apps/certpolicy-operator",
                "validatingadmissionpolicy.admissionregistration.k8s.io/certpolicy-operator-managed-writes-only",
                "validatingadmissionpolicybinding.admissionregistration.k8s.io/certpolicy-operator-managed-writes-only"):
        assert obj in out, out

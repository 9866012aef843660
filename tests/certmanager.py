"""cert-manager for the integration tests: its real controllers, built from the published module.

``tests/tools/cert-manager-controller`` is a small Go main that runs cert-manager's own Certificate,
CertificateRequest (CA, SelfSigned) and Issuer/ClusterIssuer controllers from the module's ``pkg/``
(cert-manager's ``cmd/controller`` module is not served by the Go module proxy). It is built and
cached like kube-apiserver (``certpolicy.localcluster.binaries.ensure_go_main``; ``make binaries``
builds it before the suite). :class:`CertManager` installs the module's CRDs on a control plane and
runs the controller against it; ``tests/conftest.py``'s session fixture ``cert_manager`` holds one.

There is no cert-manager webhook: nothing defaults or validates cert-manager objects on write, so
tests write complete, valid specs (what the webhook would accept). Helpers here build those.
"""

from __future__ import annotations

import base64
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kubewait import wait_for

NAME = "cert-manager-controller"
GROUP = "cert-manager.io"
VERSION = "v1"
#: Where the controller keeps what ClusterIssuers refer to (its --cluster-resource-namespace).
CLUSTER_RESOURCE_NAMESPACE = "cert-manager"
#: cert-manager's annotations on the Secret it issues into (pkg/apis/certmanager/v1/types.go).
CERTIFICATE_NAME_ANNOTATION = "cert-manager.io/certificate-name"
ISSUER_NAME_ANNOTATION = "cert-manager.io/issuer-name"


def build(log=None) -> tuple[Path, float | None]:
    """The cache directory (binary + the module's deploy/crds); the build's seconds if it was built now."""
    import sys

    from certpolicy.localcluster.binaries import ensure_go_main, go_main_cached

    if go_main_cached(NAME):
        return ensure_go_main(NAME), None
    start = time.monotonic()
    where = ensure_go_main(NAME, log=log or sys.stderr)
    return where, time.monotonic() - start


@dataclass
class CertManager:
    """cert-manager's controllers running against one control plane (``cluster``: a LocalCluster)."""

    cluster: Any
    workdir: Path
    build_seconds: float | None = None
    _proc: Any = field(default=None, repr=False)

    def start(self, timeout: float = 120.0) -> None:
        from certpolicy.localcluster.procs import ChildProcess

        where, self.build_seconds = build()
        self.install_crds(where / "deploy" / "crds", timeout=timeout)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._proc = ChildProcess(NAME, [str(where / NAME), f"--kubeconfig={self.cluster.kubeconfig}",
                                  f"--cluster-resource-namespace={CLUSTER_RESOURCE_NAMESPACE}"],
                           self.workdir / f"{NAME}.log")
        self._proc.start()
        self._wait_working(timeout)

    def stop(self) -> int | None:
        """SIGTERM, then SIGKILL after 10 s; the exit status (None if it was never started)."""
        if self._proc is None:
            return None
        self._proc.stop()
        return self._proc.popen.returncode if self._proc.popen else None

    @property
    def log(self) -> Path:
        return self.workdir / f"{NAME}.log"

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self._proc is not None and self._proc.alive()

    def install_crds(self, crd_dir: Path, timeout: float) -> None:
        """Server-side apply (the Issuer CRDs are too large for the last-applied annotation), then
        wait until every one is Established."""
        files = sorted(crd_dir.glob("*.yaml"))
        for f in files:
            self.cluster.kubectl("apply", "--server-side", "--force-conflicts", "--field-manager=certpolicy-tests",
                                 "-f", str(f))
        names = [f"crd/{f.stem.split('_', 1)[1]}.{f.stem.split('_', 1)[0]}" for f in files]
        self.cluster.kubectl("wait", "--for=condition=Established", f"--timeout={int(timeout)}s", *names)

    def _wait_working(self, timeout: float) -> None:
        """Ready means it signs: a SelfSigned Issuer in its own namespace becomes Ready, and a
        Certificate from it is issued into its Secret."""
        from certpolicy.kube.namespaces import ensure_namespace

        core, custom = clients(self.cluster)
        ensure_namespace(core, CLUSTER_RESOURCE_NAMESPACE)
        name = f"probe-{uuid.uuid4().hex[:6]}"
        apply(custom, CLUSTER_RESOURCE_NAMESPACE, "issuers", issuer(name, {"selfSigned": {}}))
        apply(custom, CLUSTER_RESOURCE_NAMESPACE, "certificates",
              certificate(name, issuer_name=name, secret_name=name, common_name="probe"))

        def issued() -> bool:
            if not self.alive():
                raise AssertionError(f"{NAME} exited ({self._proc.popen.returncode}):\n{self.log_text()[-3000:]}")
            return is_ready(get(custom, CLUSTER_RESOURCE_NAMESPACE, "certificates", name))

        try:
            wait_for(issued, timeout=timeout, interval=0.3, what=f"{NAME} to issue a probe Certificate")
        except AssertionError:
            raise AssertionError(f"{NAME} did not issue a SelfSigned Certificate; its log:\n"
                                 f"{self.log_text()[-3000:]}") from None


def clients(cluster: Any) -> tuple[Any, Any]:
    import kubernetes

    api = kubernetes.config.new_client_from_config(config_file=str(cluster.kubeconfig))
    return kubernetes.client.CoreV1Api(api), kubernetes.client.CustomObjectsApi(api)


# --- objects as the cert-manager webhook would accept them -----------------------------------------

def issuer(name: str, spec: dict) -> dict:
    """An Issuer, e.g. ``issuer("ca", {"ca": {"secretName": "ca-key-pair"}})``."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Issuer", "metadata": {"name": name}, "spec": spec}


def certificate(name: str, *, issuer_name: str, secret_name: str, issuer_kind: str = "Issuer",
                common_name: str | None = None, dns_names: list[str] | None = None,
                usages: list[str] | None = None, is_ca: bool = False, private_key: dict | None = None,
                duration: str | None = None, **spec: Any) -> dict:
    """A Certificate; ``usages`` None leaves cert-manager's default (digital signature, key encipherment)."""
    body: dict[str, Any] = {"secretName": secret_name, "issuerRef": {"name": issuer_name, "kind": issuer_kind,
                                                                     "group": GROUP}}
    if common_name:
        body["commonName"] = common_name
    if dns_names:
        body["dnsNames"] = dns_names
    if usages is not None:
        body["usages"] = usages
    if is_ca:
        body["isCA"] = True
    if private_key:
        body["privateKey"] = private_key
    if duration:
        body["duration"] = duration
    body.update(spec)
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Certificate", "metadata": {"name": name}, "spec": body}


def apply(custom: Any, namespace: str, plural: str, body: dict) -> dict:
    return custom.create_namespaced_custom_object(GROUP, VERSION, namespace, plural, body)


def get(custom: Any, namespace: str, plural: str, name: str) -> dict:
    return custom.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)


def condition(obj: dict, ctype: str) -> dict | None:
    for c in (obj.get("status") or {}).get("conditions") or []:
        if c.get("type") == ctype:
            return c
    return None


def is_ready(obj: dict) -> bool:
    """Ready=True for the object's current generation (a Certificate, Issuer or CertificateRequest)."""
    c = condition(obj, "Ready")
    gen = obj["metadata"].get("generation")
    return bool(c and c.get("status") == "True" and c.get("observedGeneration", gen) == gen)


def wait_ready(custom: Any, namespace: str, plural: str, name: str, timeout: float = 60.0) -> dict:
    return wait_for(lambda: (lambda o: o if is_ready(o) else None)(get(custom, namespace, plural, name)),
                    timeout=timeout, interval=0.3, what=f"{plural}/{name} Ready")


def wait_issued(custom: Any, namespace: str, name: str, revision: int = 1, timeout: float = 60.0) -> dict:
    """A Certificate Ready at ``status.revision`` >= ``revision`` (Ready can be written a moment
    before the issuing controller records the revision)."""
    def issued() -> dict | None:
        cert = get(custom, namespace, "certificates", name)
        return cert if is_ready(cert) and (cert.get("status") or {}).get("revision", 0) >= revision else None

    return wait_for(issued, timeout=timeout, interval=0.3, what=f"Certificate {namespace}/{name} issued at "
                                                                f"revision {revision}")


def ca_issuer(core: Any, custom: Any, namespace: str, name: str, ca_pem: bytes, key_pem: bytes,
              timeout: float = 60.0) -> dict:
    """A CA Issuer signing with ``ca_pem``/``key_pem`` (kept in Secret ``<name>-ca``), once Ready."""
    core.create_namespaced_secret(namespace, {
        "metadata": {"name": f"{name}-ca"}, "type": "kubernetes.io/tls",
        "data": {"tls.crt": base64.b64encode(ca_pem).decode(), "tls.key": base64.b64encode(key_pem).decode()}})
    apply(custom, namespace, "issuers", issuer(name, {"ca": {"secretName": f"{name}-ca"}}))
    return wait_ready(custom, namespace, "issuers", name, timeout)


def renew(custom: Any, namespace: str, name: str) -> None:
    """What ``cmctl renew`` does: the Issuing condition set True through the status subresource."""
    from datetime import UTC, datetime

    cert = get(custom, namespace, "certificates", name)
    conditions = [c for c in (cert.get("status") or {}).get("conditions") or [] if c.get("type") != "Issuing"]
    conditions.append({"type": "Issuing", "status": "True", "reason": "ManuallyTriggered",
                       "message": "Certificate re-issuance manually triggered",
                       "lastTransitionTime": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                       "observedGeneration": cert["metadata"]["generation"]})
    custom.patch_namespaced_custom_object_status(GROUP, VERSION, namespace, "certificates", name,
                                                 {"status": {"conditions": conditions}})

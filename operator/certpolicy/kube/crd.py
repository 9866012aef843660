"""Installing the CRD from ``crds/`` (the one source of truth for the schema) and waiting until it serves."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from certpolicy import CRD_NAME, GROUP, PLURAL, VERSION

CRD_DIR = Path(__file__).resolve().parents[3] / "crds"


def crd_manifest() -> dict[str, Any]:
    return yaml.safe_load((CRD_DIR / f"{CRD_NAME}.yaml").read_text())


def install_crd(kubeconfig: str | Path | None = None, timeout: float = 60.0) -> None:
    """Create or update the CRD (server-side apply) and wait until it is Established."""
    import kubernetes

    client = kubernetes.config.new_client_from_config(config_file=str(kubeconfig) if kubeconfig else None)
    api = kubernetes.client.ApiextensionsV1Api(client)
    body = crd_manifest()
    try:
        api.patch_custom_resource_definition(
            CRD_NAME, body, field_manager="certpolicy", force=True,
            _content_type="application/apply-patch+yaml",
        )
    except kubernetes.client.ApiException as e:
        if e.status != 404:
            raise
        # The same conversion the client's validate_call would make from the dict, made explicit.
        model = kubernetes.client.V1CustomResourceDefinition.model_validate(body)
        api.create_custom_resource_definition(model, field_manager="certpolicy")
    deadline = time.monotonic() + timeout
    while True:
        crd = api.read_custom_resource_definition(CRD_NAME)
        # status is absent until the API server has looked at the new CRD: not Established yet.
        conds = {c.type: c.status for c in ((crd.status.conditions if crd.status else None) or [])}
        if conds.get("Established") == "True" and conds.get("NamesAccepted") == "True":
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"CRD {CRD_NAME} not Established after {timeout:.0f}s: {conds}")
        time.sleep(0.1)
    # Established can precede the discovery/storage being ready for a brief moment: wait for a LIST.
    custom = kubernetes.client.CustomObjectsApi(client)
    while True:
        try:
            custom.list_cluster_custom_object(GROUP, VERSION, PLURAL, limit=1)
            return
        except kubernetes.client.ApiException as e:
            if e.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.1)

"""One way to get an API client: in-cluster config when running in a Pod, else the kubeconfig."""

from __future__ import annotations

import os

import kubernetes
from kubernetes.client import ApiClient


def new_api_client() -> ApiClient:
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=config)
        return ApiClient(config)
    return kubernetes.config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))

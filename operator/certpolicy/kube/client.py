"""One way to get an API client: in-cluster config when running in a Pod, else the kubeconfig.

Every request of the operator carries a user agent naming its replica
(``certpolicy-operator/VERSION (POD_NAME)``), so the API server's audit log tells the two replicas'
writes apart. The API server derives the default field manager from the user agent up to its
first ``/``, so both replicas share the field manager ``certpolicy-operator`` and managedFields
do not grow an entry per Pod name.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import kubernetes
from kubernetes.client import ApiClient

from certpolicy import __version__

IDENTITY_ENV = "POD_NAME"


def instance_identity() -> str:
    """This replica's name: the Lease's holderIdentity, the user agent's suffix, events'
    reportingInstance. The Pod's name in a cluster (POD_NAME from the downward API)."""
    return os.environ.get(IDENTITY_ENV) or socket.gethostname()


def user_agent() -> str:
    return f"certpolicy-operator/{__version__} ({instance_identity()})"


def new_api_client() -> ApiClient:
    if os.environ.get("KUBERNETES_SERVICE_HOST") and not os.environ.get("KUBECONFIG"):
        config = kubernetes.client.Configuration()
        kubernetes.config.load_incluster_config(client_configuration=config)
        client = ApiClient(config)
    else:
        client = kubernetes.config.new_client_from_config(config_file=os.environ.get("KUBECONFIG"))
    client.user_agent = user_agent()
    return client


def client_for(kubeconfig: str | None = None, context: str | None = None) -> ApiClient:
    """An API client for a command (the plugin, ``certpolicy check --secret``): the kubeconfig
    named, or ``$KUBECONFIG`` / ``~/.kube/config``, else the in-cluster config, as kubectl decides.
    Raises what loading the configuration raised (the caller says it in its own terms)."""
    if kubeconfig or context or os.environ.get("KUBECONFIG") or Path("~/.kube/config").expanduser().exists():
        return kubernetes.config.new_client_from_config(config_file=kubeconfig, context=context)
    config = kubernetes.client.Configuration()
    kubernetes.config.load_incluster_config(client_configuration=config)
    return ApiClient(config)

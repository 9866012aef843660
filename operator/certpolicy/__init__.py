"""certpolicy-operator: keeps a cluster's TLS certificates honest and rotates its private CAs."""

__version__ = "0.1.0"

GROUP = "certpolicy.io"
VERSION = "v1alpha1"
PLURAL = "certificatepolicies"
KIND = "CertificatePolicy"
API_VERSION = f"{GROUP}/{VERSION}"
CRD_NAME = f"{PLURAL}.{GROUP}"

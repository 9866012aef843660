"""Where a trust bundle lives, as a policy names it: the one parser of a bundle reference.

A reference is a mapping with exactly one of ``configMap``, ``secret`` or ``clusterTrustBundle``.
The same shape appears as ``spec.requirements.trustBundle`` (a *source*: it names its namespace)
and in every ``spec.trustBundles`` entry (a *target*: its namespaces come from the entry's
selector). The operator, ``certpolicy check`` and the rotation driver all parse it here, so a new
field or kind is added once. Pure: it knows kind names, not how the API stores them
(that is :mod:`certpolicy.kube.targets`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

CONFIG_MAP = "ConfigMap"
SECRET = "Secret"
CLUSTER_TRUST_BUNDLE = "ClusterTrustBundle"
DEFAULT_KEY = "ca.crt"
#: A ClusterTrustBundle holds its PEM in ``spec.trustBundle``; that field stands in for the key.
CTB_KEY = "trustBundle"

# spec field -> kind, in the order they are looked for
_FIELDS = {"configMap": CONFIG_MAP, "secret": SECRET, "clusterTrustBundle": CLUSTER_TRUST_BUNDLE}


class BundleRefError(ValueError):
    """The mapping names no bundle object, or names one without its name."""


@dataclass(frozen=True)
class BundleRef:
    kind: str  # ConfigMap | Secret | ClusterTrustBundle
    name: str
    key: str
    namespace: str = ""  # sources name theirs; targets take them from the entry's selector

    @classmethod
    def parse(cls, ref: Mapping[str, Any]) -> BundleRef:
        for field, kind in _FIELDS.items():
            src = ref.get(field)
            if isinstance(src, Mapping):
                if not src.get("name"):
                    raise BundleRefError(f"{field} needs a name")
                key = CTB_KEY if kind == CLUSTER_TRUST_BUNDLE else str(src.get("key") or DEFAULT_KEY)
                return cls(kind, str(src["name"]), key, str(src.get("namespace") or ""))
        raise BundleRefError(f"names none of {', '.join(_FIELDS)}")

    @property
    def field(self) -> str:
        """The spec field this reference was written with (``configMap``...)."""
        return next(f for f, k in _FIELDS.items() if k == self.kind)

    @property
    def where(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}" if self.namespace else f"{self.kind} {self.name}"

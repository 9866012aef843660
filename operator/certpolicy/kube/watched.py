"""How one resource is watched, as a value: what ``inventory/watch.py``'s list-then-watch runs and
what ``kube/targets.py``'s target kinds declare. It lives here, below both, so that describing a
watch never needs the watching machinery (imports only go down)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Watched:
    """How one resource is watched: one cluster-wide list-then-watch, filtered by the API server.

    ``metadata_only`` asks for names, versions and labels without bodies, for resources whose
    bodies the operator must not hold in bulk (every Secret of the cluster).
    """

    name: str
    path: str  # the cluster-wide collection, e.g. /api/v1/configmaps
    label_selector: str | None = None
    field_selector: str | None = None
    metadata_only: bool = False

    def query(self) -> dict[str, str]:
        q = {}
        if self.label_selector:
            q["labelSelector"] = self.label_selector
        if self.field_selector:
            q["fieldSelector"] = self.field_selector
        return q

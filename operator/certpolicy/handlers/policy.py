"""CertificatePolicy handlers: accept the spec and report it in the status conditions."""

from __future__ import annotations

import datetime as dt
from typing import Any

import kopf

from certpolicy import GROUP, PLURAL, VERSION
from certpolicy.kube.conditions import READY, Condition, merge_conditions


@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
def accept_policy(meta: kopf.Meta, status: kopf.Status, patch: kopf.Patch, **_: Any) -> None:
    generation = meta.get("generation")
    now = dt.datetime.now(dt.timezone.utc)
    conditions = merge_conditions(
        status.get("conditions"),
        [Condition(READY, True, "Reconciled", "The spec was accepted and reconciled.")],
        generation,
        now,
    )
    patch.status["conditions"] = conditions
    patch.status["observedGeneration"] = generation

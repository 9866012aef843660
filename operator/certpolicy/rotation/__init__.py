"""The five-step CA rotation, as a pure state machine (no kopf, no kubernetes).

``decide(state, observation, settings, now) -> Decision``: see :mod:`certpolicy.rotation.machine`
for the contract with the driver and docs/rotation.md for the runbook.
"""

from certpolicy.rotation.actions import (
    Action,
    CARef,
    DeleteCASecret,
    EmitEvent,
    GenerateNewCA,
    PromoteNewCA,
    ReissueLeaf,
    RestartWorkload,
    RunProbes,
    UpdateBundles,
)
from certpolicy.rotation.machine import Decision, decide, secrets_to_observe
from certpolicy.rotation.model import CAInfo, Leaf, Observation, PodUse, Probe, ProbeResult, RotationSettings
from certpolicy.rotation.state import HistoryEntry, Rotation, RotationState, StateError
from certpolicy.rotation.triggers import FORCE_ANNOTATION, ROTATE_ANNOTATION

__all__ = [
    "FORCE_ANNOTATION", "ROTATE_ANNOTATION", "Action", "CAInfo", "CARef", "Decision", "DeleteCASecret",
    "EmitEvent", "GenerateNewCA", "HistoryEntry", "Leaf", "Observation", "PodUse", "Probe", "ProbeResult",
    "PromoteNewCA", "ReissueLeaf", "RestartWorkload", "Rotation", "RotationSettings", "RotationState", "RunProbes",
    "StateError", "UpdateBundles", "decide", "secrets_to_observe",
]

"""The rotation's recorded state: what ``status.rotation`` holds, and its JSON form.

The state is a *record*, not the truth: the truth is the cluster, observed before every decision.
The state only remembers what cannot be observed — which rotation runs and why, the fingerprints
it committed to, when each step and each wait began, probe results, the re-issue rate window —
plus counters for people to read.

JSON form: camelCase keys, RFC 3339 UTC times (``Z``, sub-second precision kept so that
``from_dict(to_dict(s)) == s``). :meth:`RotationState.to_dict` writes *every* key, with ``null``
for the empty ones, so a JSON merge patch of ``status.rotation`` clears fields left over from an
earlier step or rotation. Collections whose keys vary (probes, pending re-issues) are lists, which
a merge patch replaces as a whole, never merges.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from certpolicy.timestamps import parse_rfc3339, rfc3339_micro

STEPS = ("AddNewCA", "VerifyBundles", "IssueFromNewCA", "AwaitLeaves", "RemoveOldCA")
ADD_NEW_CA, VERIFY_BUNDLES, ISSUE_FROM_NEW_CA, AWAIT_LEAVES, REMOVE_OLD_CA = range(1, 6)
ROLLING_BACK = "RollingBack"
COMPLETED = "Completed"
ABORTED = "Aborted"
OUTCOMES = (COMPLETED, ABORTED)

TRIGGER_REQUEST = "Request"
TRIGGER_EXPIRY = "Expiry"
TRIGGER_SUPPLIED = "SuppliedCA"
#: The active CA's Secret is gone (its certificate is known from status.ca.history, its key is lost).
TRIGGER_CA_MISSING = "CAMissing"
TRIGGERS = (TRIGGER_REQUEST, TRIGGER_EXPIRY, TRIGGER_SUPPLIED, TRIGGER_CA_MISSING)

#: Finished rotations remembered (newest first); they also stop an old trigger from restarting.
MAX_HISTORY = 10
#: Unmanaged leaves named in status and events; the rest are counted.
MAX_NAMED_LEAVES = 20
#: Workload owners one rotation restarts at most (the list in status proves "never twice").
MAX_RESTARTS = 500


class StateError(ValueError):
    """``status.rotation`` cannot be read back (edited by hand, or written by another version)."""


def step_name(step: int) -> str:
    return STEPS[step - 1]


def _key(step_or_phase: str) -> str:
    return step_or_phase[0].lower() + step_or_phase[1:]


@dataclass(frozen=True)
class ProbeRecord:
    probe: str
    accepted: bool
    at: dt.datetime
    message: str = ""
    served_ca: str | None = None  # the CA the endpoint's own certificate chains to (step 4)
    served_other: bool = False  # its served chain was read and leads to neither CA (step 4)


@dataclass(frozen=True)
class PendingReissue:
    """A re-issue asked for and not yet observed; not asked again until it is overdue."""

    leaf: str
    at: dt.datetime


@dataclass(frozen=True)
class Rotation:
    """One running rotation. ``new_ca`` stays None until the new CA is *observed* in its Secret."""

    id: str
    trigger: str
    step: int
    old_ca: str
    new_ca: str | None
    new_ca_secret_name: str
    new_ca_generated: bool
    retired_ca_secret_name: str
    started_at: dt.datetime
    step_started_at: tuple[dt.datetime | None, ...] = (None,) * 5
    rolling_back_since: dt.datetime | None = None
    bundles_verified_at: dt.datetime | None = None
    probes_requested_at: dt.datetime | None = None
    probes: tuple[ProbeRecord, ...] = ()
    targets_verified: int = 0
    targets_total: int = 0
    leaves_managed: int = 0
    leaves_managed_on_new: int = 0
    leaves_total: int = 0
    leaves_on_new: int = 0
    leaves_on_old: tuple[str, ...] = ()
    leaves_on_old_count: int = 0
    leaves_on_old_digest: str | None = None
    reissue_window_start: dt.datetime | None = None
    reissue_window_count: int = 0
    reissue_requested: int = 0
    pending: tuple[PendingReissue, ...] = ()
    stalled_since: dt.datetime | None = None
    abort_refused: bool = False
    forced: bool = False
    message: str = ""
    #: When the set of leaves on the new CA last changed, as first observed (never earlier than
    #: the real change): step 4's leaf propagation delay counts from here.
    leaves_moved_at: dt.datetime | None = None
    leaves_on_new_digest: str | None = None
    #: Pods that load a leaf or bundle only at start and started too early (first few named).
    waiting_pods: tuple[str, ...] = ()
    waiting_pods_count: int = 0
    waiting_digest: str | None = None
    #: ``<step>:<owner>`` rollout-restarted by this rotation (spec.rotation.restartWorkloads).
    restarted: tuple[str, ...] = ()
    restart_window_start: dt.datetime | None = None
    restart_window_count: int = 0
    #: Probe endpoints whose served certificate still chains to the old CA (step 4: they hold it).
    probes_serving_old: tuple[str, ...] = ()
    #: Probe endpoints whose served certificate chains to neither CA (a partner's public or own
    #: CA, step 4): they do not depend on the old CA and do not hold the step.
    probes_serving_other: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not ADD_NEW_CA <= self.step <= REMOVE_OLD_CA:
            raise StateError(f"rotation step {self.step} is not between 1 and 5")
        if len(self.step_started_at) != 5:
            raise StateError("step_started_at needs one entry per step")

    @property
    def rolling_back(self) -> bool:
        return self.rolling_back_since is not None

    @property
    def phase(self) -> str:
        return ROLLING_BACK if self.rolling_back else step_name(self.step)

    def entered(self, step: int, now: dt.datetime) -> Rotation:
        starts = list(self.step_started_at)
        starts[step - 1] = starts[step - 1] or now
        return replace(self, step=step, step_started_at=tuple(starts))


@dataclass(frozen=True)
class HistoryEntry:
    """A finished rotation. ``cleanup_secret_name`` is the generated new-CA Secret the operator
    still has to delete (a spare copy after Completed, the discarded CA after Aborted)."""

    id: str
    trigger: str
    outcome: str
    old_ca: str
    new_ca: str | None
    started_at: dt.datetime
    finished_at: dt.datetime
    cleanup_secret_name: str | None = None


@dataclass(frozen=True)
class RotationState:
    current: Rotation | None = None
    history: tuple[HistoryEntry, ...] = ()
    last_request: str | None = None

    @property
    def used_ids(self) -> frozenset[str]:
        ids = {h.id for h in self.history}
        if self.current is not None:
            ids.add(self.current.id)
        return frozenset(ids)

    def retired_fingerprints(self) -> frozenset[str]:
        """CAs this policy put in bundles and has since taken out for good: the old CA of each
        completed rotation, the new CA of each aborted one. The ordinary bundle sync passes these
        as ``remove_fingerprints`` so a target that was missed (or restored from a backup) is
        cleaned; CAs of the running rotation are never in the set."""
        out = set()
        for h in self.history:
            fp = h.old_ca if h.outcome == COMPLETED else h.new_ca
            if fp:
                out.add(fp)
        if self.current is not None:
            out.discard(self.current.old_ca)
            out.discard(self.current.new_ca)
        return frozenset(out)

    # --- JSON ------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """``status.rotation``: every key present, ``null`` when empty (see the module docstring)."""
        out: dict[str, Any] = dict.fromkeys(_ROTATION_KEYS)
        if self.current is not None:
            out.update(_rotation_to_dict(self.current))
        out["history"] = [_history_to_dict(h) for h in self.history]
        out["lastRequest"] = self.last_request
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> RotationState:
        """Read ``status.rotation`` back; missing keys and ``null`` mean empty. Raises StateError."""
        if not data:
            return cls()
        if not isinstance(data, Mapping):
            raise StateError("status.rotation is not an object")
        try:
            current = _rotation_from_dict(data) if data.get("id") else None
            history = tuple(_history_from_dict(h) for h in _list(data, "history"))
            last = data.get("lastRequest")
            return cls(current, history[:MAX_HISTORY], None if last is None else str(last))
        except StateError:
            raise
        except (KeyError, TypeError, ValueError) as e:
            raise StateError(f"status.rotation cannot be read: {type(e).__name__}: {e}") from None


# --- encoding helpers ----------------------------------------------------------------------------

_STEP_KEYS = tuple(_key(s) for s in STEPS)
_ROTATION_KEYS = (
    "id", "trigger", "step", "phase", "oldCA", "newCA", "newCASecretName", "newCAGenerated",
    "retiredCASecretName", "startedAt", "stepStartedAt", "bundlesVerifiedAt", "probesRequestedAt",
    "probes", "targets", "leaves", "reissue", "workloads", "probesServingOldCA", "probesServingOtherCA",
    "stalledSince", "abortRefused",
    "forced", "message",
)


def time_text(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    if t.tzinfo is None:
        raise ValueError("times must be timezone-aware")
    return rfc3339_micro(t)  # exact: the steps' waits are measured from these instants


def _time(value: object) -> dt.datetime | None:
    if value is None:
        return None
    try:
        return parse_rfc3339(str(value), require_zone=True)
    except ValueError as e:
        raise StateError(str(e)) from None


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise StateError(f"status.rotation.{key} is not a list")
    return value


def _obj(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise StateError(f"status.rotation.{key} is not an object")
    return value


def _rotation_to_dict(r: Rotation) -> dict[str, Any]:
    starts = {k: time_text(t) for k, t in zip(_STEP_KEYS, r.step_started_at)}
    starts[_key(ROLLING_BACK)] = time_text(r.rolling_back_since)
    return {
        "id": r.id,
        "trigger": r.trigger,
        "step": r.step,
        "phase": r.phase,
        "oldCA": r.old_ca,
        "newCA": r.new_ca,
        "newCASecretName": r.new_ca_secret_name,
        "newCAGenerated": r.new_ca_generated,
        "retiredCASecretName": r.retired_ca_secret_name,
        "startedAt": time_text(r.started_at),
        "stepStartedAt": starts,
        "bundlesVerifiedAt": time_text(r.bundles_verified_at),
        "probesRequestedAt": time_text(r.probes_requested_at),
        "probes": [
            {"probe": p.probe, "accepted": p.accepted, "at": time_text(p.at), "message": p.message,
             "servedCA": p.served_ca, "servedOtherCA": p.served_other}
            for p in r.probes
        ],
        "targets": {"verified": r.targets_verified, "total": r.targets_total},
        "leaves": {
            "managed": r.leaves_managed,
            "managedOnNewCA": r.leaves_managed_on_new,
            "total": r.leaves_total,
            "onNewCA": r.leaves_on_new,
            "onOldCA": list(r.leaves_on_old),
            "onOldCACount": r.leaves_on_old_count,
            "onOldCADigest": r.leaves_on_old_digest,
            "onNewCADigest": r.leaves_on_new_digest,
            "lastMovedAt": time_text(r.leaves_moved_at),
        },
        "reissue": {
            "windowStart": time_text(r.reissue_window_start),
            "windowCount": r.reissue_window_count,
            "requested": r.reissue_requested,
            "pending": [{"leaf": p.leaf, "at": time_text(p.at)} for p in r.pending],
        },
        "workloads": {
            "waiting": list(r.waiting_pods),
            "waitingCount": r.waiting_pods_count,
            "waitingDigest": r.waiting_digest,
            "restarted": list(r.restarted),
            "restartWindowStart": time_text(r.restart_window_start),
            "restartWindowCount": r.restart_window_count,
        },
        "probesServingOldCA": list(r.probes_serving_old),
        "probesServingOtherCA": list(r.probes_serving_other),
        "stalledSince": time_text(r.stalled_since),
        "abortRefused": r.abort_refused,
        "forced": r.forced,
        "message": r.message,
    }


def _rotation_from_dict(d: Mapping[str, Any]) -> Rotation:
    starts = _obj(d, "stepStartedAt")
    targets, leaves, reissue = _obj(d, "targets"), _obj(d, "leaves"), _obj(d, "reissue")
    workloads = _obj(d, "workloads")
    trigger = str(d.get("trigger") or TRIGGER_REQUEST)
    if trigger not in TRIGGERS:
        raise StateError(f"unknown rotation trigger {trigger!r}")
    started = _time(d.get("startedAt"))
    if started is None:
        raise StateError("status.rotation.startedAt is missing")
    for key in ("oldCA", "newCASecretName", "retiredCASecretName"):
        if not d.get(key):
            raise StateError(f"status.rotation.{key} is missing")
    return Rotation(
        id=str(d["id"]),
        trigger=trigger,
        step=int(d.get("step") or ADD_NEW_CA),
        old_ca=str(d["oldCA"]),
        new_ca=d.get("newCA") or None,
        new_ca_secret_name=str(d["newCASecretName"]),
        new_ca_generated=bool(d.get("newCAGenerated")),
        retired_ca_secret_name=str(d["retiredCASecretName"]),
        started_at=started,
        step_started_at=tuple(_time(starts.get(k)) for k in _STEP_KEYS),
        rolling_back_since=_time(starts.get(_key(ROLLING_BACK))),
        bundles_verified_at=_time(d.get("bundlesVerifiedAt")),
        probes_requested_at=_time(d.get("probesRequestedAt")),
        probes=tuple(
            ProbeRecord(str(p["probe"]), bool(p["accepted"]), _time(p["at"]) or started, str(p.get("message") or ""),
                        p.get("servedCA") or None, bool(p.get("servedOtherCA")) and not p.get("servedCA"))
            for p in _list(d, "probes")
        ),
        targets_verified=int(targets.get("verified") or 0),
        targets_total=int(targets.get("total") or 0),
        leaves_managed=int(leaves.get("managed") or 0),
        leaves_managed_on_new=int(leaves.get("managedOnNewCA") or 0),
        leaves_total=int(leaves.get("total") or 0),
        leaves_on_new=int(leaves.get("onNewCA") or 0),
        leaves_on_old=tuple(str(x) for x in leaves.get("onOldCA") or ()),
        leaves_on_old_count=int(leaves.get("onOldCACount") or 0),
        leaves_on_old_digest=leaves.get("onOldCADigest") or None,
        reissue_window_start=_time(reissue.get("windowStart")),
        reissue_window_count=int(reissue.get("windowCount") or 0),
        reissue_requested=int(reissue.get("requested") or 0),
        pending=tuple(
            PendingReissue(str(p["leaf"]), _time(p["at"]) or started) for p in reissue.get("pending") or ()
        ),
        stalled_since=_time(d.get("stalledSince")),
        abort_refused=bool(d.get("abortRefused")),
        forced=bool(d.get("forced")),
        message=str(d.get("message") or ""),
        leaves_moved_at=_time(leaves.get("lastMovedAt")),
        leaves_on_new_digest=leaves.get("onNewCADigest") or None,
        waiting_pods=tuple(str(x) for x in workloads.get("waiting") or ()),
        waiting_pods_count=int(workloads.get("waitingCount") or 0),
        waiting_digest=workloads.get("waitingDigest") or None,
        restarted=tuple(str(x) for x in workloads.get("restarted") or ()),
        restart_window_start=_time(workloads.get("restartWindowStart")),
        restart_window_count=int(workloads.get("restartWindowCount") or 0),
        probes_serving_old=tuple(str(x) for x in _list(d, "probesServingOldCA")),
        probes_serving_other=tuple(str(x) for x in _list(d, "probesServingOtherCA")),
    )


def _history_to_dict(h: HistoryEntry) -> dict[str, Any]:
    return {
        "id": h.id,
        "trigger": h.trigger,
        "outcome": h.outcome,
        "oldCA": h.old_ca,
        "newCA": h.new_ca,
        "startedAt": time_text(h.started_at),
        "finishedAt": time_text(h.finished_at),
        "cleanupSecretName": h.cleanup_secret_name,
    }


def _history_from_dict(d: object) -> HistoryEntry:
    if not isinstance(d, Mapping):
        raise StateError("status.rotation.history entries must be objects")
    outcome = str(d.get("outcome"))
    if outcome not in OUTCOMES:
        raise StateError(f"unknown rotation outcome {outcome!r}")
    started, finished = _time(d.get("startedAt")), _time(d.get("finishedAt"))
    if started is None or finished is None:
        raise StateError("history entries need startedAt and finishedAt")
    return HistoryEntry(
        id=str(d["id"]),
        trigger=str(d.get("trigger") or TRIGGER_REQUEST),
        outcome=outcome,
        old_ca=str(d["oldCA"]),
        new_ca=d.get("newCA") or None,
        started_at=started,
        finished_at=finished,
        cleanup_secret_name=d.get("cleanupSecretName") or None,
    )


__all__ = [
    "ABORTED", "ADD_NEW_CA", "AWAIT_LEAVES", "COMPLETED", "HistoryEntry", "ISSUE_FROM_NEW_CA",
    "MAX_HISTORY", "MAX_NAMED_LEAVES", "MAX_RESTARTS", "PendingReissue", "ProbeRecord", "REMOVE_OLD_CA",
    "ROLLING_BACK", "Rotation", "RotationState", "STEPS", "StateError", "TRIGGERS",
    "TRIGGER_CA_MISSING", "TRIGGER_EXPIRY", "TRIGGER_REQUEST", "TRIGGER_SUPPLIED", "VERIFY_BUNDLES", "step_name",
    "time_text",
]

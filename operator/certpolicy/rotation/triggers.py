"""Why a rotation starts, what it is called, and where its CAs live.

A rotation's id names everything it creates, so that a decision repeated after a crash names the
same things: the new CA's Secret, the Secret that keeps the retired CA. Ids are

* ``Request`` — the value of the ``certpolicy.io/rotate`` annotation (a new value is a new
  request; the same value never starts a second rotation);
* ``SuppliedCA`` — ``supplied-<fingerprint prefix>`` of the CA in ``spec.rotation.newCASecretName``;
* ``Expiry`` — ``expiry-<fingerprint prefix>`` of the active CA, so the expiry of one CA can
  start one rotation, however often it is re-detected;
* ``CAMissing`` — ``camissing-<fingerprint prefix>`` of the active CA whose Secret is gone: the
  replacement goes through the five steps like any other rotation (a new CA made and swapped
  in on the spot would re-issue leaves that no bundle trusts yet).

Detection is pure and lives here rather than in the driver, so the rules (priority, duplicates,
what a spent user-supplied CA means) are tested once; the driver only reports raw facts.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import dataclass

from certpolicy.pki.fingerprint import short
from certpolicy.rotation.model import CAInfo, Observation, RotationSettings
from certpolicy.rotation.state import (
    TRIGGER_CA_MISSING,
    TRIGGER_EXPIRY,
    TRIGGER_REQUEST,
    TRIGGER_SUPPLIED,
    RotationState,
)

ROTATE_ANNOTATION = "certpolicy.io/rotate"
FORCE_ANNOTATION = "certpolicy.io/rotation-force"

MAX_ID_LENGTH = 63
MAX_SECRET_NAME = 253
_NOT_DNS = re.compile(r"[^a-z0-9-]+")


@dataclass(frozen=True)
class Trigger:
    kind: str  # Request | SuppliedCA | Expiry | CAMissing
    id: str
    detail: str  # human explanation, for events and conditions


def _digest(text: str, n: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:n]


def request_id(annotation_value: str | None) -> str | None:
    """The rotation id for an annotation value (None when blank). Long values are shortened with
    a hash so the id fits in names and printer columns."""
    if annotation_value is None:
        return None
    value = annotation_value.strip()
    if not value:
        return None
    if len(value) <= MAX_ID_LENGTH:
        return value
    return f"{value[: MAX_ID_LENGTH - 9]}-{_digest(value)}"


def expiry_id(old_fingerprint: str) -> str:
    return f"expiry-{short(old_fingerprint)}"


def ca_missing_id(lost_fingerprint: str) -> str:
    return f"camissing-{short(lost_fingerprint)}"


def supplied_id(new_fingerprint: str) -> str:
    return f"supplied-{short(new_fingerprint)}"


def _slug(rotation_id: str) -> str:
    readable = _NOT_DNS.sub("-", rotation_id.lower()).strip("-")[:24].strip("-")
    return f"{readable}-{_digest(rotation_id)}" if readable else _digest(rotation_id)


def _secret_name(ca_secret_name: str, infix: str, rotation_id: str) -> str:
    suffix = f"-{infix}-{_slug(rotation_id)}"
    return ca_secret_name[: MAX_SECRET_NAME - len(suffix)].rstrip("-.") + suffix


def new_ca_secret_name(ca_secret_name: str, rotation_id: str) -> str:
    """Where a generated new CA is stored: a pure function of the rotation id (crash-safe)."""
    return _secret_name(ca_secret_name, "next", rotation_id)


def retired_ca_secret_name(ca_secret_name: str, rotation_id: str) -> str:
    """Where the old CA is kept when the new one is promoted into ``spec.ca.secretName``."""
    return _secret_name(ca_secret_name, "retired", rotation_id)


def expiry_due(active: CAInfo | None, rotate_before: dt.timedelta) -> dt.datetime | None:
    """When the active CA enters its rotateBefore window (None when its expiry is unknown)."""
    if active is None or active.not_after is None:
        return None
    return active.not_after - rotate_before


def usable_supplied_ca(state: RotationState, obs: Observation, settings: RotationSettings) -> CAInfo | None:
    """The user-supplied CA, if it is one a rotation can move to: present, not the active CA, and
    not a CA this policy already retired. Once a supplied CA has been rotated in it is *spent*
    (it is the active CA), and later rotations generate their own."""
    supplied = obs.ca(settings.supplied_ca_secret_name)
    active = outgoing_ca(obs, settings)
    if supplied is None or active is None or supplied.fingerprint == active.fingerprint:
        return None
    if supplied.fingerprint in state.retired_fingerprints():
        return None
    return supplied


def outgoing_ca(obs: Observation, settings: RotationSettings) -> CAInfo | None:
    """The CA a rotation starting now moves away from: the one in ``spec.ca.secretName``, or,
    when that Secret is gone, the lost CA the history records as active."""
    return obs.ca(settings.ca_secret_name) or obs.lost_ca


def detect(state: RotationState, obs: Observation, settings: RotationSettings, now: dt.datetime) -> Trigger | None:
    """The trigger that should start a rotation now, if any (idle policies only).

    Priority: an explicit request, then a lost CA (its Secret is gone), then a supplied CA, then
    expiry. A request whose id was already used is not a trigger (the machine reports it as
    ignored).
    """
    active = outgoing_ca(obs, settings)
    if active is None:
        return None
    used = state.used_ids
    value = obs.rotate_request.strip() if obs.rotate_request else None
    rid = request_id(value)
    if rid is not None and value != state.last_request and rid not in used:
        return Trigger(TRIGGER_REQUEST, rid, f"requested with annotation {ROTATE_ANNOTATION}={rid}")
    if obs.ca(settings.ca_secret_name) is None:
        mid = ca_missing_id(active.fingerprint)
        if mid in used:
            return None
        return Trigger(TRIGGER_CA_MISSING, mid,
                       f"Secret {settings.ca_secret_name} with the active CA {short(active.fingerprint)} is gone "
                       "(its key is lost)")
    supplied = usable_supplied_ca(state, obs, settings)
    if supplied is not None:
        sid = supplied_id(supplied.fingerprint)
        if sid not in used:
            return Trigger(
                TRIGGER_SUPPLIED,
                sid,
                f"a new CA {short(supplied.fingerprint)} was supplied in Secret {settings.supplied_ca_secret_name}",
            )
    due = expiry_due(active, settings.rotate_before)
    if due is not None and now >= due:
        eid = expiry_id(active.fingerprint)
        if eid not in used:
            return Trigger(
                TRIGGER_EXPIRY,
                eid,
                f"the active CA {short(active.fingerprint)} expires at {active.not_after:%Y-%m-%dT%H:%M:%SZ}, "
                f"within rotateBefore",
            )
    return None

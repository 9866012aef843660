"""RFC 3339 timestamps: the one place the operator, the plugin and ``certpolicy check`` write and
read them.

Everything a user reads (status times, a certificate's notAfter, JSON output of the plugin and of
``certpolicy check``, table cells) has whole seconds in UTC with ``Z``: what ``metav1.Time`` holds
(the API server drops a fraction anyway), so two times from two places compare as strings. Only
the API's ``MicroTime`` fields (an Event's ``eventTime``, a Lease's ``acquireTime`` and
``renewTime``) and the rotation's own instants in ``status.rotation`` (the five steps' waits are
measured from them, and a restarted operator must resume the same waits) keep microseconds:
:func:`rfc3339_micro`.

Pure: no kopf, no kubernetes imports; every layer may use it.
"""

from __future__ import annotations

import datetime as dt


def _utc(t: dt.datetime) -> dt.datetime:
    # A naive time is UTC here (cryptography's and the API's times are), never the machine's zone.
    return t.replace(tzinfo=dt.UTC) if t.tzinfo is None else t.astimezone(dt.UTC)


def rfc3339(t: dt.datetime) -> str:
    """``2026-06-01T12:00:00Z``: whole seconds (truncated), UTC."""
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(t: dt.datetime) -> str:
    """``2026-06-01T12:00:00.123456Z``: metav1.MicroTime's wire format."""
    return _utc(t).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_rfc3339(text: str, *, require_zone: bool = False) -> dt.datetime:
    """A timezone-aware UTC datetime from RFC 3339 (``Z`` or an offset, with or without a
    fraction); a time without a zone is taken as UTC, or refused with ``require_zone``. Raises
    ValueError."""
    t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    if require_zone and t.tzinfo is None:
        raise ValueError(f"time {text!r} has no timezone")
    return _utc(t)

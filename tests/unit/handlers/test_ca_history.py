"""status.ca.history stays bounded however many rotations a policy goes through."""

from __future__ import annotations

import datetime as dt

from certpolicy.handlers.ca import MAX_RETIRED_HISTORY, retire
from certpolicy.policy.cahistory import trusted_certificates


def test_only_the_latest_retired_cas_are_kept():
    t0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    history = [{"fingerprint": "sha256:active", "state": "active", "since": "2026-01-01T00:00:00Z"}]
    for i in range(50):  # 50 rotations, each retiring the CA before
        history.append({"fingerprint": f"sha256:{i:04d}", "state": "previous", "since": "2026-01-01T00:00:00Z"})
        history = retire(history, {f"sha256:{i:04d}"}, t0 + dt.timedelta(minutes=i))
    retired = [h["fingerprint"] for h in history if h["state"] == "retired"]
    assert len(retired) == MAX_RETIRED_HISTORY
    assert retired == [f"sha256:{i:04d}" for i in range(50 - MAX_RETIRED_HISTORY, 50)]
    assert [h["fingerprint"] for h in history if h["state"] == "active"] == ["sha256:active"]
    assert trusted_certificates(history) == []  # entries without certificates: nothing to trust

"""status.rotation round-trips through JSON; names are deterministic; the package stays pure."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rotation_world import _strip_nulls

from certpolicy.rotation.state import (
    ABORTED,
    COMPLETED,
    HistoryEntry,
    PendingReissue,
    ProbeRecord,
    Rotation,
    RotationState,
    StateError,
)
from certpolicy.rotation.triggers import new_ca_secret_name, request_id, retired_ca_secret_name

UTC = dt.UTC
times = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2040, 1, 1), timezones=st.just(UTC))
opt_times = st.none() | times
fps = st.text("0123456789abcdef", min_size=4, max_size=8).map(lambda s: "sha256:" + s)
names = st.text("abcdefghijklmnopqrstuvwxyz0123456789-/", min_size=1, max_size=20)


@st.composite
def rotations(draw: st.DrawFn) -> Rotation:
    return Rotation(
        id=draw(names),
        trigger=draw(st.sampled_from(["Request", "Expiry", "SuppliedCA"])),
        step=draw(st.integers(1, 5)),
        old_ca=draw(fps),
        new_ca=draw(st.none() | fps),
        new_ca_secret_name=draw(names),
        new_ca_generated=draw(st.booleans()),
        retired_ca_secret_name=draw(names),
        started_at=draw(times),
        step_started_at=tuple(draw(st.lists(opt_times, min_size=5, max_size=5))),
        rolling_back_since=draw(opt_times),
        bundles_verified_at=draw(opt_times),
        probes_requested_at=draw(opt_times),
        probes=tuple(draw(st.lists(st.builds(ProbeRecord, names, st.booleans(), times, st.text(max_size=10),
                                             st.none() | fps), max_size=3))),
        targets_verified=draw(st.integers(0, 50)),
        targets_total=draw(st.integers(0, 50)),
        leaves_managed=draw(st.integers(0, 9)),
        leaves_on_old=tuple(draw(st.lists(names, max_size=3))),
        leaves_on_old_count=draw(st.integers(0, 9)),
        leaves_on_old_digest=draw(st.none() | names),
        reissue_window_start=draw(opt_times),
        reissue_window_count=draw(st.integers(0, 9)),
        pending=tuple(draw(st.lists(st.builds(PendingReissue, names, times), max_size=3))),
        stalled_since=draw(opt_times),
        abort_refused=draw(st.booleans()),
        forced=draw(st.booleans()),
        message=draw(st.text(max_size=30)),
        leaves_moved_at=draw(opt_times),
        leaves_on_new_digest=draw(st.none() | names),
        waiting_pods=tuple(draw(st.lists(names, max_size=3))),
        waiting_pods_count=draw(st.integers(0, 9)),
        waiting_digest=draw(st.none() | names),
        restarted=tuple(draw(st.lists(names, max_size=3))),
        restart_window_start=draw(opt_times),
        restart_window_count=draw(st.integers(0, 9)),
        probes_serving_old=tuple(draw(st.lists(names, max_size=3))),
    )


history = st.builds(HistoryEntry, names, st.sampled_from(["Request", "Expiry"]), st.sampled_from([COMPLETED, ABORTED]),
                    fps, st.none() | fps, times, times, st.none() | names)
states = st.builds(RotationState, st.none() | rotations(), st.lists(history, max_size=3).map(tuple),
                   st.none() | names)


@settings(max_examples=60)
@given(states)
def test_state_round_trips_through_json_with_and_without_nulls(state: RotationState) -> None:
    wire = json.loads(json.dumps(state.to_dict()))
    assert RotationState.from_dict(wire) == state
    assert RotationState.from_dict(_strip_nulls(wire)) == state


def test_shape_is_camel_case_and_clears_every_field_when_idle() -> None:
    idle = RotationState().to_dict()
    assert idle["id"] is None and idle["phase"] is None and idle["stepStartedAt"] is None
    assert idle["history"] == [] and "lastRequest" in idle
    for key in idle:
        assert re.fullmatch(r"[a-z][A-Za-z]*", key), key
    assert RotationState.from_dict(None) == RotationState() == RotationState.from_dict({})


def test_times_are_rfc3339_utc() -> None:
    t = dt.datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    rot = Rotation("r", "Request", 2, "sha256:aa", None, "n", True, "r", t)
    d = RotationState(rot).to_dict()
    assert d["startedAt"] == "2026-03-01T12:00:00.123456Z"
    assert d["phase"] == "VerifyBundles" and d["step"] == 2


@pytest.mark.parametrize(
    "bad",
    [
        {"id": "x"},  # no CAs, no times
        {"id": "x", "oldCA": "a", "newCASecretName": "n", "retiredCASecretName": "r", "startedAt": "yesterday"},
        {"id": "x", "oldCA": "a", "newCASecretName": "n", "retiredCASecretName": "r",
         "startedAt": "2026-01-01T00:00:00Z", "step": 9},
        {"history": [{"id": "x", "outcome": "Exploded"}]},
        {"history": "nope"},
    ],
)
def test_unreadable_status_is_a_state_error(bad: dict) -> None:
    with pytest.raises(StateError):
        RotationState.from_dict(bad)


def test_retired_fingerprints_come_from_history_only() -> None:
    t = dt.datetime(2026, 1, 1, tzinfo=UTC)
    hist = (
        HistoryEntry("b", "Request", ABORTED, "sha256:old2", "sha256:discarded", t, t),
        HistoryEntry("a", "Request", COMPLETED, "sha256:old1", "sha256:old2", t, t),
    )
    assert RotationState(None, hist).retired_fingerprints() == {"sha256:old1", "sha256:discarded"}
    running = Rotation("c", "Request", 1, "sha256:old2", "sha256:old1", "n", True, "r", t)
    assert RotationState(running, hist).retired_fingerprints() == {"sha256:discarded"}


def test_secret_names_are_deterministic_valid_and_distinct() -> None:
    a = new_ca_secret_name("hl7-uat-ca", "2026-03-01")
    assert a == new_ca_secret_name("hl7-uat-ca", "2026-03-01")
    assert a.startswith("hl7-uat-ca-next-2026-03-01-")
    assert retired_ca_secret_name("hl7-uat-ca", "2026-03-01").startswith("hl7-uat-ca-retired-")
    assert new_ca_secret_name("ca", "A") != new_ca_secret_name("ca", "a")
    dns = re.compile(r"[a-z0-9]([-a-z0-9.]*[a-z0-9])?")
    for rid in ["Weird Value!!", "x" * 300, "日本", "--"]:
        name = new_ca_secret_name("c" * 250, rid)
        assert len(name) <= 253 and dns.fullmatch(name), name
    assert request_id("  ") is None
    assert len(request_id("y" * 500) or "") <= 63


def test_pure_modules_import_neither_kopf_nor_kubernetes() -> None:
    code = (
        "import sys; import certpolicy.rotation, certpolicy.rotation.machine, certpolicy.pki.bundle, "
        "certpolicy.pki.truststore; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('kopf', 'kubernetes')]; print(bad); "
        "sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_settings_from_spec_apply_crd_defaults_and_parse_durations() -> None:
    from certpolicy.policy.spec import PolicySpecError
    from certpolicy.rotation import Probe, RotationSettings

    s = RotationSettings.from_spec({"ca": {"secretName": "hl7-ca"}})
    assert s.ca_secret_name == "hl7-ca" and s.rotate_before == dt.timedelta(hours=2160)
    assert s.propagation_delay == dt.timedelta(minutes=2) and s.leaf_timeout == dt.timedelta(hours=24)
    assert s.reissue_per_minute == 60 and s.probes == () and not s.paused and not s.abort
    s = RotationSettings.from_spec({
        "ca": {"secretName": "hl7-ca", "rotateBefore": "720h"},
        "issuanceLimits": {"perMinute": 5},
        "rotation": {"propagationDelay": "90s", "leafTimeout": "1h30m", "paused": True,
                     "newCASecretName": "user-ca",
                     "probes": [{"host": "p.example.com", "port": 18032, "timeout": "2s"}]},
    })
    assert s.probes == (Probe("p.example.com", 18032, None, dt.timedelta(seconds=2)),)
    assert s.propagation_delay == dt.timedelta(seconds=90) and s.leaf_timeout == dt.timedelta(minutes=90)
    assert s.paused and s.supplied_ca_secret_name == "user-ca" and s.reissue_per_minute == 5
    assert s.leaf_delay == dt.timedelta(seconds=90) and not s.restart_workloads  # defaults to propagationDelay
    s = RotationSettings.from_spec({"ca": {"secretName": "hl7-ca"},
                                    "rotation": {"leafPropagationDelay": "5m", "restartWorkloads": True}})
    assert s.leaf_delay == dt.timedelta(minutes=5) and s.propagation_delay == dt.timedelta(minutes=2)
    assert s.restart_workloads
    with pytest.raises(PolicySpecError) as e:
        RotationSettings.from_spec({"rotation": {"propagationDelay": "2 minutes", "probes": [{"host": "x"}]}})
    assert len(e.value.problems) == 3

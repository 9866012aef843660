"""The plan's forecast: the operator's decide() run forward on a model of the cluster.

Each case is a cluster state the issue (22, item 4) found the old plan wrong about, or a state
where the machine stops for a reason of its own; the forecast must stop where the machine stops,
with the machine's condition reason and message.
"""

from __future__ import annotations

import datetime as dt

from certpolicy.rotation import CAInfo, Leaf, Observation, PodUse, Probe, RotationSettings, RotationState
from certpolicy.rotation.forecast import COMPLETED, HELD, NOT_STARTED, STALLS, forecast
from certpolicy.rotation.probeallow import AllowList

NOW = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
OLD = "sha256:" + "a" * 64
TARGETS = ("ns/ConfigMap/ca/ca.crt", "other/ConfigMap/ca/ca.crt")
ALLOW = AllowList.parse("*.svc")


def verdict(probe: Probe) -> str | None:
    return ALLOW.refusal(probe.host)


def obs(*, leaves: int = 1, unmanaged: int = 0, pods: tuple[PodUse, ...] = ()) -> Observation:
    return Observation(
        ca_secrets={"ca": CAInfo(OLD, NOW + dt.timedelta(days=300))},
        targets={t: frozenset({OLD}) for t in TARGETS},
        leaves=tuple([Leaf(f"ns/leaf-{i}", OLD, True) for i in range(leaves)]
                     + [Leaf(f"ns/theirs-{i}", OLD, False) for i in range(unmanaged)]),
        pods=pods)


def settings(**kw: object) -> RotationSettings:
    return RotationSettings(**{"ca_secret_name": "ca", "propagation_delay": dt.timedelta(minutes=2), **kw})  # type: ignore[arg-type]


def test_a_plain_rotation_completes_after_the_two_delays_with_every_step_entered() -> None:
    fc = forecast(RotationState(), obs(), settings(), NOW, probe_verdict=verdict)
    assert fc.outcome == COMPLETED and fc.reason == COMPLETED and fc.finishes
    assert fc.after == dt.timedelta(minutes=4), fc.after  # propagationDelay + leafPropagationDelay
    assert [(s.step, s.after) for s in fc.steps] == [
        (1, dt.timedelta(0)), (2, dt.timedelta(0)), (3, dt.timedelta(minutes=2)), (4, dt.timedelta(minutes=2)),
        (5, dt.timedelta(minutes=4))]
    assert "RotationCompleted" in [r for r, _ in fc.events]


def test_the_re_issue_bucket_starts_full_so_leaves_within_per_minute_cost_no_time() -> None:
    """The old plan added a whole minute per perMinute leaves (1 min 15 s for an 8 s rotation)."""
    quick = settings(propagation_delay=dt.timedelta(seconds=1))
    assert forecast(RotationState(), obs(leaves=3), quick, NOW, probe_verdict=verdict).after == dt.timedelta(seconds=2)
    # one more than perMinute: the last waits for the next window, and step 4 counts from its move
    over = forecast(RotationState(), obs(leaves=4), settings(propagation_delay=dt.timedelta(seconds=1),
                                                             reissue_per_minute=3), NOW, probe_verdict=verdict)
    assert over.outcome == COMPLETED and over.after == dt.timedelta(seconds=1 + 60 + 1), over.after


def test_a_probe_the_allow_list_refuses_holds_step_2_for_ever_in_the_operators_words() -> None:
    fc = forecast(RotationState(), obs(), settings(probes=(Probe("127.0.0.1", 8443),)), NOW, probe_verdict=verdict)
    assert fc.outcome == HELD and fc.step == 2 and fc.reason == "VerifyBundles"
    assert "ProbeNotAllowed: 127.0.0.1 is not on the operator's probe allow-list (*.svc" in fc.message
    assert fc.after == dt.timedelta(0)  # held: no progress after step 2 was entered (retried probes are none)
    allowed = forecast(RotationState(), obs(), settings(probes=(Probe("gw.team.svc", 8443),)), NOW,
                       probe_verdict=verdict)
    assert allowed.outcome == COMPLETED


def test_a_pod_reading_the_bundle_through_subpath_stalls_step_2_not_breaks_anything() -> None:
    pod = PodUse("ns/subpath", NOW - dt.timedelta(hours=1), None, bundles=frozenset({TARGETS[0]}))
    fc = forecast(RotationState(), obs(pods=(pod,)), settings(leaf_timeout=dt.timedelta(hours=1)), NOW,
                  probe_verdict=verdict)
    assert fc.outcome == STALLS and fc.step == 2 and fc.reason == "Stalled"
    assert fc.after == dt.timedelta(hours=1) and "ns/subpath" in fc.message
    # with restartWorkloads the operator restarts the owner, and the rotation completes
    owned = PodUse("ns/subpath", NOW - dt.timedelta(hours=1), "Deployment/ns/web", bundles=frozenset({TARGETS[0]}))
    done = forecast(RotationState(), obs(pods=(owned,)), settings(restart_workloads=True), NOW, probe_verdict=verdict)
    assert done.outcome == COMPLETED and "RotationRestartedWorkload" in [r for r, _ in done.events]


def test_an_unmanaged_leaf_stalls_step_4_after_leaf_timeout() -> None:
    fc = forecast(RotationState(), obs(unmanaged=1), settings(leaf_timeout=dt.timedelta(hours=3)), NOW,
                  probe_verdict=verdict)
    assert fc.outcome == STALLS and fc.step == 4 and "ns/theirs-0" in fc.message
    assert fc.after == dt.timedelta(minutes=2) + dt.timedelta(hours=3)


def test_a_target_the_operator_cannot_write_holds_the_rotation() -> None:
    fc = forecast(RotationState(), obs(), settings(), NOW, probe_verdict=verdict, unwritable=frozenset({TARGETS[1]}))
    assert fc.outcome == HELD and fc.step == 2 and TARGETS[1] in fc.message


def test_paused_does_not_start_and_says_so() -> None:
    fc = forecast(RotationState(), obs(), settings(paused=True), NOW, probe_verdict=verdict)
    assert fc.outcome == NOT_STARTED and fc.reason == "Paused" and "spec.rotation.paused" in fc.message

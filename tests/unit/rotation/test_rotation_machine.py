"""The rotation machine's behaviours one by one: steps, gates, controls, triggers, status."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace

import pytest
from rotation_world import CA_SECRET, OLD, SUPPLIED, SUPPLIED_SECRET, T0, Driver, LeafModel, Workload, World

from certpolicy.rotation import (
    DeleteCASecret,
    EmitEvent,
    GenerateNewCA,
    Observation,
    PodUse,
    Probe,
    ProbeResult,
    PromoteNewCA,
    ReissueLeaf,
    RestartWorkload,
    RotationSettings,
    RotationState,
    RunProbes,
    UpdateBundles,
    decide,
)
from certpolicy.rotation.machine import POLL, Decision
from certpolicy.rotation.state import ABORTED, COMPLETED
from certpolicy.rotation.triggers import FORCE_ANNOTATION, new_ca_secret_name

TARGETS = ("a/ConfigMap/hl7-ca/ca.crt", "b/ConfigMap/hl7-ca/ca.crt", "c/Secret/hl7-ca/ca.crt")
PROBE = Probe("partner.example.com", 18032)


def make(
    *,
    managed: int = 2,
    unmanaged: int = 1,
    unmanaged_every: dt.timedelta | None = dt.timedelta(minutes=30),
    request: str | None = "r1",
    **settings: object,
) -> Driver:
    world = World()
    world.targets = {t: {OLD} for t in TARGETS}
    for i in range(managed):
        world.leaves[f"integration/managed-{i}"] = LeafModel(OLD, True, None)
    for i in range(unmanaged):
        nxt = T0 + unmanaged_every if unmanaged_every else None
        world.leaves[f"apps/app-{i}"] = LeafModel(OLD, False, unmanaged_every, nxt)
    world.annotation = request
    world.not_after[OLD] = T0 + dt.timedelta(days=400)
    base = {"ca_secret_name": CA_SECRET, "propagation_delay": dt.timedelta(minutes=2)}
    return Driver(world, RotationSettings(**{**base, **settings}))  # type: ignore[arg-type]


def run_until(driver: Driver, done: Callable[[Decision], bool], limit: int = 500) -> Decision:
    """Drive without crashes, moving the clock to each requested wake-up."""
    for _ in range(limit):
        d = driver.step()
        if done(d):
            return d
        driver.world.advance(d.next_wake or driver.world.now + dt.timedelta(minutes=5))
    raise AssertionError(f"not reached; last condition: {d.condition}")


def phase(driver: Driver) -> str | None:
    cur = driver.state.current
    return cur.phase if cur else None


def reasons(driver: Driver) -> list[str]:
    return [e.reason for e in driver.world.events]


# --- the happy path ------------------------------------------------------------------------------


def test_full_rotation_walks_the_five_steps_with_events_and_status() -> None:
    driver = make()
    seen: list[tuple[int | None, str]] = []

    def record(d: Decision) -> bool:
        cur = d.state.current
        seen.append((cur.step if cur else None, d.condition.reason))
        return cur is None

    d = run_until(driver, record)
    assert d.condition.reason == COMPLETED and d.condition.status is False
    steps = [s for s, _ in seen if s is not None]
    assert steps == sorted(steps) and set(steps) == {1, 2, 3, 4, 5}
    assert reasons(driver)[:1] == ["RotationStarted"]
    for r in ("RotationVerifyBundles", "RotationIssueFromNewCA", "RotationAwaitLeaves", "RotationRemoveOldCA",
              "RotationCompleted", "RotationLeavesOnOldCA"):
        assert r in reasons(driver)
    new = driver.world.generated[0]
    assert all(fps == {new} for fps in driver.world.targets.values())
    h = driver.state.history[0]
    assert (h.outcome, h.old_ca, h.new_ca, h.id) == (COMPLETED, OLD, new, "r1")
    assert driver.state.retired_fingerprints() == {OLD}
    # The spare copy of the new CA is deleted once it lives in spec.ca.secretName.
    assert new_ca_secret_name(CA_SECRET, "r1") not in driver.world.ca_secrets
    assert driver.world.ca_secrets[CA_SECRET] == new


def test_status_counts_targets_and_leaves() -> None:
    driver = make(managed=3, unmanaged=2, unmanaged_every=None)
    d = run_until(driver, lambda d: d.state.current is not None and d.state.current.step == 4)
    status = d.state.to_dict()
    assert status["step"] == 4 and status["phase"] == "AwaitLeaves"
    assert status["targets"] == {"verified": 3, "total": 3}
    assert status["leaves"]["managed"] == 3
    assert status["oldCA"] == OLD and status["newCA"] == driver.world.generated[0]
    assert set(status["stepStartedAt"]) >= {"addNewCA", "verifyBundles", "issueFromNewCA", "awaitLeaves"}
    assert status["stepStartedAt"]["awaitLeaves"] is not None
    d = driver.step()
    assert d.state.current.leaves_managed_on_new == 3
    assert d.state.current.leaves_on_old == ("apps/app-0", "apps/app-1")
    assert "apps/app-0" in d.condition.message


def test_new_ca_is_recorded_only_once_observed_and_generated_once_after_a_lost_write() -> None:
    driver = make()
    d = driver.step()
    gen = [a for a in d.actions if isinstance(a, GenerateNewCA)]
    assert len(gen) == 1 and d.state.current.new_ca is None
    assert gen[0].secret_name == new_ca_secret_name(CA_SECRET, "r1")
    # Perform the generation but "crash" before the status write: the state still says nothing.
    driver.world.apply(gen[0])
    d2 = decide(RotationState(), driver.world.observe(RotationState(), driver.settings), driver.settings,
                driver.world.now)
    again = [a for a in d2.actions if isinstance(a, GenerateNewCA)]
    assert again == gen  # same Secret: create-only finds the first CA
    driver.world.apply(again[0])
    assert len(driver.world.generated) == 1
    run_until(driver, lambda d: d.state.current is None)
    assert len(driver.world.generated) == 1


def test_nothing_refers_to_the_new_ca_before_it_exists() -> None:
    driver = make()
    d = driver.step()
    assert not [a for a in d.actions if isinstance(a, (UpdateBundles, PromoteNewCA, ReissueLeaf))]


def test_each_target_is_verified_on_its_own() -> None:
    driver = make(propagation_delay=dt.timedelta(0))
    driver.step()  # generate
    d = driver.step()  # add to every target, step 2
    assert [a for a in d.actions if isinstance(a, UpdateBundles)][0].targets == TARGETS
    # Someone overwrites one target (a tool that replaces the whole store).
    driver.world.targets[TARGETS[1]] = {OLD}
    d = driver.step()
    ups = [a for a in d.actions if isinstance(a, UpdateBundles)]
    assert ups and ups[0].targets == (TARGETS[1],)
    assert d.state.current.step == 2 and d.state.current.targets_verified == 2
    d = driver.step()
    assert d.state.current.step >= 3


def test_propagation_delay_counts_from_verification_and_sets_a_timer() -> None:
    driver = make(managed=0, unmanaged=0, propagation_delay=dt.timedelta(seconds=45))
    driver.step()
    driver.step()
    d = driver.step()  # all targets verified now
    cur = d.state.current
    assert cur.step == 2 and cur.bundles_verified_at == driver.world.now
    assert d.next_wake == driver.world.now + dt.timedelta(seconds=45)
    driver.world.advance(driver.world.now + dt.timedelta(seconds=44))
    assert driver.step().state.current.step == 2
    driver.world.advance(driver.world.now + dt.timedelta(seconds=1))
    assert driver.step().state.current.step >= 3
    # A long delay is still waited out in full; meanwhile a backstop poll (POLL) re-checks targets.
    driver = make(managed=0, unmanaged=0, propagation_delay=dt.timedelta(hours=1))
    driver.step()
    driver.step()
    d = driver.step()
    assert d.next_wake == driver.world.now + POLL
    assert "propagation delay until 2026-03-01T13:00:00Z" in d.condition.message


def test_reissue_is_rate_capped_per_minute() -> None:
    driver = make(managed=5, unmanaged=0, reissue_per_minute=2, propagation_delay=dt.timedelta(0))
    d = run_until(driver, lambda d: any(isinstance(a, ReissueLeaf) for a in d.actions))
    assert len([a for a in d.actions if isinstance(a, ReissueLeaf)]) == 2
    window_end = driver.world.now + dt.timedelta(minutes=1)
    assert d.next_wake is not None and d.next_wake <= window_end
    driver.world.advance(d.next_wake)
    d = driver.step()  # same window: nothing more
    assert not [a for a in d.actions if isinstance(a, ReissueLeaf)]
    assert d.next_wake == window_end
    driver.world.advance(window_end)
    d = driver.step()
    assert len([a for a in d.actions if isinstance(a, ReissueLeaf)]) == 2
    assert d.state.current.reissue_requested == 4


# --- probes --------------------------------------------------------------------------------------


def test_probe_gate_holds_until_the_probe_accepts() -> None:
    driver = make(managed=1, unmanaged=0, probes=(PROBE,), propagation_delay=dt.timedelta(0))
    driver.world.probes = {PROBE.id: 1.0}  # refuses every handshake
    d = run_until(driver, lambda d: any(isinstance(a, RunProbes) for a in d.actions))
    run = [a for a in d.actions if isinstance(a, RunProbes)][0]
    assert run.probes == (PROBE,) and run.ca.fingerprint == driver.world.generated[0]
    for _ in range(5):
        driver.world.advance(driver.world.now + dt.timedelta(seconds=30))
        d = driver.step()
        assert d.state.current.step == 2
        assert not [a for a in d.actions if isinstance(a, (PromoteNewCA, ReissueLeaf))]
    assert "refused" in d.condition.message and PROBE.id in d.condition.message
    driver.world.probes = {PROBE.id: 0.0}
    d = run_until(driver, lambda d: d.state.current.step >= 3)
    assert d.state.current.probes[0].accepted


@pytest.mark.parametrize("retry", [dt.timedelta(seconds=30), dt.timedelta(seconds=2)])
def test_refused_probes_are_run_again_every_probe_retry(retry: dt.timedelta) -> None:
    """``settings.probe_retry`` (CERTPOLICY_PROBE_RETRY) paces the re-runs: asked for again when
    it has passed since the last request, not before, and the loop is woken by then."""
    driver = make(managed=1, unmanaged=0, probes=(PROBE,), propagation_delay=dt.timedelta(0), probe_retry=retry)
    driver.world.probes = {PROBE.id: 1.0}  # refuses every handshake
    d = run_until(driver, lambda d: any(isinstance(a, RunProbes) for a in d.actions))
    asked = driver.world.now
    assert d.next_wake is not None and asked < d.next_wake <= asked + retry
    driver.world.advance(asked + retry - dt.timedelta(seconds=1))
    assert not [a for a in driver.step().actions if isinstance(a, RunProbes)]
    driver.world.advance(asked + retry)
    d = driver.step()
    assert [a for a in d.actions if isinstance(a, RunProbes)] and d.next_wake <= asked + 2 * retry


def test_stale_or_foreign_probe_results_do_not_open_the_gate() -> None:
    settings = RotationSettings(CA_SECRET, probes=(PROBE,), propagation_delay=dt.timedelta(minutes=2))
    driver = make(managed=0, unmanaged=0, probes=(PROBE,))
    driver.step()
    driver.step()
    d = driver.step()
    state, gate = d.state, d.state.current.bundles_verified_at + settings.propagation_delay
    new = state.current.new_ca
    world = driver.world
    world.advance(gate)
    obs = world.observe(state, settings)
    early = ProbeResult(PROBE.id, new, True, gate - dt.timedelta(seconds=1))
    other_ca = ProbeResult(PROBE.id, OLD, True, gate)
    d = decide(state, replace(obs, probe_results=(early, other_ca)), settings, world.now)
    assert d.state.current.step == 2
    ok = ProbeResult(PROBE.id, new, True, gate)
    d = decide(state, replace(obs, probe_results=(ok,)), settings, world.now)
    assert d.state.current.step == 3


# --- pause and abort -----------------------------------------------------------------------------


def test_pause_holds_at_the_current_step_and_resume_continues() -> None:
    driver = make(propagation_delay=dt.timedelta(0))
    run_until(driver, lambda d: d.state.current is not None and d.state.current.step == 2)
    driver.set(paused=True)
    before = {k: set(v) for k, v in driver.world.targets.items()}
    for _ in range(5):
        d = driver.step()
        assert not [a for a in d.actions if not isinstance(a, EmitEvent)]
        assert d.condition.reason == "Paused" and d.condition.status is True
        assert d.next_wake is None
        driver.world.advance(driver.world.now + dt.timedelta(hours=1))
    assert d.state.current.step == 2
    assert before == {k: set(v) for k, v in driver.world.targets.items()}
    driver.set(paused=False)
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED


def test_paused_policy_does_not_start_a_due_rotation() -> None:
    driver = make(paused=True)
    d = driver.step()
    assert d.state.current is None and not d.actions
    assert d.condition.reason == "Paused" and "r1" in d.condition.message
    driver.set(paused=False)
    assert driver.step().state.current is not None


@pytest.mark.parametrize("abort_in_step", [1, 2])
def test_abort_before_step_3_rolls_back_and_discards_the_new_ca(abort_in_step: int) -> None:
    driver = make(propagation_delay=dt.timedelta(hours=1))
    run_until(driver, lambda d: d.state.current is not None and d.state.current.step == abort_in_step
              and (abort_in_step == 1 or d.state.current.bundles_verified_at is not None))
    new_secret = new_ca_secret_name(CA_SECRET, "r1")
    if abort_in_step == 1:
        assert new_secret in driver.world.ca_secrets or driver.world.generated == []
    driver.set(abort=True)
    d = driver.step()
    assert "RotationAborting" in [e.reason for e in d.events]
    # In step 1 the targets may not hold the new CA yet: the rollback can finish at once.
    assert d.condition.reason in ("RollingBack", ABORTED)
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == ABORTED
    assert all(fps == {OLD} for fps in driver.world.targets.values())
    assert new_secret not in driver.world.ca_secrets
    assert driver.world.ca_secrets[CA_SECRET] == OLD
    h = driver.state.history[0]
    assert h.outcome == ABORTED
    # abort stays set: nothing restarts; a new request waits until abort is cleared.
    driver.world.annotation = "r2"
    d = driver.step()
    assert d.state.current is None and d.condition.reason == "Pending"
    driver.set(abort=False)
    assert driver.step().state.current.id == "r2"


def test_abort_is_refused_from_step_3_and_the_rotation_goes_forward() -> None:
    driver = make(unmanaged_every=dt.timedelta(minutes=30), propagation_delay=dt.timedelta(0))
    run_until(driver, lambda d: d.state.current is not None and d.state.current.step >= 3)
    driver.set(abort=True)
    d = driver.step()
    assert "Abort refused" in d.condition.message
    assert [e.reason for e in d.events].count("RotationAbortRefused") == 1
    d = driver.step()
    assert "RotationAbortRefused" not in [e.reason for e in d.events]  # said once, not on every poll
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED


def test_a_forgotten_step_3_is_rederived_and_cannot_be_aborted() -> None:
    """The status write that recorded step 3 was lost after the promotion happened."""
    driver = make(propagation_delay=dt.timedelta(minutes=2))
    run_until(driver, lambda d: d.state.current is not None and d.state.current.step == 2
              and d.state.current.bundles_verified_at is not None)
    driver.world.advance(driver.state.current.bundles_verified_at + dt.timedelta(minutes=2))
    stale = driver.persisted
    d = driver.step()  # step 3: promote + re-issue, performed...
    assert d.state.current.step == 3
    driver.persisted = stale  # ...but the status write is lost
    driver.set(abort=True)
    d = driver.step()
    assert d.state.current.step >= 3 and not d.state.current.rolling_back
    assert "RotationResumed" in [e.reason for e in d.events]
    assert d.state.current.abort_refused


# --- AwaitLeaves ---------------------------------------------------------------------------------


def test_stalled_after_leaf_timeout_names_the_leaves_then_force_moves_on() -> None:
    driver = make(unmanaged=2, unmanaged_every=None, leaf_timeout=dt.timedelta(hours=2),
                  propagation_delay=dt.timedelta(0))
    d = run_until(driver, lambda d: d.state.current is not None and d.state.current.step == 4)
    assert d.next_wake == driver.world.now  # step 4 is judged in a fresh decision, at once
    d = driver.step()
    assert d.condition.reason == "AwaitLeaves"
    named = [e for e in driver.world.events if e.reason == "RotationLeavesOnOldCA"]
    assert len(named) == 1 and "apps/app-0" in named[0].message and "apps/app-1" in named[0].message
    deadline = d.state.current.step_started_at[3] + dt.timedelta(hours=2)
    assert d.next_wake is not None and d.next_wake <= deadline
    driver.world.advance(deadline)
    d = driver.step()
    assert d.condition.reason == "Stalled" and d.condition.status is True
    assert "apps/app-0" in d.condition.message and FORCE_ANNOTATION in d.condition.message
    assert [e.reason for e in d.events] == ["RotationStalled"]
    assert driver.step().condition.reason == "Stalled"
    # One leaf is replaced by hand: the list changes, so it is named again.
    driver.world.leaves["apps/app-0"].issuer = driver.world.ca_secrets[CA_SECRET]
    d = driver.step()
    assert "RotationLeavesOnOldCA" in [e.reason for e in d.events] and "apps/app-0" not in d.condition.message
    # A force annotation for another rotation id does nothing; the right one moves on.
    driver.world.force = "some-other-rotation"
    assert driver.step().state.current.step == 4
    driver.world.force = "r1"
    driver.world.check_invariant = False  # forcing knowingly breaks the named leaf
    d = driver.step()
    assert "RotationForced" in [e.reason for e in d.events]
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED


def test_replacing_the_leaves_unblocks_await_leaves() -> None:
    driver = make(unmanaged=1, unmanaged_every=None, propagation_delay=dt.timedelta(0))
    run_until(driver, lambda d: d.state.current is not None and d.state.current.step == 4)
    driver.world.leaves["apps/app-0"].issuer = driver.world.ca_secrets[CA_SECRET]
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED


def test_a_managed_leaf_that_is_not_ready_holds_step_3_and_step_4_although_it_chains_to_the_new_ca() -> None:
    """spec.ca.certManager: a Certificate re-issued from the new CA but not Ready (still issuing, or
    failed) is waited for, by name, until it is Ready."""
    driver = make(managed=2, unmanaged=0, propagation_delay=dt.timedelta(0))
    driver.world.leaves["integration/managed-1"].ready = False
    d = _at_step(driver, 3)
    for _ in range(5):
        d = driver.step()
        driver.world.advance(driver.world.now + dt.timedelta(minutes=1))
    new = driver.world.ca_secrets[CA_SECRET]
    assert driver.world.leaves["integration/managed-1"].issuer == new
    assert d.state.current is not None and d.state.current.step == 3
    # Past step 3 (Ready again), then not Ready at step 4: named, and the old CA stays.
    driver.world.leaves["integration/managed-1"].ready = True
    d = _at_step(driver, 4)
    driver.world.leaves["integration/managed-0"].ready = False
    for _ in range(3):
        d = driver.step()
        driver.world.advance(driver.world.now + dt.timedelta(minutes=1))
    assert d.state.current is not None and d.state.current.step == 4
    assert "integration/managed-0" in d.condition.message and "not Ready" in d.condition.message
    driver.world.leaves["integration/managed-0"].ready = True
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED


def test_old_ca_is_not_removed_while_a_leaf_chains_to_it_again() -> None:
    driver = make(unmanaged=1, unmanaged_every=None, propagation_delay=dt.timedelta(0))
    run_until(driver, lambda d: d.state.current is not None and d.state.current.step == 4)
    driver.world.leaves["apps/app-0"].issuer = driver.world.ca_secrets[CA_SECRET]
    d = driver.step()
    assert d.state.current.step == 5
    # Before the removal is performed, someone deploys a leaf from the old CA.
    driver.world.leaves["apps/late"] = LeafModel(OLD, False, None)
    for t in TARGETS:
        driver.world.targets[t] |= {OLD}
    d = driver.step()
    assert not [a for a in d.actions if isinstance(a, UpdateBundles)]
    assert "apps/late" in d.condition.message


# --- triggers ------------------------------------------------------------------------------------


def test_the_same_request_value_never_starts_a_second_rotation() -> None:
    driver = make(unmanaged_every=dt.timedelta(minutes=5), propagation_delay=dt.timedelta(0))
    run_until(driver, lambda d: d.state.current is None and bool(d.state.history))
    for _ in range(3):
        d = driver.step()
        assert d.state.current is None
    assert driver.state.last_request == "r1"
    driver.world.annotation = "r2"
    d = driver.step()
    assert d.state.current.id == "r2"
    # A new value while r2 runs is ignored (and consumed), not queued.
    driver.world.annotation = "r3"
    d = driver.step()
    assert d.state.current.id == "r2" and "RotationRequestIgnored" in [e.reason for e in d.events]
    run_until(driver, lambda d: d.state.current is None)
    assert driver.step().state.current is None
    # Going back to an id that already ran is ignored with an event.
    driver.world.annotation = "r1"
    d = driver.step()
    assert d.state.current is None and [e.reason for e in d.events] == ["RotationRequestIgnored"]
    assert [h.id for h in driver.state.history] == ["r2", "r1"]


def test_user_supplied_ca_rotates_without_generating_and_is_then_spent() -> None:
    driver = make(request=None, supplied_ca_secret_name=SUPPLIED_SECRET, unmanaged_every=dt.timedelta(minutes=5),
                  propagation_delay=dt.timedelta(0))
    driver.world.ca_secrets[SUPPLIED_SECRET] = SUPPLIED
    d = driver.step()
    cur = d.state.current
    assert cur.trigger == "SuppliedCA" and cur.new_ca == SUPPLIED and not cur.new_ca_generated
    assert not [a for a in d.actions if isinstance(a, GenerateNewCA)]
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED
    assert driver.world.generated == []
    assert driver.world.ca_secrets[SUPPLIED_SECRET] == SUPPLIED  # never deleted
    assert driver.world.ca_secrets[CA_SECRET] == SUPPLIED
    assert all(fps == {SUPPLIED} for fps in driver.world.targets.values())
    for _ in range(3):
        assert driver.step().state.current is None
    # A later request generates a fresh CA: the supplied one is now the active CA.
    driver.world.annotation = "later"
    d = driver.step()
    assert d.state.current.new_ca_generated


def test_request_uses_the_supplied_ca_when_one_is_configured() -> None:
    driver = make(supplied_ca_secret_name=SUPPLIED_SECRET)
    driver.world.ca_secrets[SUPPLIED_SECRET] = SUPPLIED
    cur = driver.step().state.current
    assert cur.trigger == "Request" and cur.new_ca == SUPPLIED and cur.new_ca_secret_name == SUPPLIED_SECRET


def test_configured_but_missing_supplied_ca_holds_the_start() -> None:
    driver = make(supplied_ca_secret_name=SUPPLIED_SECRET)
    d = driver.step()
    assert d.state.current is None and d.condition.reason == "Pending"
    assert SUPPLIED_SECRET in d.condition.message


def test_expiry_trigger_and_its_timer() -> None:
    driver = make(request=None, rotate_before=dt.timedelta(days=90))
    driver.world.not_after[OLD] = T0 + dt.timedelta(days=100)
    d = driver.step()
    assert d.state.current is None and d.condition.reason == "Idle"
    assert d.next_wake == T0 + dt.timedelta(days=10)
    driver.world.leaves.clear()  # no leaf renewals over ten simulated days
    driver.world.advance(d.next_wake)
    d = driver.step()
    assert d.state.current.trigger == "Expiry" and d.state.current.id.startswith("expiry-")
    d = run_until(driver, lambda d: d.state.current is None)
    # The new CA is far from expiry: no second rotation, timer years ahead.
    d = driver.step()
    assert d.state.current is None and d.next_wake > driver.world.now + dt.timedelta(days=3000)


def test_aborted_expiry_rotation_does_not_restart_by_itself() -> None:
    driver = make(request=None, managed=0, unmanaged=0)
    driver.world.not_after[OLD] = T0 + dt.timedelta(days=5)
    driver.step()
    driver.set(abort=True)
    run_until(driver, lambda d: d.state.current is None)
    driver.set(abort=False)
    d = driver.step()
    assert d.state.current is None and d.condition.reason == ABORTED
    assert "request another" in d.condition.message
    assert d.next_wake is None  # no busy loop on a due-but-spent trigger


# --- contract details ----------------------------------------------------------------------------


def test_decide_needs_an_aware_utc_now() -> None:
    settings = RotationSettings(CA_SECRET)
    with pytest.raises(ValueError):
        decide(RotationState(), Observation(), settings, dt.datetime(2026, 1, 1))


def test_no_ca_means_idle() -> None:
    d = decide(RotationState(), Observation(rotate_request="x"), RotationSettings(CA_SECRET), T0)
    assert d.state.current is None and not d.actions and d.condition.reason == "Idle"


def test_actions_never_name_a_secret_that_does_not_hold_the_ca() -> None:
    """World.apply raises when an action's CARef disagrees with the Secret; run a full rotation."""
    driver = make(managed=3, unmanaged=2, probes=(PROBE,))
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED
    assert not any(isinstance(a, DeleteCASecret) and a.secret_name == CA_SECRET for a in d.actions)


def test_events_and_conditions_carry_no_key_material() -> None:
    driver = make(managed=2, unmanaged=2, probes=(PROBE,))
    run_until(driver, lambda d: d.state.current is None)
    for e in driver.world.events:
        assert "PRIVATE" not in e.message and "BEGIN" not in e.message
        assert OLD not in e.message  # fingerprints are shortened in human text


def test_a_vanished_new_ca_holds_the_rotation_but_not_its_rollback() -> None:
    driver = make(propagation_delay=dt.timedelta(hours=1))
    run_until(driver, lambda d: d.state.current is not None and d.state.current.step == 2)
    new = driver.state.current.new_ca
    del driver.world.ca_secrets[new_ca_secret_name(CA_SECRET, "r1")]
    driver.world.advance(driver.world.now + dt.timedelta(hours=2))
    d = driver.step()
    assert d.state.current.step == 2 and "Holding" in d.condition.message
    assert not [a for a in d.actions if not isinstance(a, EmitEvent)]
    driver.set(abort=True)
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == ABORTED
    assert all(new not in fps for fps in driver.world.targets.values())


def test_unreadable_target_is_rewritten_not_counted() -> None:
    driver = make(propagation_delay=dt.timedelta(0))
    driver.step()
    d = driver.step()
    obs = driver.world.observe(d.state, driver.settings)
    targets = dict(obs.targets)
    targets[TARGETS[0]] = None
    d2 = decide(d.state, replace(obs, targets=targets), driver.settings, driver.world.now)
    assert d2.state.current.step == 2 and d2.state.current.targets_verified == 2
    assert [a.targets for a in d2.actions if isinstance(a, UpdateBundles)] == [(TARGETS[0],)]


# --- AwaitLeaves: evidence that workloads use the new leaves --------------------------------------


def _at_step(driver: Driver, step: int) -> Decision:
    return run_until(driver, lambda d: d.state.current is not None and d.state.current.step == step)


def _step_4_judged(driver: Driver) -> Decision:
    d = _at_step(driver, 4)
    assert d.next_wake == driver.world.now  # never judged in the decision that entered it
    return driver.step()


def test_step_4_waits_the_leaf_propagation_delay_from_the_last_leaf_move_recorded_in_status() -> None:
    driver = make(unmanaged=0, propagation_delay=dt.timedelta(seconds=30),
                  leaf_propagation_delay=dt.timedelta(minutes=5))
    d = _step_4_judged(driver)
    moved = d.state.current.leaves_moved_at
    assert moved is not None and d.state.to_dict()["leaves"]["lastMovedAt"] is not None
    assert d.state.current.step == 4 and "leaf propagation delay until" in d.condition.message
    assert d.next_wake <= moved + dt.timedelta(minutes=5)
    assert f"until {moved + dt.timedelta(minutes=5):%Y-%m-%dT%H:%M:%SZ}" in d.condition.message
    # A restarted operator reads the instant back from status and waits for the same moment.
    driver.world.advance(moved + dt.timedelta(minutes=4))
    driver.persisted = dict(driver.persisted)
    assert driver.step().state.current.step == 4
    driver.world.advance(moved + dt.timedelta(minutes=5))
    d = driver.step()
    assert d.state.current is None or d.state.current.step == 5


def test_leaf_propagation_delay_defaults_to_the_propagation_delay() -> None:
    driver = make(unmanaged=0, propagation_delay=dt.timedelta(minutes=3))
    d = _step_4_judged(driver)
    assert f"until {d.state.current.leaves_moved_at + dt.timedelta(minutes=3):%Y-%m-%dT%H:%M:%SZ}" in d.condition.message


def test_a_leaf_moving_late_restarts_the_delay() -> None:
    driver = make(unmanaged=1, unmanaged_every=None, propagation_delay=dt.timedelta(0),
                  leaf_propagation_delay=dt.timedelta(minutes=2))
    d = _step_4_judged(driver)
    assert "apps/app-0" in d.condition.message
    driver.world.advance(driver.world.now + dt.timedelta(minutes=30))
    driver.world.leaves["apps/app-0"].issuer = driver.world.ca_secrets[CA_SECRET]
    d = driver.step()
    assert d.state.current.leaves_moved_at == driver.world.now
    assert d.state.current.step == 4
    assert f"until {driver.world.now + dt.timedelta(minutes=2):%Y-%m-%dT%H:%M:%SZ}" in d.condition.message


def _pod_world(restart: bool, **settings: object) -> Driver:
    driver = make(unmanaged=0, propagation_delay=dt.timedelta(0), restart_workloads=restart, **settings)
    driver.world.workloads = {
        "integration/env-app": Workload("integration/managed-0", TARGETS[0], leaf_at_start=True,
                                        owner="Deployment/integration/env-app"),
        "integration/bare": Workload("integration/managed-1", TARGETS[0], leaf_at_start=True),
    }
    driver.world.record()
    return driver


def test_pods_reading_a_leaf_only_at_start_are_named_then_stall_after_leaf_timeout() -> None:
    driver = _pod_world(False, leaf_timeout=dt.timedelta(hours=1))
    d = _step_4_judged(driver)
    cur = d.state.current
    assert cur.step == 4 and cur.waiting_pods == ("integration/bare", "integration/env-app")
    assert d.state.to_dict()["workloads"]["waiting"] == ["integration/bare", "integration/env-app"]
    named = [e for e in d.events if e.reason == "RotationWaitingForPods"]
    assert len(named) == 1 and "integration/env-app" in named[0].message and "restartWorkloads" in named[0].message
    assert not [a for a in d.actions if isinstance(a, RestartWorkload)]
    assert not [e for e in driver.step().events if e.reason == "RotationWaitingForPods"]  # on change only
    driver.world.advance(cur.step_started_at[3] + dt.timedelta(hours=1))
    d = driver.step()
    assert d.condition.reason == "Stalled" and "integration/bare" in d.condition.message
    # Someone restarts both Pods: the rotation goes on.
    for name in driver.world.workloads:
        driver.world.restart(name, driver.world.now)
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED and driver.world.workload_violations() == []


def test_restart_workloads_restarts_each_owner_once_paced_and_with_an_event() -> None:
    driver = _pod_world(True, reissue_per_minute=1)
    driver.world.workloads["integration/env-app-2"] = Workload(
        "integration/managed-0", TARGETS[0], leaf_at_start=True, owner="StatefulSet/integration/db")
    d = _step_4_judged(driver)
    restarts = [a for a in d.actions if isinstance(a, RestartWorkload)]
    assert [(a.owner, a.step) for a in restarts] == [("Deployment/integration/env-app", 4)]  # 1 per minute
    assert restarts[0].not_before == d.state.current.leaves_moved_at
    assert [e.reason for e in d.events].count("RotationRestartedWorkload") == 1
    assert d.state.current.restarted == ("4:Deployment/integration/env-app",)
    d = driver.step()  # same minute: nothing more
    assert not [a for a in d.actions if isinstance(a, RestartWorkload)]
    driver.world.advance(driver.world.now + dt.timedelta(minutes=1))
    d = driver.step()
    assert [a.owner for a in d.actions if isinstance(a, RestartWorkload)] == ["StatefulSet/integration/db"]
    # The bare Pod has no owner to restart: it stays named.
    assert driver.step().state.current.waiting_pods == ("integration/bare",)
    for _ in range(5):
        d = driver.step()
        assert not [a for a in d.actions if isinstance(a, RestartWorkload)]  # never twice
    driver.world.restart("integration/bare", driver.world.now)
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED and driver.world.workload_violations() == []


def test_pods_reading_the_bundle_only_at_start_hold_step_2() -> None:
    driver = make(unmanaged=0, propagation_delay=dt.timedelta(0))
    driver.world.workloads = {"apps/java": Workload("integration/managed-0", TARGETS[1], bundle_at_start=True,
                                                    owner="Deployment/apps/java")}
    driver.world.record()
    d = run_until(driver, lambda d: any(e.reason == "RotationWaitingForPods" for e in d.events))
    assert d.state.current.step == 2 and "apps/java" in d.condition.message
    assert not [a for a in d.actions if isinstance(a, (ReissueLeaf, PromoteNewCA, RestartWorkload))]
    assert driver.step().state.current.step == 2
    driver.set(restart_workloads=True)
    d = driver.step()
    assert [(a.owner, a.step) for a in d.actions if isinstance(a, RestartWorkload)] == [("Deployment/apps/java", 2)]
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED and driver.world.workload_violations() == []


def test_a_pod_not_started_yet_loads_what_is_current_and_holds_nothing() -> None:
    pod = PodUse("apps/pending", None, None, frozenset({"a/b"}))
    assert not pod.started_before(T0)


def test_probe_endpoints_must_serve_a_leaf_from_the_new_ca() -> None:
    driver = make(unmanaged=0, probes=(PROBE,), propagation_delay=dt.timedelta(0))
    serving = {"ca": OLD}
    driver.world.served_by = lambda probe: serving["ca"]  # type: ignore[method-assign]
    d = _step_4_judged(driver)
    runs = [a for a in d.actions if isinstance(a, RunProbes)]
    assert runs and {r.fingerprint for r in runs[0].verify_served} == {OLD, driver.world.generated[0]}
    d = driver.step()
    assert d.state.current.step == 4 and d.state.current.probes_serving_old == (PROBE.id,)
    assert "serves a leaf from the old CA" in d.condition.message
    assert d.state.to_dict()["probesServingOldCA"] == [PROBE.id]
    serving["ca"] = driver.world.generated[0]
    driver.world.advance(driver.world.now + dt.timedelta(seconds=30))
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED


def test_a_partner_serving_its_own_ca_does_not_hold_step_4_and_is_named_as_such() -> None:
    """The HL7 partner link: the server certificate comes from the partner's CA, only the client
    certificates from ours. Step 4 asks that it accepts the new CA's canary and serves no chain to
    the old CA; a third CA's chain does not block, and status lists it as such."""
    driver = make(unmanaged=0, probes=(PROBE,), propagation_delay=dt.timedelta(0))
    driver.world.partner_served = {PROBE.id}
    d = _step_4_judged(driver)
    assert [a for a in d.actions if isinstance(a, RunProbes)], "step 4 still probes the partner"
    d = driver.step()  # the result: accepted, served chain leads to the partner's CA
    out = d.state.to_dict()
    assert d.state.current.step == 5, d.condition.message  # the probe held nothing
    assert out["probes"][0]["servedOtherCA"] is True and out["probes"][0]["servedCA"] is None
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED


def test_step_4_holds_while_a_probe_refuses_the_new_ca_even_when_serving_another_ca() -> None:
    driver = make(unmanaged=0, probes=(PROBE,), propagation_delay=dt.timedelta(0))
    driver.world.partner_served = {PROBE.id}
    _at_step(driver, 4)
    driver.world.probes[PROBE.id] = 1.0  # every handshake refused from now on
    for _ in range(5):
        d = driver.step()
        driver.world.advance(d.next_wake or driver.world.now + dt.timedelta(minutes=1))
    assert d.state.current.step == 4
    assert f"{PROBE.id} (refused a client certificate from the new CA" in d.condition.message
    assert d.state.current.probes_serving_other == (PROBE.id,) and d.state.current.probes_serving_old == ()
    assert d.state.to_dict()["probesServingOtherCA"] == [PROBE.id]
    driver.world.probes[PROBE.id] = 0.0
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED


def test_a_probe_whose_served_chain_was_not_read_holds_step_4() -> None:
    """Green means checked: no chain read is no evidence (neither servedCA nor servedOtherCA)."""
    driver = make(unmanaged=0, probes=(PROBE,), propagation_delay=dt.timedelta(0))
    driver.world.served_by = lambda probe: None  # type: ignore[method-assign]
    _at_step(driver, 4)
    for _ in range(5):
        d = driver.step()
        driver.world.advance(d.next_wake or driver.world.now + dt.timedelta(minutes=1))
    assert d.state.current.step == 4 and "its served chain could not be read" in d.condition.message
    assert d.state.current.probes_serving_old == () and d.state.current.probes_serving_other == ()


def test_truststore_bare_alias_names_the_issuing_ca_at_every_step() -> None:
    """Observation.primaries: a target whose bare PKCS#12 alias names another CA than the issuing
    one is rewritten, with the issuing CA as ``primary`` (old until promotion, new after)."""
    driver = make(unmanaged=0, propagation_delay=dt.timedelta(0))
    primaries = {TARGETS[0]: OLD}
    real_observe = driver.world.observe

    def observe(state, settings, extra=()):
        return replace(real_observe(state, settings, extra), primaries=dict(primaries))

    driver.world.observe = observe  # type: ignore[method-assign]
    seen = []
    for _ in range(100):
        d = driver.step()
        for a in d.actions:
            if isinstance(a, UpdateBundles):
                issuing = driver.world.ca_secrets[CA_SECRET]
                assert a.primary == issuing, (a, issuing)
                if TARGETS[0] in a.targets:
                    primaries[TARGETS[0]] = a.primary
                seen.append(a.primary)
        if d.state.current is None:
            break
        driver.world.advance(d.next_wake or driver.world.now + dt.timedelta(minutes=1))
    new = driver.world.generated[0]
    assert OLD in seen and new in seen and primaries[TARGETS[0]] == new


# --- a lost CA (its Secret deleted) ----------------------------------------------------------------


def _lost(**settings: object) -> Driver:
    driver = make(request=None, **settings)
    driver.world.lose_ca()
    return driver


def test_a_lost_ca_is_replaced_through_the_five_steps_never_swapped_at_once() -> None:
    driver = _lost(propagation_delay=dt.timedelta(minutes=2))
    # Workloads that load their leaf and bundle with a lag: the outage an instant swap causes.
    driver.world.workloads = {
        f"apps/w{i}": Workload(f"integration/managed-{i}", TARGETS[i], leaf_lag=dt.timedelta(seconds=30),
                               bundle_lag=dt.timedelta(seconds=100)) for i in range(2)}
    driver.world.record()
    d = driver.step()
    cur = d.state.current
    assert cur.trigger == "CAMissing" and cur.id.startswith("camissing-") and cur.old_ca == OLD
    assert [a for a in d.actions if isinstance(a, GenerateNewCA)]
    assert not [a for a in d.actions if isinstance(a, (ReissueLeaf, PromoteNewCA))]
    assert "is gone" in next(e.message for e in d.events if e.reason == "RotationStarted")
    seen = [cur.step]
    d = run_until(driver, lambda d: seen.append(d.state.current.step if d.state.current else 0) or d.state.current is None)
    assert d.condition.reason == COMPLETED
    assert [s for s in dict.fromkeys(seen) if s] == [1, 2, 3, 4, 5]
    new = driver.world.generated[0]
    assert driver.world.ca_secrets[CA_SECRET] == new
    assert all(fps == {new} for fps in driver.world.targets.values())
    assert driver.world.workload_violations() == []
    # The lost CA's certificate stayed in every bundle until step 5 (checked after every write).
    assert all(OLD in h[0][1] for h in driver.world.target_history.values())
    assert driver.step().state.current is None  # replaced: nothing is missing any more


def test_without_the_delays_the_same_swap_breaks_lagging_workloads() -> None:
    """The workload check above can fail: with no propagation delay it sees the outage."""
    driver = _lost(propagation_delay=dt.timedelta(0))
    driver.world.workloads = {
        f"apps/w{i}": Workload(f"integration/managed-{i}", TARGETS[i], leaf_lag=dt.timedelta(seconds=30),
                               bundle_lag=dt.timedelta(seconds=100)) for i in range(2)}
    driver.world.record()
    run_until(driver, lambda d: d.state.current is None)
    assert driver.world.workload_violations() != []


def test_a_lost_ca_waits_while_rotations_are_paused() -> None:
    driver = _lost(paused=True)
    d = driver.step()
    assert d.state.current is None and not [a for a in d.actions if not isinstance(a, EmitEvent)]
    assert d.condition.reason == "Paused" and "camissing-" in d.condition.message
    driver.set(paused=False)
    assert driver.step().state.current.trigger == "CAMissing"


def test_a_lost_ca_uses_a_supplied_ca_when_one_is_configured() -> None:
    driver = _lost(supplied_ca_secret_name=SUPPLIED_SECRET)
    driver.world.ca_secrets[SUPPLIED_SECRET] = SUPPLIED
    cur = driver.step().state.current
    assert cur.trigger == "CAMissing" and cur.new_ca == SUPPLIED and not cur.new_ca_generated
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED and driver.world.ca_secrets[CA_SECRET] == SUPPLIED


def test_a_secret_restored_during_the_replacement_rotation_lets_it_finish_as_a_rotation() -> None:
    driver = _lost(propagation_delay=dt.timedelta(hours=1))
    run_until(driver, lambda d: d.state.current is not None and d.state.current.step == 2)
    driver.world.ca_secrets[CA_SECRET] = OLD  # restored from a backup
    d = run_until(driver, lambda d: d.state.current is None)
    assert d.condition.reason == COMPLETED
    assert driver.world.ca_secrets[CA_SECRET] == driver.world.generated[0]


def test_an_aborted_replacement_does_not_restart_and_says_what_to_do() -> None:
    driver = _lost(propagation_delay=dt.timedelta(hours=1))
    run_until(driver, lambda d: d.state.current is not None and d.state.current.step == 2)
    driver.set(abort=True)
    run_until(driver, lambda d: d.state.current is None)
    assert all(fps == {OLD} for fps in driver.world.targets.values())  # the lost CA is still trusted
    driver.set(abort=False)
    d = driver.step()
    assert d.state.current is None and d.condition.reason == ABORTED
    assert "is gone" in d.condition.message and "certpolicy.io/rotate" in d.condition.message
    driver.world.annotation = "replace-now"  # a request still replaces it
    assert driver.step().state.current.trigger == "Request"


def test_a_lost_new_ca_after_promotion_holds_the_rotation() -> None:
    driver = _lost(propagation_delay=dt.timedelta(0), leaf_propagation_delay=dt.timedelta(hours=1))
    run_until(driver, lambda d: d.state.current is not None and d.state.current.step == 4)
    driver.world.lose_ca()  # the promoted new CA's Secret is deleted too
    d = driver.step()
    assert d.state.current.step == 4 and "Holding" in d.condition.message
    assert not [a for a in d.actions if isinstance(a, (UpdateBundles, ReissueLeaf))]

"""Which changes of a policy wake its loop: all but the echo of the last pass's own status write."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from certpolicy.handlers.echoes import LastPass
from certpolicy.handlers.runtime import Runtime

CONDITIONS = [{"type": "Compliant", "status": "True", "reason": "AllCompliant", "message": "ok",
               "lastTransitionTime": "2026-12-04T10:00:00Z", "observedGeneration": 2}]


def policy(**status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "certpolicy.io/v1alpha1", "kind": "CertificatePolicy",
        "metadata": {"name": "p", "uid": "u-1", "generation": 2, "resourceVersion": "100",
                     "finalizers": ["kopf.zalando.org/KopfFinalizerMarker"],
                     "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
        "spec": {"selector": {}, "requirements": {"extendedKeyUsages": ["serverAuth"]}},
        "status": status,
    }


DECIDED = {"observedGeneration": 2, "conditions": CONDITIONS, "summary": {"selected": 1, "violating": 0},
           "lastEvaluationTime": "2026-12-04T10:00:00Z", "nextEvaluationTime": None}


def echo(read: dict[str, Any]) -> dict[str, Any]:
    """What the watch delivers after the pass's status write: new resourceVersion, managedFields
    and status, all else as read."""
    out = copy.deepcopy(read)
    out["metadata"]["resourceVersion"] = "101"
    out["metadata"]["managedFields"].append({"manager": "certpolicy", "operation": "Update", "subresource": "status"})
    out["status"] = {k: v for k, v in DECIDED.items() if v is not None}
    return out


def test_the_echo_of_the_pass_s_own_status_write_is_recognised():
    read = policy()
    last = LastPass.read(read).deciding(DECIDED)
    assert last.echoed_by(echo(read))
    # a re-sync write (only the evaluation timestamps moved) is an echo too
    later = echo(read)
    later["status"]["lastEvaluationTime"] = "2026-12-04T10:10:00Z"
    assert last.echoed_by(later)


def test_the_policy_as_read_is_no_change_before_the_pass_decided():
    read = policy(**{k: v for k, v in DECIDED.items() if v is not None})
    assert LastPass.read(read).echoed_by(copy.deepcopy(read))


def test_a_failure_reported_after_a_pass_that_raised_wakes_the_loop():
    """The pass raised before it decided a status (its LastPass is the policy as read, with no
    status yet): reconcile.report_failure's write of Degraded/ReconcileFailed is no echo, so the
    retry runs at once, as the condition's message says."""
    read = policy()
    reported = copy.deepcopy(read)
    reported["metadata"]["resourceVersion"] = "101"
    reported["status"] = {"conditions": CONDITIONS}
    assert not LastPass.read(read).echoed_by(reported)


def _spec(p: dict) -> None:
    p["spec"]["requirements"]["extendedKeyUsages"] = ["serverAuth", "clientAuth"]
    p["metadata"]["generation"] = 3


def _rotate(p: dict) -> None:
    p["metadata"]["annotations"] = {"certpolicy.io/rotate": "now"}


def _force(p: dict) -> None:
    p["metadata"]["annotations"] = {"certpolicy.io/rotation-force": "true"}


def _label(p: dict) -> None:
    p["metadata"]["labels"] = {"team": "a"}


def _deleting(p: dict) -> None:
    p["metadata"]["deletionTimestamp"] = "2026-12-04T10:00:01Z"


def _finalizer_gone(p: dict) -> None:
    p["metadata"]["finalizers"] = []


def _failure_reported(p: dict) -> None:  # reconcile.report_problem: a pass that raised is retried at once
    p["status"]["conditions"] = [*CONDITIONS, {"type": "Degraded", "status": "True", "reason": "ReconcileFailed",
                                               "message": "x", "lastTransitionTime": "2026-12-04T10:00:01Z"}]


def _status_edited(p: dict) -> None:  # someone else's edit of what the operator writes: repaired
    p["status"]["summary"] = {"selected": 0, "violating": 0}


def _status_added(p: dict) -> None:  # a status field the pass did not write
    p["status"]["rotation"] = {"step": 1}


@pytest.mark.parametrize("change", [_spec, _rotate, _force, _label, _deleting, _finalizer_gone,
                                    _failure_reported, _status_edited, _status_added])
def test_every_other_change_still_wakes(change):
    read = policy()
    last = LastPass.read(read).deciding(DECIDED)
    changed = echo(read)
    change(changed)
    assert not last.echoed_by(changed)


def test_runtime_wakes_the_loop_for_a_change_and_not_for_its_own_echo():
    loop = asyncio.new_event_loop()
    try:
        runtime = Runtime(api_client=None, raw=None, inventory=None, recorder=None,  # type: ignore[arg-type]
                          evaluator=None, loop=loop)  # type: ignore[arg-type]
        wake = runtime.wakeup("p")
        read = policy()
        runtime.policy_changed("p", echo(read))
        assert wake.is_set(), "no pass has run yet: every change wakes"
        wake.clear()
        runtime.memory("p").last_pass = LastPass.read(read).deciding(DECIDED)
        runtime.policy_changed("p", echo(read))
        assert not wake.is_set()
        changed = echo(read)
        _rotate(changed)
        runtime.policy_changed("p", changed)
        assert wake.is_set()
        wake.clear()
        runtime.policy_changed("p", None)  # deleted
        assert wake.is_set()
    finally:
        loop.close()

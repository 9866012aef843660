"""The operator's one log line per evaluated change: what changed, nothing when nothing did."""

from __future__ import annotations

from certpolicy.kube.status import describe_change


def status(compliant: str, reason: str, violating: int, selected: int = 3, when: str = "t1") -> dict:
    return {"conditions": [{"type": "Compliant", "status": compliant, "reason": reason, "message": f"m {when}",
                            "lastTransitionTime": when}],
            "summary": {"selected": selected, "violating": violating, "expiringSoon": 0},
            "lastEvaluationTime": when}


def test_first_evaluation_says_everything():
    line = describe_change({}, status("False", "MissingClientAuth", 2))
    assert line == "Compliant=False/MissingClientAuth; selected 3, violating 2, expiringSoon 0"


def test_a_transition_names_before_and_after():
    line = describe_change(status("False", "MissingClientAuth", 1), status("True", "AllCompliant", 0))
    assert line == "Compliant=True/AllCompliant (was False/MissingClientAuth); violating 1->0"


def test_timestamps_and_messages_alone_are_no_change():
    assert describe_change(status("False", "X", 1, when="t1"), status("False", "X", 1, when="t2")) is None

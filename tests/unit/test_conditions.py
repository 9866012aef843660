import datetime as dt

import pytest

from certpolicy.conditions import Condition, merge_conditions

T0 = dt.datetime(2026, 11, 1, 12, 0, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


def test_transition_time_moves_only_when_status_changes():
    first = merge_conditions(None, [Condition("Compliant", False, "MissingClientAuth", "m1")], 1, T0)
    same = merge_conditions(first, [Condition("Compliant", False, "UntrustedChain", "m2")], 2, T1)
    assert same[0]["lastTransitionTime"] == "2026-11-01T12:00:00Z"
    assert same[0]["reason"] == "UntrustedChain" and same[0]["observedGeneration"] == 2
    flipped = merge_conditions(same, [Condition("Compliant", True, "AllCompliant", "ok")], 2, T1)
    assert flipped[0]["lastTransitionTime"] == "2026-11-01T12:05:00Z" and flipped[0]["status"] == "True"


def test_other_conditions_are_kept_and_ordered():
    conds = merge_conditions(None, [Condition("Degraded", False, "AsExpected", ""),
                                    Condition("Ready", True, "Reconciled", "")], 3, T0)
    conds = merge_conditions(conds, [Condition("Compliant", None, "Unknown", "")], 3, T0)
    assert [c["type"] for c in conds] == ["Ready", "Compliant", "Degraded"]
    assert conds[1]["status"] == "Unknown"


def test_reason_must_be_camel_case():
    with pytest.raises(ValueError):
        Condition("Ready", True, "not camel case", "")

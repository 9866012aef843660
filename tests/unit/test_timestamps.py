"""certpolicy.timestamps: the one home of RFC 3339 formatting and parsing."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from certpolicy.timestamps import parse_rfc3339, rfc3339, rfc3339_micro
from paths import REPO

T = dt.datetime(2026, 6, 1, 12, 30, 15, 123456, tzinfo=dt.UTC)


def test_whole_seconds_utc_z():
    assert rfc3339(T) == "2026-06-01T12:30:15Z"
    assert rfc3339(T.astimezone(dt.timezone(dt.timedelta(hours=2)))) == "2026-06-01T12:30:15Z"
    assert rfc3339(T.replace(tzinfo=None)) == "2026-06-01T12:30:15Z"  # naive is UTC, not the machine's zone
    assert rfc3339_micro(T) == "2026-06-01T12:30:15.123456Z"


@pytest.mark.parametrize("text", ["2026-06-01T12:30:15.123456Z", "2026-06-01T14:30:15.123456+02:00",
                                  "2026-06-01t12:30:15.123456z", "2026-06-01T12:30:15.123456"])
def test_parse(text):
    assert parse_rfc3339(text) == T


def test_parse_refuses_what_it_must():
    with pytest.raises(ValueError, match="no timezone"):
        parse_rfc3339("2026-06-01T12:30:15", require_zone=True)
    with pytest.raises(ValueError):
        parse_rfc3339("yesterday")


def test_no_other_time_formatting_in_the_package():
    """One home: a time formatted elsewhere drifts in precision (the JSON of `certpolicy check`
    had microseconds in validUntil and whole seconds in notAfter)."""
    pattern = re.compile(r"\.(strftime|isoformat|fromisoformat)\(")
    offenders = [f"{p.relative_to(REPO)}:{i}" for p in (REPO / "operator" / "certpolicy").rglob("*.py")
                 if p.name != "timestamps.py"
                 for i, line in enumerate(p.read_text().splitlines(), 1) if pattern.search(line)]
    assert offenders == []

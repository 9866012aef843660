"""Durations: Go durations (the CRD's fields, --warn-before/--critical-before) and offsets (--at),
one parser for ``certpolicy check`` and ``kubectl certpolicy check``."""

from __future__ import annotations

import datetime as dt

import pytest

from certpolicy.policy.durations import format_duration, parse_duration, parse_offset, resolve_at

H = dt.timedelta(hours=1)
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("720h", 720 * H),
        ("2m", dt.timedelta(minutes=2)),
        ("1h30m", dt.timedelta(hours=1, minutes=30)),
        ("90s", dt.timedelta(seconds=90)),
        ("1.5h", dt.timedelta(hours=1.5)),
        (".5s", dt.timedelta(milliseconds=500)),
        ("0", dt.timedelta(0)),
        ("-5m", -dt.timedelta(minutes=5)),
        ("+5m", dt.timedelta(minutes=5)),
        ("100ms", dt.timedelta(milliseconds=100)),
        ("10us", dt.timedelta(microseconds=10)),
        ("10µs", dt.timedelta(microseconds=10)),
        ("1500ns", dt.timedelta(microseconds=1)),
        ("1h0m0s", H),
        (" 168h ", 168 * H),
    ],
)
def test_parse_duration(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "hint"),
    [("30d", "720h"), ("720", "missing unit"), ("", "empty"), ("h", "Go syntax"), ("1x", "Go syntax"), ("1h 30m", "Go syntax"), ("--1h", "Go syntax"), (".s", "Go syntax"), ("1e3h", "Go syntax")],
)
def test_parse_duration_errors(text, hint):
    with pytest.raises(ValueError, match="invalid duration") as e:
        parse_duration(text)
    assert hint in str(e.value)


def test_parse_duration_rejects_non_strings_and_huge():
    with pytest.raises(ValueError):
        parse_duration(720)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="too large"):
        parse_duration("99999999999999h")


@pytest.mark.parametrize(("d", "text"), [(720 * H, "720h"), (dt.timedelta(minutes=90), "1h30m"), (dt.timedelta(0), "0s"), (dt.timedelta(seconds=5), "5s")])
def test_format_duration_round_trips(d, text):
    assert format_duration(d) == text
    assert parse_duration(text) == d


@pytest.mark.parametrize(
    ("text", "expected"),
    [("+90d", 90 * 24 * H), ("-1d", -24 * H), ("+1.5d", 36 * H), ("+720h", 720 * H), ("-5m", -dt.timedelta(minutes=5)),
     (" +2D ", 48 * H), ("+1h30m", 1.5 * H)],
)
def test_parse_offset(text, expected):
    assert parse_offset(text) == expected


@pytest.mark.parametrize(("text", "hint"), [("90d", "needs a sign"), ("+90days", "Go syntax"), ("+d", "Go syntax"),
                                            ("+", "empty"), ("+9999999999d", "too large")])
def test_parse_offset_errors(text, hint):
    with pytest.raises(ValueError, match=hint):
        parse_offset(text)


def test_days_are_an_offset_unit_only():
    """A CRD field (and --warn-before) takes Go durations: '30d' is refused there with the hours to write."""
    with pytest.raises(ValueError, match="write '720h'"):
        parse_duration("30d")
    assert parse_offset("+30d") == parse_offset("+720h")


@pytest.mark.parametrize(
    ("at", "expected"),
    [(None, NOW), ("", NOW), ("+90d", NOW + 90 * 24 * H), ("+2160h", NOW + 90 * 24 * H), ("-1h", NOW - H),
     ("2026-07-01T00:00:00Z", dt.datetime(2026, 7, 1, tzinfo=dt.UTC)),
     ("2026-07-01T02:00:00+02:00", dt.datetime(2026, 7, 1, tzinfo=dt.UTC)),
     ("2026-07-01T00:00:00", dt.datetime(2026, 7, 1, tzinfo=dt.UTC))],  # no zone: UTC, not the machine's
)
def test_resolve_at(at, expected):
    assert resolve_at(at, NOW) == expected


def test_resolve_at_says_what_it_accepts():
    with pytest.raises(ValueError, match="neither an RFC 3339 time .* nor an offset .*'\\+90d'"):
        resolve_at("next tuesday", NOW)

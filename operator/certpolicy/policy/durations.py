"""Durations: the one parser of what a CertificatePolicy's duration fields and the command-line
flags accept, and their formatting.

Two forms, each accepted the same everywhere it is used:

* a **Go duration** (``720h``, ``1h30m``, ``90s``, ``1.5h``; units ``h``, ``m``, ``s``, ``ms``,
  ``us``/``µs``, ``ns``; ``0``): every duration field of the CRD (the schema checks the same form
  and answers ``30d`` with "write 720h"), and ``certpolicy check``'s ``--warn-before`` and
  ``--critical-before``, which stand for those fields. Days are not a unit here, as in Go and in
  the API server's CEL ``duration()``, which the CRD's rules use.
* an **offset** (``--at`` of ``certpolicy check`` and of ``kubectl certpolicy check``): a sign, then
  a Go duration or a number of days (``+90d``, ``-1.5d``), days being the natural unit of "what
  will this say in three months".
"""

from __future__ import annotations

import datetime as dt
import re
from fractions import Fraction

from certpolicy.timestamps import parse_rfc3339

_UNITS_NS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC greek mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_COMPONENT = re.compile(r"(\d+\.?\d*|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_MAX_DURATION = dt.timedelta(days=365 * 1000)


def parse_duration(s: str) -> dt.timedelta:
    """Parse a Go duration (``720h``, ``2m``, ``1h30m``, ``90s``, ``1.5h``, ``-5m``, ``0``).

    Raises ValueError naming the bad input. Days are not a Go unit: ``30d`` is rejected with a
    hint to write ``720h``.
    """
    if not isinstance(s, str):
        raise ValueError(f"duration must be a string like '720h', got {type(s).__name__} {s!r}")
    text = s.strip()
    sign = 1
    if text[:1] in "+-" and text:
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text == "0":
        return dt.timedelta(0)
    if not text:
        raise ValueError(f"invalid duration {s!r}: empty (use e.g. '720h')")
    total = Fraction(0)
    pos = 0
    while pos < len(text):
        m = _COMPONENT.match(text, pos)
        if m is None:
            hint = ""
            if re.fullmatch(r"\d+(\.\d+)?[dD]", text):
                days = Fraction(text[:-1])
                hint = f" (days are not a unit: write '{_fmt_num(days * 24)}h')"
            elif re.fullmatch(r"\d+(\.\d+)?", text):
                hint = f" (missing unit: e.g. '{text}h' or '{text}s')"
            raise ValueError(f"invalid duration {s!r}{hint}; use Go syntax such as '720h', '1h30m', '90s'")
        total += Fraction(m.group(1)) * _UNITS_NS[m.group(2)]
        pos = m.end()
    micros = int(total / 1000)
    try:
        result = dt.timedelta(microseconds=sign * micros)
    except OverflowError as e:
        raise ValueError(f"invalid duration {s!r}: too large") from e
    if abs(result) > _MAX_DURATION:
        raise ValueError(f"invalid duration {s!r}: too large")
    return result


def _fmt_num(f: Fraction) -> str:
    return str(int(f)) if f.denominator == 1 else str(float(f))


def format_duration(d: dt.timedelta) -> str:
    """Go-style compact form: ``720h``, ``1h30m``, ``90s`` → ``1m30s``; ``0s`` for zero."""
    total = int(d.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    h, rem = divmod(total, 3600)
    m, sec = divmod(rem, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{sec}s" if sec else ""]
    return sign + ("".join(parts) or "0s")


def humanize(d: dt.timedelta) -> str:
    """``5d 3h``, ``2h 10m``, ``45s``: for messages."""
    total = abs(int(d.total_seconds()))
    days, rem = divmod(total, 86400)
    hours, rem = divmod(rem, 3600)
    minutes, seconds = divmod(rem, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m"
    return f"{seconds}s"


_DAYS = re.compile(r"(\d+(?:\.\d+)?|\.\d+)[dD]")


def parse_offset(s: str) -> dt.timedelta:
    """A signed offset from now: ``+720h``, ``-5m``, ``+90d``, ``+1.5d``. Raises ValueError."""
    text = s.strip() if isinstance(s, str) else ""
    if text[:1] not in ("+", "-"):
        raise ValueError(f"offset {s!r} needs a sign: '+90d', '+720h' or '-1h'")
    sign = -1 if text[0] == "-" else 1
    m = _DAYS.fullmatch(text[1:])
    if m is None:
        return parse_duration(text)
    days = Fraction(m.group(1))
    if days > _MAX_DURATION.days:
        raise ValueError(f"invalid offset {s!r}: too large")
    return sign * dt.timedelta(microseconds=int(days * 86_400_000_000))


def resolve_at(at: str | None, now: dt.datetime) -> dt.datetime:
    """``--at``: None or empty → ``now``; an offset (see :func:`parse_offset`) → ``now`` + offset;
    otherwise an RFC 3339 time (no zone: UTC). Raises ValueError saying which forms are accepted."""
    text = (at or "").strip()
    if not text:
        return now
    if text[:1] in ("+", "-"):
        return now + parse_offset(text)
    try:
        return parse_rfc3339(text)
    except ValueError:
        raise ValueError(f"{at!r} is neither an RFC 3339 time ('2026-06-01T00:00:00Z') nor an offset "
                         "('+90d', '+720h')") from None

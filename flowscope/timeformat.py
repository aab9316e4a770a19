"""The time formats of `hubble observe --time-format` (hubble/pkg/time), rendered as Go renders its
layouts for a UTC time: StampMilli "Jan _2 15:04:05.000" (the default), RFC3339 and its Milli/Micro/
Nano forms (Go's .999 layouts drop trailing zeros, and the dot with them), RFC1123Z, and the
YearMonthDay[Hour[Minute]] forms."""

from __future__ import annotations

import datetime

from common.errors import UserError

FORMATS = ("YearMonthDay", "YearMonthDayHour", "YearMonthDayHourMinute", "StampMilli", "RFC3339",
           "RFC3339Milli", "RFC3339Micro", "RFC3339Nano", "RFC1123Z")
_BY_LOWER = {name.lower(): name for name in FORMATS}


def format_name(value: str) -> str:
    """The format's canonical name, case-insensitive as in hubble; a one-line error otherwise."""
    try:
        return _BY_LOWER[value.lower()]
    except KeyError:
        raise UserError(f"--time-format {value!r}: expected one of {', '.join(FORMATS)}") from None


def _fraction(nanos: int, digits: int) -> str:
    """Go's .999 (digits nines): truncated to `digits`, trailing zeros and a bare dot dropped."""
    text = f"{nanos:09d}"[:digits].rstrip("0")
    return f".{text}" if text else ""


def format_time(seconds: int, nanos: int, name: str = "StampMilli") -> str:
    t = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    if name == "StampMilli":
        return f"{t:%b} {t.day:2d} {t:%H:%M:%S}.{nanos // 1_000_000:03d}"
    if name == "YearMonthDay":
        return f"{t:%Y-%m-%d}"
    if name == "YearMonthDayHour":
        return f"{t:%Y-%m-%dT%H}Z"
    if name == "YearMonthDayHourMinute":
        return f"{t:%Y-%m-%dT%H:%M}Z"
    if name == "RFC1123Z":
        return f"{t:%a, %d %b %Y %H:%M:%S} +0000"
    digits = {"RFC3339": 0, "RFC3339Milli": 3, "RFC3339Micro": 6, "RFC3339Nano": 9}[name]
    return f"{t:%Y-%m-%dT%H:%M:%S}{_fraction(nanos, digits)}Z"

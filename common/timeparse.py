"""--since/--until values as `hubble observe` takes them: relative durations ("30s", "5m", "1h30m",
"2d", Go-style units ns/us/ms/s/m/h plus d) counted back from now, or absolute RFC 3339 times
("2024-05-01T12:00:00Z", "...+02:00", fractional seconds to the nanosecond; without a zone: UTC)."""

from __future__ import annotations

import datetime
import re

from common.errors import UserError

_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
            "d": 86400 * 10**9}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
_ABSOLUTE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?)?"
                       r"(Z|[+-]\d{2}:?\d{2})?", re.IGNORECASE)


class TimeError(UserError):
    pass


def parse_duration_ns(text: str) -> int:
    if not _DURATION.fullmatch(text):
        raise ValueError(text)
    return int(sum(float(n) * _UNIT_NS[unit] for n, unit in _PART.findall(text)))


def parse_time_ns(flag: str, text: str, now_ns: int) -> int:
    """Nanoseconds since the epoch; raises TimeError naming the flag and the accepted forms."""
    value = text.strip()
    try:
        return now_ns - parse_duration_ns(value)
    except ValueError:
        pass
    m = _ABSOLUTE.fullmatch(value)
    if m:
        date, hour, minute, second, fraction, zone = m.groups()
        try:
            day = datetime.date.fromisoformat(date)
            tz = datetime.timezone.utc
            if zone and zone.upper() != "Z":
                sign = -1 if zone[0] == "-" else 1
                digits = zone[1:].replace(":", "")
                tz = datetime.timezone(sign * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
            moment = datetime.datetime(day.year, day.month, day.day, int(hour or 0), int(minute or 0),
                                       int(second or 0), tzinfo=tz)
        except ValueError:
            pass
        else:
            nanos = int((fraction or "0").ljust(9, "0"))
            return int(moment.timestamp()) * 10**9 + nanos
    raise TimeError(f"{flag} {text!r}: expected a duration ago (30s, 5m, 1h30m, 2d) or an RFC 3339 time "
                    "(2024-05-01T12:00:00Z)")

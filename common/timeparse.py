"""The one time grammar of every surface — the CLI's --since/--until, the JSON API's since/until, the UI's
from/to: relative durations as `hubble observe` takes them ("30s", "5m", "1h30m", "2d": Go-style units
ns/us/ms/s/m/h plus d) counted back from now; absolute RFC 3339 times ("2024-05-01T12:00:00Z", "...+02:00",
fractional seconds to the nanosecond; without a zone: UTC); or a Unix time in seconds, milliseconds
(Grafana's ${__from}) or nanoseconds, told apart by magnitude. And the time values the storage APIs
take (to_ns): None, nanoseconds, a datetime or a protobuf Timestamp."""

from __future__ import annotations

import datetime
import decimal
import re
from typing import Union

from google.protobuf import timestamp_pb2

from common.errors import UserError

_UNIT_NS = {"ns": 1, "us": 10**3, "µs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
            "d": 86400 * 10**9}
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ns|us|µs|ms|s|m|h|d))+")
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h|d)")
# At least 9 digits (1973 on): a bare "5" is a duration missing its unit, not 1970, and is refused.
_UNIX = re.compile(r"\d{9,}(?:\.\d+)?")
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
    unix = _unix_ns(value)
    if unix is not None:
        return unix
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
    raise TimeError(f"{flag} {text!r}: expected a duration ago (30s, 5m, 1h30m, 2d), an RFC 3339 time "
                    "(2024-05-01T12:00:00Z) or a Unix time (s, ms or ns, 9 digits or more)")


def _unix_ns(value: str) -> int | None:
    """Seconds below 1e11 (until the year 5138), milliseconds below 1e14, else nanoseconds."""
    if not _UNIX.fullmatch(value):
        return None
    number = decimal.Decimal(value)
    scale = 10**9 if number < 10**11 else 10**6 if number < 10**14 else 1
    return int(number * scale)


# Times accepted by the storage queries: None (unbounded), int nanoseconds since the epoch, a
# timezone-aware or UTC-naive datetime, or a protobuf Timestamp (what GetFlowsRequest carries).
TimeLike = Union[None, int, datetime.datetime, timestamp_pb2.Timestamp]
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def to_ns(value: TimeLike, name: str = "time", error: type[TimeError] = TimeError) -> int | None:
    """Nanoseconds since the epoch (None stays None); a bad value raises `error` (a TimeError: a
    package passes its own subclass where its callers expect that package's error) naming `name`."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise error(f"{name}={value!r}: expected nanoseconds, a datetime or a Timestamp")
    if isinstance(value, int):
        if value < 0:
            raise error(f"{name}={value}: expected nanoseconds since the epoch (>= 0)")
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(value, timestamp_pb2.Timestamp):
        return value.seconds * 1_000_000_000 + value.nanos
    raise error(f"{name}={value!r}: expected nanoseconds, a datetime or a Timestamp")

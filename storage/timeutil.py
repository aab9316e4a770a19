"""Times accepted by the queries: None (unbounded), int nanoseconds since the epoch, a timezone-aware
or UTC-naive datetime, or a protobuf Timestamp (what GetFlowsRequest carries)."""

from __future__ import annotations

import datetime
from typing import Union

from google.protobuf import timestamp_pb2

from storage.errors import StorageError

TimeLike = Union[None, int, datetime.datetime, timestamp_pb2.Timestamp]


def to_ns(value: TimeLike, name: str = "time") -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise StorageError(f"{name}={value!r}: expected nanoseconds, a datetime or a Timestamp")
    if isinstance(value, int):
        if value < 0:
            raise StorageError(f"{name}={value}: expected nanoseconds since the epoch (>= 0)")
        return value
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        delta = value - datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000
    if isinstance(value, timestamp_pb2.Timestamp):
        return value.seconds * 1_000_000_000 + value.nanos
    raise StorageError(f"{name}={value!r}: expected nanoseconds, a datetime or a Timestamp")

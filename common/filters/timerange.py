"""Time range filter for since/until (request fields, not FlowFilter fields): both bounds inclusive,
in nanoseconds since the epoch; None is unbounded."""

from __future__ import annotations

from common.filters.base import FlowPredicate
from proto.flow import flow_pb2


def flow_time_ns(flow: flow_pb2.Flow) -> int:
    return flow.time.seconds * 1_000_000_000 + flow.time.nanos


def in_range(time_ns: int, since_ns: int | None, until_ns: int | None) -> bool:
    return (since_ns is None or time_ns >= since_ns) and (until_ns is None or time_ns <= until_ns)


def time_range(since_ns: int | None, until_ns: int | None) -> FlowPredicate:
    return lambda f: in_range(flow_time_ns(f), since_ns, until_ns)

"""Event type filter: Cilium monitor message type (trace 4, drop 1, l7 129, policy-verdict 5 ...) with
an optional sub type (for trace, the observation point: to-endpoint 0, from-endpoint 5 ...)."""

from __future__ import annotations

from common.filters.base import FlowPredicate
from proto.flow import flow_pb2


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    if not ff.event_type:
        return []
    wanted = [(e.type, e.sub_type if e.match_sub_type else None) for e in ff.event_type]

    def match(flow: flow_pb2.Flow) -> bool:
        kind, sub = flow.event_type.type, flow.event_type.sub_type
        return any(kind == t and (s is None or sub == s) for t, s in wanted)

    return [match]

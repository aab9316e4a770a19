"""Direction filters: reply and traffic_direction.

An unknown is_reply never matches a reply filter, except on DROPPED flows, which Hubble treats as
is_reply=false (a drop has no reply direction)."""

from __future__ import annotations

from common.filters.base import FlowPredicate, enum_value
from proto.flow import flow_pb2


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    preds = []
    if ff.reply:
        replies = set(ff.reply)
        preds.append(lambda f: _is_reply(f) in replies)
    if ff.traffic_direction:
        directions = {enum_value("traffic_direction", flow_pb2.TrafficDirection, d)
                      for d in ff.traffic_direction}
        preds.append(lambda f: f.traffic_direction in directions)
    return preds


def _is_reply(flow: flow_pb2.Flow) -> bool | None:
    if flow.HasField("is_reply"):
        return flow.is_reply.value
    return False if flow.verdict == flow_pb2.DROPPED else None

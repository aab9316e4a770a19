"""Exact-match identifier filters: uuid, interface ({index, name}; an empty part matches anything)
and trace_id (flowscope records no trace context, so a trace_id filter matches no flow)."""

from __future__ import annotations

from common.filters.base import FilterError, FlowPredicate
from proto.flow import flow_pb2


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    preds = []
    if ff.uuid:
        uuids = set(ff.uuid)
        preds.append(lambda f: f.uuid in uuids)
    if ff.interface:
        wanted = []
        for i in ff.interface:
            if not i.index and not i.name:
                raise FilterError("interface", "", "expected an interface index or name")
            wanted.append((i.index, i.name))
        preds.append(lambda f: f.HasField("interface") and any(
            (not idx or f.interface.index == idx) and (not name or f.interface.name == name)
            for idx, name in wanted))
    if ff.trace_id:
        preds.append(lambda f: False)
    return preds

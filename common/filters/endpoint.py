"""Endpoint attribute filters: source/destination identity and workload ({name, kind}; an empty part
matches anything)."""

from __future__ import annotations

from common.filters.base import FilterError, FlowPredicate
from proto.flow import flow_pb2


def _workload_matcher(field: str, wanted, get_endpoint) -> FlowPredicate:
    pairs = []
    for w in wanted:
        if not w.name and not w.kind:
            raise FilterError(field, "", "expected a workload name or kind")
        pairs.append((w.name, w.kind))

    def match(flow: flow_pb2.Flow) -> bool:
        return any((not name or w.name == name) and (not kind or w.kind == kind)
                   for w in get_endpoint(flow).workloads for name, kind in pairs)

    return match


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    preds = []
    if ff.source_identity:
        src_ids = set(ff.source_identity)
        preds.append(lambda f: f.source.identity in src_ids)
    if ff.destination_identity:
        dst_ids = set(ff.destination_identity)
        preds.append(lambda f: f.destination.identity in dst_ids)
    if ff.source_workload:
        preds.append(_workload_matcher("source_workload", ff.source_workload, lambda f: f.source))
    if ff.destination_workload:
        preds.append(_workload_matcher("destination_workload", ff.destination_workload,
                                       lambda f: f.destination))
    return preds

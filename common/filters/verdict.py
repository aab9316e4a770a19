"""Verdict and drop reason filters (enum numbers, as `hubble observe` sends them)."""

from __future__ import annotations

from common.filters.base import FlowPredicate, enum_value
from proto.flow import flow_pb2


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    preds = []
    if ff.verdict:
        verdicts = {enum_value("verdict", flow_pb2.Verdict, v) for v in ff.verdict}
        preds.append(lambda f: f.verdict in verdicts)
    if ff.drop_reason_desc:
        reasons = {enum_value("drop_reason_desc", flow_pb2.DropReason, v) for v in ff.drop_reason_desc}
        preds.append(lambda f: f.drop_reason_desc in reasons)
    return preds

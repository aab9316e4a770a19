"""Port filters: source_port, destination_port (decimal strings 0-65535) on TCP, UDP and SCTP."""

from __future__ import annotations

from common.filters.base import FilterError, FlowPredicate
from common.flows import l4_ports
from proto.flow import flow_pb2


def parse_port(field: str, value: str) -> int:
    text = value.strip()
    if not text.isdigit() or not text.isascii():
        raise FilterError(field, value, "expected a port number 0-65535")
    port = int(text)
    if port > 65535:
        raise FilterError(field, value, "expected a port number 0-65535")
    return port


def _port_matcher(field: str, values, side: int) -> FlowPredicate:
    ports = {parse_port(field, v) for v in values}

    def match(flow: flow_pb2.Flow) -> bool:
        pair = l4_ports(flow)
        return pair is not None and pair[side] in ports

    return match


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    preds = []
    if ff.source_port:
        preds.append(_port_matcher("source_port", ff.source_port, 0))
    if ff.destination_port:
        preds.append(_port_matcher("destination_port", ff.destination_port, 1))
    return preds

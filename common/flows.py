"""Small facts read off a `flow.Flow` that many packages need, written once."""

from __future__ import annotations

from common.protocols import PORTED
from proto.flow import flow_pb2


def l4_kind(flow: flow_pb2.Flow) -> str:
    """The Layer4 oneof that is set ('TCP', 'UDP', 'ICMPv4', ...), '' when none is."""
    return flow.l4.WhichOneof("protocol") or ""


def l4_ports(flow: flow_pb2.Flow) -> tuple[int, int] | None:
    """(source_port, destination_port) of a TCP, UDP or SCTP flow, else None."""
    kind = flow.l4.WhichOneof("protocol")
    if kind in PORTED:
        l4 = getattr(flow.l4, kind)
        return l4.source_port, l4.destination_port
    return None

"""TCP flags filter: a flow matches a TCPFlags value when it has every flag that value sets."""

from __future__ import annotations

from common.filters.base import FilterError, FlowPredicate
from proto.flow import flow_pb2

FLAG_NAMES = tuple(f.name for f in flow_pb2.TCPFlags.DESCRIPTOR.fields)


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    if not ff.tcp_flags:
        return []
    wanted = []
    for flags in ff.tcp_flags:
        names = tuple(n for n in FLAG_NAMES if getattr(flags, n))
        if not names:
            raise FilterError("tcp_flags", "", f"expected at least one of {', '.join(FLAG_NAMES)}")
        wanted.append(names)

    def match(flow: flow_pb2.Flow) -> bool:
        if flow.l4.WhichOneof("protocol") != "TCP":
            return False
        have = flow.l4.TCP.flags
        return any(all(getattr(have, n) for n in names) for names in wanted)

    return [match]

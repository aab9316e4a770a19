"""Protocol filter: tcp, udp, sctp, icmp (either family), icmpv4, icmpv6 at L4; dns, http, kafka at L7.
Case-insensitive, as in Hubble."""

from __future__ import annotations

from common.filters.base import FilterError, FlowPredicate
from common.protocols import L4_PROTOCOLS, L7_RECORDS, PROTOCOLS
from proto.flow import flow_pb2



def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    if not ff.protocol:
        return []
    l4, l7 = set(), set()
    for value in ff.protocol:
        name = value.strip().lower()
        if name in L4_PROTOCOLS:
            l4.update(L4_PROTOCOLS[name])
        elif name in L7_RECORDS:
            l7.add(name)
        else:
            raise FilterError("protocol", value, f"unknown protocol, expected one of {', '.join(PROTOCOLS)}")

    def match(flow: flow_pb2.Flow) -> bool:
        if l4 and flow.l4.WhichOneof("protocol") in l4:
            return True
        return bool(l7) and flow.HasField("l7") and flow.l7.WhichOneof("record") in l7

    return [match]

"""DNS query filter: regular expressions searched in the query name of L7 DNS flows ("example.com.")."""

from __future__ import annotations

from common.filters.base import FlowPredicate, compile_regex
from proto.flow import flow_pb2


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    if not ff.dns_query:
        return []
    patterns = [compile_regex("dns_query", p) for p in ff.dns_query]

    def match(flow: flow_pb2.Flow) -> bool:
        if not flow.HasField("l7") or flow.l7.WhichOneof("record") != "dns":
            return False
        return any(p.search(flow.l7.dns.query) for p in patterns)

    return [match]

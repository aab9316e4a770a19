"""DNS query filter: RE2 regular expressions searched in the query name of L7 DNS flows ("example.com.")."""

from __future__ import annotations

from common.filters.base import FlowPredicate, regex_matcher
from proto.flow import flow_pb2


def build(ff: flow_pb2.FlowFilter) -> list[FlowPredicate]:
    if not ff.dns_query:
        return []
    query_match = regex_matcher("dns_query", ff.dns_query)

    def match(flow: flow_pb2.Flow) -> bool:
        if not flow.HasField("l7") or flow.l7.WhichOneof("record") != "dns":
            return False
        return query_match(flow.l7.dns.query)

    return [match]

"""What the relay asks storage: flows older than its memory, where to resume a node after a restart,
and the namespaces seen lately. Every storage call of the relay is here, in one place."""

from __future__ import annotations

from typing import Iterator

from proto.flow import flow_pb2
from proto.observer import observer_pb2
from relay.node import REPLAY_SLACK_NS
from storage.queries.paging import flow_pages

NAMESPACE_WINDOW_S = 3600


def stored_flows(store, request: observer_pb2.GetFlowsRequest, query, chunk: int,
                 ) -> Iterator[flow_pb2.Flow]:
    """Flows from storage for a GetFlows request (and its parsed FlowQuery), oldest first, read `chunk`
    at a time. The same filters run in SQL here and in Python on the result (relay.flows), so both agree."""
    pages = flow_pages(store, whitelist=list(request.whitelist), blacklist=list(request.blacklist),
                       since=query.since_ns, until=query.until_ns, limit=query.number or None,
                       first=query.first or not query.number, page_rows=chunk)
    for page in pages:
        yield from page


def resume_point(store, node_name: str) -> tuple[int, list[str]]:
    """Where to resume following `node_name` after a relay restart: the time of its newest stored flow,
    and the uuids stored since a little before it (the collector will send those again). Asked of what
    this relay's writer stored (a relay writing its own shard asks that shard)."""
    store = store.own_writes()
    node_filter = [flow_pb2.FlowFilter(node_name=[node_name])]
    newest = store.query_flows(whitelist=node_filter, limit=1, first=False)
    if not newest:
        return 0, []
    last_ns = newest[-1].time.seconds * 1_000_000_000 + newest[-1].time.nanos
    recent = store.query_flows(whitelist=node_filter, since=max(0, last_ns - REPLAY_SLACK_NS),
                               limit=1_000_000, first=True)
    return last_ns, [f.uuid for f in recent]


def recent_namespaces(store, now_ns: int) -> list[observer_pb2.Namespace]:
    """Namespaces with flows in the last hour (GetNamespaces)."""
    since = now_ns - NAMESPACE_WINDOW_S * 1_000_000_000
    return [observer_pb2.Namespace(namespace=ns) for ns in store.namespaces(since)]

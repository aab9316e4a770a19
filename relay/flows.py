"""GetFlows on the relay: what to answer from memory and storage, and which live flows to follow with.

The answer is one stream (relay.service sends it): history (the relay's ring, and storage when `since`
reaches back before the ring or the ring holds fewer flows than asked for), then under follow the live
flows. The live
subscription is taken together with the ring snapshot, so nothing falls between them; flows that are
both in storage and in memory or the live queue are sent once (dedup by uuid at the seam).
"""

from __future__ import annotations

import itertools
import logging
from typing import Iterator

from common.filters import in_range
from collector.observer.request import FlowQuery
from proto.observer import observer_pb2
from proto.relay import relay_pb2
from relay import history
from relay.hub import now_timestamp
from relay.merge import response_time_ns
from storage.errors import StorageError

log = logging.getLogger(__name__)

STORAGE_LIMIT = 1_000_000
SEAM_SLACK_NS = 5_000_000_000


def _trim(flows: list[observer_pb2.GetFlowsResponse], query: FlowQuery) -> list[observer_pb2.GetFlowsResponse]:
    if query.number and len(flows) > query.number:
        return flows[:query.number] if query.first else flows[-query.number:]
    return flows


def _in_window(query: FlowQuery, response: observer_pb2.GetFlowsResponse) -> bool:
    return in_range(response_time_ns(response), query.since_ns, query.until_ns)


def _ring_matches(query: FlowQuery, ring: list[observer_pb2.GetFlowsResponse]) -> list[observer_pb2.GetFlowsResponse]:
    """Matching ring flows, oldest first; with a number only that many (read from the right end)."""
    def wanted(responses):
        return (r for r in responses if _in_window(query, r) and query.match(r.flow))
    if not query.number:
        return list(wanted(ring))
    if query.first:
        return list(itertools.islice(wanted(ring), query.number))
    newest = list(itertools.islice(wanted(reversed(ring)), query.number))
    newest.reverse()
    return newest


def select_history(query: FlowQuery, request: observer_pb2.GetFlowsRequest,
                   ring: list[observer_pb2.GetFlowsResponse], store) -> list[observer_pb2.GetFlowsResponse]:
    """The flows the request asks for from before now: ring, plus storage where the ring falls short."""
    matched = _ring_matches(query, ring)
    if store is None:
        return _trim(matched, query)
    ring_oldest = response_time_ns(ring[0]) if ring else None
    reaches_back = query.since_ns is not None and (ring_oldest is None or query.since_ns < ring_oldest)
    too_few = query.since_ns is None and query.number > len(matched)
    if not (reaches_back or too_few):
        return _trim(matched, query)
    limit = query.number or STORAGE_LIMIT
    try:
        stored = history.stored_flows(store, request, query, limit)
    except StorageError as err:  # storage down: still answer from memory, and say why in the log
        log.warning("GetFlows answered from memory only: %s", err)
        return _trim(matched, query)
    in_memory = {r.flow.uuid for r in matched}
    merged = [r for r in stored if r.flow.uuid not in in_memory and query.match(r.flow)] + matched
    merged.sort(key=response_time_ns)
    return _trim(merged, query)


def node_problems(relay) -> Iterator[observer_pb2.GetFlowsResponse]:
    """A follow stream starts by naming the nodes it cannot hear from, as Hubble's relay does."""
    for node in relay.nodes():
        if node.info.state != relay_pb2.NODE_CONNECTED:
            event = relay_pb2.NodeStatusEvent(state_change=node.info.state or relay_pb2.NODE_UNAVAILABLE,
                                              node_names=[node.name], message=node.info.message)
            yield observer_pb2.GetFlowsResponse(node_status=event, time=now_timestamp())


def masked(response: observer_pb2.GetFlowsResponse, query: FlowQuery) -> observer_pb2.GetFlowsResponse:
    """The response with only the flow fields the request's field mask asks for."""
    if query.field_mask is None or not response.HasField("flow"):
        return response
    out = observer_pb2.GetFlowsResponse(node_name=response.node_name, time=response.time)
    query.field_mask.MergeMessage(response.flow, out.flow)
    return out


def past_flows(query: FlowQuery, request: observer_pb2.GetFlowsRequest, relay,
               ring: list[observer_pb2.GetFlowsResponse]) -> list[observer_pb2.GetFlowsResponse]:
    """The history part of the answer. Like a node: under follow, history only when asked for (number
    or since). Blocking: it may query storage."""
    if query.follow and query.since_ns is None and not query.number:
        return []
    return select_history(query, request, ring, relay.store)


class LiveFilter:
    """Which live responses a follow stream sends: inside the request's window, matching its filters,
    and not a flow already sent from storage (flows written to storage after the ring snapshot may
    also be in the live queue: dedup by uuid at the seam, for a few seconds past the history's end)."""

    def __init__(self, query: FlowQuery, past: list[observer_pb2.GetFlowsResponse]) -> None:
        self.query = query
        self.finished = False  # a flow after `until` arrived: the stream is complete
        self._seam = {r.flow.uuid for r in past}
        self._seam_end = max((response_time_ns(r) for r in past), default=0) + SEAM_SLACK_NS

    def select(self, responses: list[observer_pb2.GetFlowsResponse]) -> list[observer_pb2.GetFlowsResponse]:
        query, out = self.query, []
        for response in responses:
            if response.HasField("flow"):
                t = response_time_ns(response)
                if query.until_ns is not None and t > query.until_ns:
                    self.finished = True
                    break
                if (query.since_ns is not None and t < query.since_ns) or not query.match(response.flow):
                    continue
                if self._seam:
                    if response.flow.uuid in self._seam:
                        continue
                    if t > self._seam_end:
                        self._seam = set()
            out.append(masked(response, query))
        return out

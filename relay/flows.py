"""GetFlows on the relay: what to answer from memory and storage, and which live flows to follow with.

The answer is one stream (relay.service sends it): history (the relay's ring, and storage when `since`
reaches back before the ring or the ring holds fewer flows than asked for), then under follow the live
flows. The live subscription is taken together with the ring snapshot, so nothing falls between them;
flows that are both in storage and in memory or the live queue are sent once (dedup by uuid at the seam).

History is streamed: storage is read in pages of HISTORY_CHUNK flows (keyset pagination on its sort key),
merged with the ring in time order and sent as it comes, so the relay's memory does not grow with the
window asked for. Only `--last N` keeps N flows, because the newest N are known only at the end.
"""

from __future__ import annotations

import collections
import heapq
import itertools
import logging
import operator
from typing import Iterable, Iterator

from google.protobuf.message import DecodeError

from collector.observer.request import FlowQuery
from common.filters import in_range
from proto.flow import flow_pb2
from proto.observer import observer_pb2
from proto.relay import relay_pb2
from relay import history
from relay.hub import now_timestamp
from relay.merge import Item
from relay.wire import FlowEntry, entry_of
from storage.errors import StorageError

log = logging.getLogger(__name__)

HISTORY_CHUNK = 2_000
SEAM_SLACK_NS = 5_000_000_000
_time_ns = operator.attrgetter("time_ns")


def _in_window(query: FlowQuery, entry: FlowEntry) -> bool:
    return in_range(entry.time_ns, query.since_ns, query.until_ns)


def matches(query: FlowQuery, entry: FlowEntry) -> bool:
    """Whether the request's filters take the flow: parsed only when there are filters."""
    if not query.filtered:
        return True
    try:
        return query.match(entry.parse())
    except DecodeError:
        return False  # framed right but not a Flow inside: no filter can take it


def _ring_matches(query: FlowQuery, ring: list[FlowEntry]) -> list[FlowEntry]:
    """Matching ring flows, oldest first; with a number only that many (read from the right end)."""
    def wanted(entries):
        return (e for e in entries if _in_window(query, e) and matches(query, e))
    if not query.number:
        return list(wanted(ring))
    if query.first:
        return list(itertools.islice(wanted(ring), query.number))
    newest = list(itertools.islice(wanted(reversed(ring)), query.number))
    newest.reverse()
    return newest


def _needs_storage(query: FlowQuery, ring: list[FlowEntry], matched: int) -> bool:
    ring_oldest = ring[0].time_ns if ring else None
    reaches_back = query.since_ns is not None and (ring_oldest is None or query.since_ns < ring_oldest)
    too_few = query.since_ns is None and query.number > matched
    return reaches_back or too_few


def _numbered(query: FlowQuery, responses: Iterable[FlowEntry]):
    """At most query.number of the time-ordered responses: the first ones, or (--last) the newest."""
    if not query.number:
        return responses
    if query.first:
        return itertools.islice(responses, query.number)
    return collections.deque(responses, maxlen=query.number)


def history_flows(query: FlowQuery, request: observer_pb2.GetFlowsRequest,
                  ring: list[FlowEntry], store) -> Iterator[Item]:
    """The flows the request asks for from before now, oldest first: the ring, plus storage where the ring
    falls short, as one stream (FlowEntry items; a storage failure as a message at the end). Blocking (it
    reads storage): the server iterates it off its event loop."""
    matched = _ring_matches(query, ring)
    if store is None or not _needs_storage(query, ring, len(matched)):
        yield from _numbered(query, matched)
        return
    in_memory = {e.uuid for e in matched}
    failures: list[StorageError] = []
    stored = (entry_of(f) for f in _until_failure(history.stored_flows(store, request, query, HISTORY_CHUNK), failures)
              if f.uuid not in in_memory and query.match(f))
    yield from _numbered(query, heapq.merge(stored, matched, key=_time_ns))
    if failures:
        yield storage_failure(failures[0])


def _until_failure(flows: Iterator[flow_pb2.Flow], failures: list[StorageError]):
    """The stored flows until storage fails; the failure is kept for the client to be told."""
    try:
        yield from flows
    except StorageError as err:
        log.warning("GetFlows history incomplete, answered from memory: %s", err)
        failures.append(err)


def storage_failure(err: StorageError) -> observer_pb2.GetFlowsResponse:
    """In-band news that history is incomplete: a NodeStatusEvent, which hubble observe prints and
    flowscope observe shows as a warning."""
    event = relay_pb2.NodeStatusEvent(state_change=relay_pb2.NODE_ERROR,
                                      message=f"history incomplete: storage unavailable: {err}")
    return observer_pb2.GetFlowsResponse(node_status=event, time=now_timestamp())


def chunks(responses: Iterator[Item], size: int = HISTORY_CHUNK):
    """The stream in lists of at most `size`: what the server takes from its worker thread at a time."""
    while True:
        chunk = list(itertools.islice(responses, size))
        if not chunk:
            return
        yield chunk


def node_problems(relay) -> Iterator[observer_pb2.GetFlowsResponse]:
    """A follow stream starts by naming the nodes it cannot hear from, as Hubble's relay does."""
    for node in relay.nodes():
        if node.info.state != relay_pb2.NODE_CONNECTED:
            event = relay_pb2.NodeStatusEvent(state_change=node.info.state or relay_pb2.NODE_UNAVAILABLE,
                                              node_names=[node.name], message=node.info.message)
            yield observer_pb2.GetFlowsResponse(node_status=event, time=now_timestamp())


def masked(response: Item, query: FlowQuery) -> Item:
    """The response with only the flow fields the request's field mask asks for (a message then)."""
    if query.field_mask is None or type(response) is not FlowEntry:
        return response
    out = observer_pb2.GetFlowsResponse(node_name=response.node_name)
    out.time.FromNanoseconds(response.time_ns)
    try:
        query.field_mask.MergeMessage(response.parse(), out.flow)
    except DecodeError:
        pass  # framed right but not a Flow inside: the response says when and where, nothing more
    return out


def past_flows(query: FlowQuery, request: observer_pb2.GetFlowsRequest, relay,
               ring: list[FlowEntry]) -> Iterator[Item]:
    """The history part of the answer. Like a node: under follow, history only when asked for (number
    or since)."""
    if query.follow and query.since_ns is None and not query.number:
        return iter(())
    return history_flows(query, request, ring, relay.store)


class Seam:
    """The history flows a live flow may repeat: those of the last SEAM_SLACK_NS before the newest sent
    (flows stored after the ring snapshot can also be in the live queue). Bounded by the flows of that
    window, not by the history's length."""

    def __init__(self) -> None:
        self.newest_ns = 0
        self._recent: collections.deque[tuple[int, str]] = collections.deque()
        self._uuids: set[str] = set()

    def add(self, entry: FlowEntry) -> None:
        t = entry.time_ns
        if t > self.newest_ns:
            self.newest_ns = t
        self._recent.append((t, entry.uuid))
        self._uuids.add(entry.uuid)
        while self._recent and self._recent[0][0] < self.newest_ns - SEAM_SLACK_NS:
            self._uuids.discard(self._recent.popleft()[1])

    def __contains__(self, uuid: str) -> bool:
        return uuid in self._uuids

    def clear(self) -> None:
        self._recent.clear()
        self._uuids.clear()

    def __bool__(self) -> bool:
        return bool(self._uuids)


class LiveFilter:
    """Which live responses a follow stream sends: inside the request's window, matching its filters,
    and not a flow already sent from history (dedup by uuid at the seam, for a few seconds past the
    history's end)."""

    def __init__(self, query: FlowQuery, seam: Seam) -> None:
        self.query = query
        self.finished = False  # a flow after `until` arrived: the stream is complete
        self._seam = seam
        self._seam_end = seam.newest_ns + SEAM_SLACK_NS

    def select(self, responses: list[Item]) -> list[Item]:
        query, out = self.query, []
        for response in responses:
            if type(response) is FlowEntry:
                t = response.time_ns
                if query.until_ns is not None and t > query.until_ns:
                    self.finished = True
                    break
                if (query.since_ns is not None and t < query.since_ns) or not matches(query, response):
                    continue
                if self._seam:
                    if response.uuid in self._seam:
                        continue
                    if t > self._seam_end:
                        self._seam.clear()
            out.append(masked(response, query))
        return out

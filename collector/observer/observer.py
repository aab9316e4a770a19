"""The node's Observer: every decoded flow is published here, runs through the hooks (metrics, policy
audit...) and lands in the ring buffer that GetFlows reads from."""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
import uuid
from typing import Callable, Iterator

from google.protobuf import timestamp_pb2

from collector.filters import flow_time_ns, in_range
from collector.observer.request import FlowQuery
from collector.observer.ring import Ring
from collector.observer.wire import encode_flow, encode_lost
from flowscope import __version__
from proto.flow import flow_pb2
from proto.observer import observer_pb2

log = logging.getLogger(__name__)

DEFAULT_RING_CAPACITY = 65536
VERSION = f"{__version__}+flowscope"
NAMESPACE_WINDOW_NS = 3600 * 1_000_000_000  # GetNamespaces: namespaces with flows in the last hour
RATE_WINDOW_S = 60  # flows_rate: flows per second over the last minute

# A ring entry: (time_ns, flow, lost) with exactly one of flow/lost set.
Entry = tuple[int, "flow_pb2.Flow | None", "flow_pb2.LostEvent | None"]
Hook = Callable[[flow_pb2.Flow], None]


def _timestamp(ns: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


class Observer:
    """Thread-safe: the datapath publishes from its thread, gRPC readers read from theirs."""

    def __init__(self, node_name: str, ring_capacity: int = DEFAULT_RING_CAPACITY,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.node_name = node_name
        self.clock = clock
        self.hooks: list[Hook] = []
        self.hook_errors = 0
        self.started_ns = clock()
        self._ring: Ring[Entry] = Ring(ring_capacity)
        self._seen_flows = 0
        self._namespaces: dict[tuple[str, str], int] = {}
        self._rate: collections.deque[list[int]] = collections.deque()  # [second, flows]
        self._stats_lock = threading.Lock()
        self._new_uuid = uuid_factory()
        self._followers = 0

    # -- writing -------------------------------------------------------------------------------

    def publish(self, flow: flow_pb2.Flow) -> None:
        """Fills uuid, node_name and time if empty, runs the hooks, stores the flow."""
        if not flow.uuid:
            flow.uuid = self._new_uuid()
        if not flow.node_name:
            flow.node_name = self.node_name
        now = self.clock()
        if not flow.HasField("time"):
            flow.time.CopyFrom(_timestamp(now))
        for hook in self.hooks:
            try:
                hook(flow)
            except Exception:  # a consumer's bug must not stop the flow of flows
                self._hook_failed(hook)
        self._count(flow, now)
        self._ring.append((flow_time_ns(flow), flow, None))

    def publish_lost(self, lost: flow_pb2.LostEvent) -> None:
        self._ring.append((self.clock(), None, lost))

    def _hook_failed(self, hook: Hook) -> None:
        self.hook_errors += 1
        if self.hook_errors == 1 or self.hook_errors % 1000 == 0:
            log.exception("observer hook %r failed (%d hook errors so far); flow kept",
                          getattr(hook, "__qualname__", hook), self.hook_errors)

    def _count(self, flow: flow_pb2.Flow, now: int) -> None:
        second = now // 1_000_000_000
        with self._stats_lock:
            self._seen_flows += 1
            for ep in (flow.source, flow.destination):
                if ep.namespace:
                    self._namespaces[(ep.cluster_name, ep.namespace)] = now
            if self._rate and self._rate[-1][0] == second:
                self._rate[-1][1] += 1
            else:
                self._rate.append([second, 1])
                while self._rate[0][0] <= second - RATE_WINDOW_S:
                    self._rate.popleft()

    # -- state ---------------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self._ring.capacity

    def status(self) -> observer_pb2.ServerStatusResponse:
        now = self.clock()
        with self._stats_lock:
            recent = sum(n for second, n in self._rate if second > now // 1_000_000_000 - RATE_WINDOW_S)
            seen = self._seen_flows
        return observer_pb2.ServerStatusResponse(
            num_flows=len(self._ring), max_flows=self._ring.capacity, seen_flows=seen,
            uptime_ns=max(0, now - self.started_ns), version=VERSION, flows_rate=recent / RATE_WINDOW_S)

    def namespaces(self) -> list[tuple[str, str]]:
        """(cluster, namespace) pairs seen in flows of the last hour, sorted."""
        cutoff = self.clock() - NAMESPACE_WINDOW_NS
        with self._stats_lock:
            self._namespaces = {k: t for k, t in self._namespaces.items() if t >= cutoff}
            return sorted(self._namespaces)

    # -- reading -------------------------------------------------------------------------------

    def read(self, query: FlowQuery, stop: threading.Event | None = None, poll: float = 0.2,
             min_chunk: int = 1, linger: float = 0.0, encoded: bool = False) -> Iterator[list]:
        """The answer to a GetFlows request as chunks of responses, in ring order.

        History first (last/first N, since/until), then under follow the new flows as they arrive,
        until `stop` is set or `until` passes. A follower the writer has lapped gets a LostEvent
        (HUBBLE_RING_BUFFER) counting what it missed. `min_chunk`/`linger` let a follower wait
        a little for fuller chunks (the batched node -> relay stream). With `encoded`, chunks hold
        serialized GetFlowsResponses (bytes) instead of messages.
        """
        stop = stop or threading.Event()
        convert = self._encoded if encoded else self._responses
        _, end, entries = self._ring.read(0)
        if not query.follow or query.since_ns is not None or query.number:
            history = convert(_history(entries, query), query)
            if history:
                yield history
        if not query.follow:
            return
        with self._stats_lock:
            self._followers += 1
        try:
            yield from self._follow(query, stop, end, poll, min_chunk, linger, convert)
        finally:
            with self._stats_lock:
                self._followers -= 1

    @property
    def followers(self) -> int:
        """Follow streams currently reading (each has seen everything published before it counted)."""
        return self._followers

    def _follow(self, query: FlowQuery, stop: threading.Event, next_seq: int, poll: float, min_chunk: int,
                linger: float, convert) -> Iterator[list]:
        while not stop.is_set():
            if query.until_ns is not None and self.clock() > query.until_ns:
                return
            newest = self._ring.wait(next_seq, poll)
            if newest > next_seq and newest - next_seq < min_chunk and linger > 0:
                newest = self._ring.wait(next_seq + min_chunk - 1, linger)
            if newest == next_seq or stop.is_set():
                continue
            first, next_end, entries = self._ring.read(next_seq)
            wanted = [e for e in entries if _wanted(e, query)]
            if first > next_seq:  # the writer lapped this reader
                lost = flow_pb2.LostEvent(source=flow_pb2.HUBBLE_RING_BUFFER, num_events_lost=first - next_seq)
                wanted.insert(0, (self.clock(), None, lost))
            next_seq = next_end
            chunk = convert(wanted, query)
            if chunk:
                yield chunk

    def wake_readers(self) -> None:
        self._ring.wake()

    def _responses(self, entries: list[Entry], query: FlowQuery) -> list[observer_pb2.GetFlowsResponse]:
        mask = query.field_mask
        out = []
        for time_ns, flow, lost in entries:
            if flow is None:
                out.append(observer_pb2.GetFlowsResponse(
                    lost_events=lost, node_name=self.node_name, time=_timestamp(time_ns)))
                continue
            flow = _masked(flow, mask)
            out.append(observer_pb2.GetFlowsResponse(flow=flow, node_name=flow.node_name or self.node_name,
                                                     time=flow.time))
        return out

    def _encoded(self, entries: list[Entry], query: FlowQuery) -> list[bytes]:
        node, mask = self.node_name, query.field_mask
        return [encode_flow(_masked(flow, mask), node) if flow is not None else
                encode_lost(lost, node, _timestamp(time_ns).SerializeToString())
                for time_ns, flow, lost in entries]


def uuid_factory() -> Callable[[], str]:
    """UUIDs unique across nodes and restarts: 80 random bits per Observer (uuid4 layout) and a
    48-bit counter, about ten times cheaper than uuid4() per flow."""
    prefix = str(uuid.uuid4())[:24]
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter) & 0xFFFFFFFFFFFF:012x}"


def _masked(flow: flow_pb2.Flow, mask) -> flow_pb2.Flow:
    if mask is None:
        return flow
    masked = flow_pb2.Flow()
    mask.MergeMessage(flow, masked)
    return masked


def _wanted(entry: Entry, query: FlowQuery) -> bool:
    time_ns, flow, _ = entry
    if not in_range(time_ns, query.since_ns, query.until_ns):
        return False
    return flow is None or query.match(flow)


def _history(entries: list[Entry], query: FlowQuery) -> list[Entry]:
    """number: last N (or first N) wanted entries; 0 means all of them."""
    wanted = (e for e in entries if _wanted(e, query))
    if not query.number:
        return list(wanted)
    if query.first:
        return list(itertools.islice(wanted, query.number))
    newest_first = (e for e in reversed(entries) if _wanted(e, query))
    picked = list(itertools.islice(newest_first, query.number))
    picked.reverse()
    return picked

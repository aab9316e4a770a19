"""The node's Observer: every decoded flow is published here, runs through the hooks (metrics, policy
audit...) and lands in the ring buffer that GetFlows reads from."""

from __future__ import annotations

import collections
import itertools
import logging
import threading
import time
import uuid
from typing import Callable, Iterable, Iterator

from google.protobuf import timestamp_pb2

from common.filters import flow_time_ns, in_range
from collector.observer.request import FlowQuery
from collector.observer.ring import Ring
from collector.observer.wire import EncodedFlow, encode_flows, encode_lost, encoded_flow
from common.version import __version__
from proto.flow import flow_pb2
from proto.observer import observer_pb2
from proto.wire import string_field, tag

log = logging.getLogger(__name__)

DEFAULT_RING_CAPACITY = 65536
VERSION = f"{__version__}+flowscope"
NAMESPACE_WINDOW_NS = 3600 * 1_000_000_000  # GetNamespaces: namespaces with flows in the last hour
RATE_WINDOW_S = 60  # flows_rate: flows per second over the last minute
CHUNK = 1000  # responses a reader converts at a time

# A ring entry: (time_ns, serialized GetFlowsResponse, is_flow). Stored serialized: a parsed Flow costs
# ~3 KB of memory in Python, its bytes ~300; the batched stream sends the bytes as they are.
Entry = tuple[int, bytes, bool]
Hook = Callable[[flow_pb2.Flow], None]  # called with every published flow, as a message
EncodedHook = Callable[[flow_pb2.Flow | EncodedFlow], None]  # called with every published flow as it came


_NODE_NAME = tag(flow_pb2.Flow, "node_name")


def _named(flow: EncodedFlow, node_name: str) -> EncodedFlow:
    """The flow with node_name set (appended: the last value of a field is the one parsed)."""
    return encoded_flow(flow.data + string_field(_NODE_NAME, node_name.encode()), flow.time_ns, node_name,
                        flow.namespaces, flow.facts)


def _timestamp(ns: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


class Observer:
    """Thread-safe: the datapath publishes from its thread, gRPC readers read from theirs."""

    def __init__(self, node_name: str, ring_capacity: int = DEFAULT_RING_CAPACITY,
                 clock: Callable[[], int] = time.time_ns) -> None:
        self.node_name = node_name
        self.clock = clock
        self.hooks: list[Hook] = []
        # Hooks that take an EncodedFlow unparsed (the metrics count it from its facts): a flow is
        # parsed for the hooks above only.
        self.encoded_hooks: list[EncodedHook] = []
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
        self.publish_many([flow])

    def publish_many(self, flows: list[flow_pb2.Flow | EncodedFlow]) -> None:
        """publish() for a batch, with one lock round for the counters and one for the ring: the
        datapath publishes what it decoded per wakeup this way (per flow, the locks and the readers'
        wakeup cost about as much as encoding the flow). An EncodedFlow is stored as it is; hooks get
        it parsed (a hook that changes a flow changes what is stored only for messages)."""
        if not flows:
            return
        now = self.clock()
        node_name, new_uuid, hooks, encoded_hooks = self.node_name, self._new_uuid, self.hooks, self.encoded_hooks
        entries: list[Entry] = []
        spaces: dict[int, tuple] = {}  # the namespaces of the batch's endpoints, by tuple (templates share them)
        messages: list[flow_pb2.Flow] = []  # encoded in one loop below, into their entries
        at: list[int] = []
        for flow in flows:
            if type(flow) is EncodedFlow:
                if not flow.node_name:
                    flow = _named(flow, node_name)
                if hooks:
                    self._run_hooks(hooks, flow_pb2.Flow.FromString(flow.data))
                if encoded_hooks:
                    self._run_hooks(encoded_hooks, flow)
                entries.append((flow.time_ns, flow.response, True))
                spaces[id(flow.namespaces)] = flow.namespaces
                continue
            if not flow.uuid:
                flow.uuid = new_uuid()
            if not flow.node_name:
                flow.node_name = node_name
            if not flow.HasField("time"):
                flow.time.CopyFrom(_timestamp(now))
            self._run_hooks(hooks, flow)
            self._run_hooks(encoded_hooks, flow)
            at.append(len(entries))
            entries.append((flow_time_ns(flow), b"", True))
            messages.append(flow)
            spaces[id(flow)] = tuple((ep.cluster_name, ep.namespace) for ep in (flow.source, flow.destination)
                                     if ep.namespace)
        for i, data in zip(at, encode_flows(messages, node_name)):
            entries[i] = (entries[i][0], data, True)
        self._count(len(entries), spaces.values(), now)
        self._ring.extend(entries)

    def _run_hooks(self, hooks: list, flow: flow_pb2.Flow | EncodedFlow) -> None:
        for hook in hooks:
            try:
                hook(flow)
            except Exception:  # a consumer's bug must not stop the flow of flows
                self._hook_failed(hook)

    def publish_lost(self, lost: flow_pb2.LostEvent) -> None:
        now = self.clock()
        self._ring.append((now, encode_lost(lost, self.node_name, _timestamp(now).SerializeToString()), False))

    def _hook_failed(self, hook: Hook) -> None:
        self.hook_errors += 1
        if self.hook_errors == 1 or self.hook_errors % 1000 == 0:
            log.exception("observer hook %r failed (%d hook errors so far); flow kept",
                          getattr(hook, "__qualname__", hook), self.hook_errors)

    def _count(self, flows: int, spaces: Iterable[tuple[tuple[str, str], ...]], now: int) -> None:
        second = now // 1_000_000_000
        with self._stats_lock:
            self._seen_flows += flows
            namespaces = self._namespaces
            for keys in spaces:
                for key in keys:
                    namespaces[key] = now
            if self._rate and self._rate[-1][0] == second:
                self._rate[-1][1] += flows
            else:
                self._rate.append([second, flows])
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
        select = _Selector(query, encoded)
        _, end, entries = self._ring.read(0)
        if not query.follow or query.since_ns is not None or query.number:
            yield from select.history(entries)
        if not query.follow:
            return
        with self._stats_lock:
            self._followers += 1
        try:
            yield from self._follow(select, stop, end, poll, min_chunk, linger)
        finally:
            with self._stats_lock:
                self._followers -= 1

    @property
    def followers(self) -> int:
        """Follow streams currently reading (each has seen everything published before it counted)."""
        return self._followers

    def _follow(self, select: _Selector, stop: threading.Event, next_seq: int, poll: float, min_chunk: int,
                linger: float) -> Iterator[list]:
        until = select.query.until_ns
        while not stop.is_set():
            if until is not None and self.clock() > until:
                return
            newest = self._ring.wait(next_seq, poll)
            if newest > next_seq and newest - next_seq < min_chunk and linger > 0:
                newest = self._ring.wait(next_seq + min_chunk - 1, linger)
            if newest == next_seq or stop.is_set():
                continue
            first, next_end, entries = self._ring.read(next_seq)
            if first > next_seq:  # the writer lapped this reader
                lost = flow_pb2.LostEvent(source=flow_pb2.HUBBLE_RING_BUFFER, num_events_lost=first - next_seq)
                now = self.clock()
                yield [select.output(encode_lost(lost, self.node_name, _timestamp(now).SerializeToString()), None)]
            next_seq = next_end
            yield from select.chunks(entries)

    def wake_readers(self) -> None:
        self._ring.wake()


class _Selector:
    """Picks the entries a query wants and turns them into responses (messages or bytes), parsing a
    stored response only when a filter or a field mask needs to look inside, or a message is wanted."""

    def __init__(self, query: FlowQuery, encoded: bool) -> None:
        self.query = query
        self.encoded = encoded
        self.parse = not encoded or query.filtered or query.field_mask is not None

    def _pick(self, entry: Entry):
        """The output for a wanted entry, else None."""
        time_ns, data, is_flow = entry
        q = self.query
        if not in_range(time_ns, q.since_ns, q.until_ns):
            return None
        response = observer_pb2.GetFlowsResponse.FromString(data) if self.parse else None
        if is_flow and q.filtered and not q.match(response.flow):
            return None
        return self.output(data, response)

    def output(self, data: bytes, response: observer_pb2.GetFlowsResponse | None):
        mask = self.query.field_mask
        if mask is not None:
            response = response or observer_pb2.GetFlowsResponse.FromString(data)
            if response.HasField("flow"):
                masked = flow_pb2.Flow()
                mask.MergeMessage(response.flow, masked)
                response.flow.CopyFrom(masked)
            return response.SerializeToString() if self.encoded else response
        if self.encoded:
            return data
        return response or observer_pb2.GetFlowsResponse.FromString(data)

    def _wanted(self, entry: Entry) -> bool:
        time_ns, data, is_flow = entry
        q = self.query
        if not in_range(time_ns, q.since_ns, q.until_ns):
            return False
        return not (is_flow and q.filtered) or q.match(observer_pb2.GetFlowsResponse.FromString(data).flow)

    def chunks(self, entries: list[Entry]) -> Iterator[list]:
        """Outputs for the wanted entries, CHUNK at a time, so a reader never holds a whole ring of
        parsed messages (~3 KB each) at once."""
        outputs = (out for out in map(self._pick, entries) if out is not None)
        yield from _chunked(outputs)

    def history(self, entries: list[Entry]) -> Iterator[list]:
        """number: last N (or first N) wanted entries; 0 means all of them."""
        q = self.query
        if q.number and not q.first:
            newest = list(itertools.islice(filter(self._wanted, reversed(entries)), q.number))
            newest.reverse()
            yield from _chunked(self.output(data, None) for _, data, _ in newest)
        elif q.number:
            yield from self.chunks(list(itertools.islice(filter(self._wanted, entries), q.number)))
        else:
            yield from self.chunks(entries)


def _chunked(outputs: Iterator) -> Iterator[list]:
    while chunk := list(itertools.islice(outputs, CHUNK)):
        yield chunk


def uuid_factory() -> Callable[[], str]:
    """UUIDs unique across nodes and restarts: 80 random bits per Observer (uuid4 layout) and a
    48-bit counter, about ten times cheaper than uuid4() per flow."""
    prefix = str(uuid.uuid4())[:24]
    counter = itertools.count()
    return lambda: f"{prefix}{next(counter) & 0xFFFFFFFFFFFF:012x}"

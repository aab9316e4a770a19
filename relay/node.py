"""One node collector as the relay sees it: a thread that keeps a follow stream open, reconnects with
backoff, drops replayed flows, and reports its state (connected, unavailable, gone).

The stream is flowscope.FlowBatches.GetFlowBatches (many flows per message: Python gRPC carries only
~10-19k messages/s per stream); a collector without it gets observer.GetFlows instead. After a
reconnect the collector is asked again from a little before the last flow seen, and flows whose uuid
was already forwarded are dropped, so a flow reaches the relay's sink exactly once.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import grpc
from google.protobuf import timestamp_pb2

from proto.flowscope import flowscope_pb2_grpc
from proto.observer import observer_pb2, observer_pb2_grpc
from proto.relay import relay_pb2
from collector.observer.tls import ClientTLS, TLSError, channel as secure_channel
from relay.tls import diagnose_handshake

log = logging.getLogger(__name__)

# How far before the last forwarded flow a reconnect asks again: flows are published roughly, not
# strictly, in time order, so a few late ones may sit just before it.
REPLAY_SLACK_NS = 2_000_000_000
SEEN_UUIDS = 200_000
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024),
                   ("grpc.keepalive_time_ms", 10_000), ("grpc.keepalive_timeout_ms", 5_000)]

Sink = Callable[["NodeClient", list[observer_pb2.GetFlowsResponse]], None]
StateListener = Callable[["NodeClient", int, str], None]


@dataclass(frozen=True)
class Peer:
    """A node collector to follow: its node name and its Observer address (host:port or unix:path)."""

    name: str
    address: str
    tls: ClientTLS | None = None


class SeenUUIDs:
    """The last `capacity` uuids forwarded from one node, for dropping a reconnect's replay."""

    def __init__(self, capacity: int = SEEN_UUIDS) -> None:
        self._order: collections.deque[str] = collections.deque()
        self._set: set[str] = set()
        self._capacity = capacity

    def add_new(self, uuid: str) -> bool:
        """Remember `uuid`; False if it was already there (a duplicate)."""
        if uuid in self._set:
            return False
        self._set.add(uuid)
        self._order.append(uuid)
        if len(self._order) > self._capacity:
            self._set.discard(self._order.popleft())
        return True


@dataclass
class NodeInfo:
    """What GetNodes reports for a node, refreshed from its ServerStatus."""

    state: int = relay_pb2.UNKNOWN_NODE_STATE
    message: str = ""
    version: str = ""
    uptime_ns: int = 0
    num_flows: int = 0
    max_flows: int = 0
    seen_flows: int = 0
    connected_at: float = 0.0
    forwarded: int = 0
    duplicates: int = 0
    errors: list[str] = field(default_factory=list)


class NodeClient:
    """Follows one collector until stop(); every new batch goes to `sink` from this node's thread."""

    def __init__(self, peer: Peer, sink: Sink, on_state: StateListener,
                 since_ns: int = 0, seen: Iterable[str] = (),
                 backoff: tuple[float, float] = (0.2, 5.0)) -> None:
        self.peer = peer
        self.info = NodeInfo()
        self._sink = sink
        self._on_state = on_state
        self._backoff = backoff
        self._last_ns = since_ns
        self._seen = SeenUUIDs()
        for uuid in seen:
            self._seen.add_new(uuid)
        self._stop = threading.Event()
        self._call: grpc.Future | None = None
        self._channel: grpc.Channel | None = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=f"relay-node-{peer.name}", daemon=True)

    @property
    def name(self) -> str:
        return self.peer.name

    def start(self) -> None:
        self._thread.start()

    def stop(self, gone: bool = False) -> None:
        """Stop following; with `gone` the node is reported as removed from the cluster."""
        self._stop.set()
        with self._lock:
            if self._call is not None:
                self._call.cancel()
        self._thread.join(timeout=5)
        if gone:
            self._set_state(relay_pb2.NODE_GONE, "node removed")

    def _set_state(self, state: int, message: str) -> None:
        if state == self.info.state and message == self.info.message:
            return
        self.info.state, self.info.message = state, message
        if state == relay_pb2.NODE_CONNECTED:
            self.info.connected_at = time.time()
        log.info("node %s (%s): %s%s", self.name, self.peer.address,
                 relay_pb2.NodeState.Name(state), f": {message}" if message else "")
        self._on_state(self, state, message)

    def _request(self) -> observer_pb2.GetFlowsRequest:
        since_ns = max(1, self._last_ns - REPLAY_SLACK_NS) if self._last_ns else 1
        since = timestamp_pb2.Timestamp(seconds=since_ns // 1_000_000_000, nanos=since_ns % 1_000_000_000)
        return observer_pb2.GetFlowsRequest(follow=True, since=since)

    def _run(self) -> None:
        delay = self._backoff[0]
        while not self._stop.is_set():
            try:
                channel = secure_channel(self.peer.address, self.peer.tls, CHANNEL_OPTIONS)
            except TLSError as err:
                self._set_state(relay_pb2.NODE_ERROR, str(err))
                self._stop.wait(self._backoff[1])
                continue
            self._channel = channel
            try:
                self._follow(channel)
                delay = self._backoff[0]
                if not self._stop.is_set():
                    self._set_state(relay_pb2.NODE_UNAVAILABLE, "collector ended the stream")
            except grpc.RpcError as err:
                if self._stop.is_set():
                    break
                self._set_state(relay_pb2.NODE_UNAVAILABLE, self._explain(err))
            finally:
                self._channel = None
                channel.close()
            self._stop.wait(delay)
            delay = min(delay * 2, self._backoff[1])

    def _explain(self, err: grpc.RpcError) -> str:
        detail = f"{err.code().name}: {err.details()}"
        if self.peer.tls is not None and err.code() == grpc.StatusCode.UNAVAILABLE:
            why = diagnose_handshake(self.peer.address, self.peer.tls)
            if why:
                return f"{detail} ({why})"
        return detail

    def describe(self) -> observer_pb2.Node:
        """The node as GetNodes reports it, with counters fresh from the collector when it answers."""
        channel = self._channel
        if channel is not None and self.info.state == relay_pb2.NODE_CONNECTED:
            try:
                self._refresh_status(channel, timeout=1.0)
            except grpc.RpcError:
                pass  # keep the last known counters; the follow stream reports the state change
        info = self.info
        node = observer_pb2.Node(name=self.name, version=info.version, address=self.peer.address,
                                 state=info.state, uptime_ns=info.uptime_ns, num_flows=info.num_flows,
                                 max_flows=info.max_flows, seen_flows=info.seen_flows)
        if self.peer.tls is not None:
            node.tls.enabled = True
            node.tls.server_name = self.peer.tls.server_name or ""
        return node

    def _refresh_status(self, channel: grpc.Channel, timeout: float = 5.0) -> None:
        status = observer_pb2_grpc.ObserverStub(channel).ServerStatus(
            observer_pb2.ServerStatusRequest(), timeout=timeout)
        info = self.info
        info.version, info.uptime_ns = status.version, status.uptime_ns
        info.num_flows, info.max_flows, info.seen_flows = status.num_flows, status.max_flows, status.seen_flows

    def _follow(self, channel: grpc.Channel) -> None:
        """Stream until the collector goes away (an RpcError) or ends the stream."""
        self._refresh_status(channel)
        request = self._request()
        call = flowscope_pb2_grpc.FlowBatchesStub(channel).GetFlowBatches(request)
        batches: Iterable[list[observer_pb2.GetFlowsResponse]] = (b.responses for b in call)
        with self._lock:
            self._call = call
        if self._stop.is_set():
            call.cancel()
        self._set_state(relay_pb2.NODE_CONNECTED, "")
        try:
            for responses in batches:
                self._forward(responses)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            log.info("node %s has no FlowBatches service; following observer.GetFlows", self.name)
            call = observer_pb2_grpc.ObserverStub(channel).GetFlows(request)
            with self._lock:
                self._call = call
            for response in call:
                self._forward([response])

    def _forward(self, responses) -> None:
        fresh = []
        seen = self._seen
        last = self._last_ns
        name = self.peer.name
        for response in responses:
            if response.HasField("flow"):
                flow = response.flow
                if not seen.add_new(flow.uuid):
                    self.info.duplicates += 1
                    continue
                t = flow.time.seconds * 1_000_000_000 + flow.time.nanos
                if t > last:
                    last = t
                if not response.node_name:
                    response.node_name = flow.node_name or name
            elif not response.node_name:
                response.node_name = name
            fresh.append(response)
        self._last_ns = last
        if fresh:
            self.info.forwarded += len(fresh)
            self._sink(self, fresh)

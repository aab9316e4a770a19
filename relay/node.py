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
from dataclasses import dataclass
from typing import Callable, Iterable

import grpc
from google.protobuf import timestamp_pb2

from common.backoff import Backoff
from common.tls import ClientTLS, TLSError, channel as secure_channel, diagnose_handshake
from proto.flowscope import flowscope_pb2_grpc
from proto.observer import observer_pb2, observer_pb2_grpc
from proto.relay import relay_pb2
from relay.merge import Run, response_time_ns

log = logging.getLogger(__name__)

# How far before the last forwarded flow a reconnect asks again: flows are published roughly, not
# strictly, in time order, so a few late ones may sit just before it.
REPLAY_SLACK_NS = 2_000_000_000
MAX_RECENT_FLOWS = 100_000  # bounds memory when flows arrive faster than REPLAY_SLACK_NS drains them
# No client keepalive pings: servers refuse pings more often than every 5 minutes (GOAWAY
# too_many_pings), which would break healthy streams; a collector that dies resets the connection.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]

Sink = Callable[["NodeClient", Run], None]
StateListener = Callable[["NodeClient", int, str], None]


@dataclass(frozen=True)
class Peer:
    """A node collector to follow: its node name and its Observer address (host:port or unix:path)."""

    name: str
    address: str
    tls: ClientTLS | None = None


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
    forwarded: int = 0
    duplicates: int = 0


class NodeClient:
    """Follows one collector until stop(); every new batch goes to `sink` from this node's thread."""

    def __init__(self, peer: Peer, sink: Sink, on_state: StateListener,
                 since_ns: int = 0, seen: Iterable[str] = (),
                 backoff: tuple[float, float] = (0.2, 5.0)) -> None:
        self.peer = peer
        self.info = NodeInfo()
        self._sink = sink
        self._on_state = on_state
        self._backoff = Backoff(*backoff)
        self._last_ns = since_ns
        # (horizon_ns, uuids): while set, flows up to the horizon whose uuid is known are dropped.
        self._replay: tuple[int, set[str]] | None = (since_ns, set(seen)) if since_ns else None
        self._recent: collections.deque[Run] = collections.deque()
        self._recent_flows = 0
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
        if state == self.info.state:
            self.info.message = message  # e.g. a new reason for still being unavailable: no new event
            return
        self.info.state, self.info.message = state, message
        log.info("node %s (%s): %s%s", self.name, self.peer.address,
                 relay_pb2.NodeState.Name(state), f": {message}" if message else "")
        self._on_state(self, state, message)

    def _request(self) -> observer_pb2.GetFlowsRequest:
        since_ns = max(1, self._last_ns - REPLAY_SLACK_NS) if self._last_ns else 1
        since = timestamp_pb2.Timestamp(seconds=since_ns // 1_000_000_000, nanos=since_ns % 1_000_000_000)
        return observer_pb2.GetFlowsRequest(follow=True, since=since)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                channel = secure_channel(self.peer.address, self.peer.tls, CHANNEL_OPTIONS)
            except TLSError as err:
                self._set_state(relay_pb2.NODE_ERROR, str(err))
                self._stop.wait(self._backoff.maximum)
                continue
            self._channel = channel
            try:
                self._follow(channel)
                self._backoff.reset()
                if not self._stop.is_set():
                    self._set_state(relay_pb2.NODE_UNAVAILABLE, "collector ended the stream")
            except grpc.RpcError as err:
                if self._stop.is_set():
                    break
                self._set_state(relay_pb2.NODE_UNAVAILABLE, self._explain(err))
            finally:
                self._channel = None
                channel.close()
            self._stop.wait(self._backoff.next_delay())

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
        self._start_replay()
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
        """Name the node, drop a reconnect's replay, and hand the batch on as one Run. This loop runs
        for every flow of the cluster: it does only what ordering needs (the flow's time)."""
        if not responses:
            return   # an empty batch (allowed on the wire) has nothing to order or to dedup
        times, flows = [], []
        name = self.peer.name
        only_flows = True
        for response in responses:
            if response.HasField("flow"):
                flow = response.flow
                stamp = flow.time
                times.append(stamp.seconds * 1_000_000_000 + stamp.nanos)
                flows.append(flow)
            else:
                only_flows = False
                times.append(response_time_ns(response))
                flows.append(None)
            if not response.node_name:
                response.node_name = name
        fresh = list(responses)
        if self._replay is not None:
            times, fresh, flows = self._drop_replayed(times, fresh, flows)
        if not fresh:
            return
        run = Run(times, fresh, flows if only_flows else [f for f in flows if f is not None])
        self._remember(run)
        self.info.forwarded += len(fresh)
        self._sink(self, run)

    def _drop_replayed(self, times, responses, flows):
        """After a reconnect the collector sends again what it sent shortly before the break."""
        horizon, seen = self._replay
        keep = [i for i, (t, f) in enumerate(zip(times, flows))
                if f is None or t > horizon or f.uuid not in seen]
        self.info.duplicates += len(times) - len(keep)
        if min(times) > horizon:
            self._replay = None
        if len(keep) == len(times):
            return times, responses, flows
        return [times[i] for i in keep], [responses[i] for i in keep], [flows[i] for i in keep]

    def _remember(self, run: Run) -> None:
        """Keep the runs of the last REPLAY_SLACK_NS: their uuids are what a reconnect may repeat."""
        recent = self._recent
        recent.append(run)
        self._recent_flows += len(run.times)
        self._last_ns = max(self._last_ns, max(run.times))
        floor = self._last_ns - REPLAY_SLACK_NS
        while len(recent) > 1 and (recent[0].times[-1] < floor or self._recent_flows > MAX_RECENT_FLOWS):
            self._recent_flows -= len(recent.popleft().times)

    def _start_replay(self) -> None:
        """Before asking again from last - slack: remember which of those flows were forwarded."""
        if not self._recent:
            return
        floor = self._last_ns - REPLAY_SLACK_NS
        seen = set(self._replay[1]) if self._replay is not None else set()
        for run in self._recent:
            seen.update(f.uuid for t, f in zip(run.times, run.flow_list()) if t >= floor)
        self._replay = (self._last_ns, seen)

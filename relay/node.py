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
from proto.flowscope import flowscope_pb2
from proto.observer import observer_pb2, observer_pb2_grpc
from proto.relay import relay_pb2
from relay.merge import Run, response_time_ns
from relay.wire import FlowEntry, decode_batch, single_response_batch

log = logging.getLogger(__name__)

# How far before the last forwarded flow a reconnect asks again: flows are published roughly, not
# strictly, in time order, so a few late ones may sit just before it.
REPLAY_SLACK_NS = 2_000_000_000
MAX_RECENT_FLOWS = 100_000  # bounds memory when flows arrive faster than REPLAY_SLACK_NS drains them
# No client keepalive pings: servers refuse pings more often than every 5 minutes (GOAWAY
# too_many_pings), which would break healthy streams; a collector that dies resets the connection.
CHANNEL_OPTIONS = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]



def _method_path(file, service: str, method: str) -> str:
    return f"/{file.services_by_name[service].full_name}/{method}"


BATCHES_METHOD = _method_path(flowscope_pb2.DESCRIPTOR, "FlowBatches", "GetFlowBatches")
FLOWS_METHOD = _method_path(observer_pb2.DESCRIPTOR, "Observer", "GetFlows")
_serialize_request = observer_pb2.GetFlowsRequest.SerializeToString

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
    malformed: int = 0  # responses that were not valid protobuf, left out


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
        """Stream until the collector goes away (an RpcError) or ends the stream. The responses stay
        bytes (relay.wire): grpc hands them over undecoded."""
        self._refresh_status(channel)
        self._start_replay()
        request = self._request()
        call = channel.unary_stream(BATCHES_METHOD, request_serializer=_serialize_request,
                                    response_deserializer=None)(request)
        with self._lock:
            self._call = call
        if self._stop.is_set():
            call.cancel()
        self._set_state(relay_pb2.NODE_CONNECTED, "")
        try:
            for batch in call:
                self._forward(batch)
        except grpc.RpcError as err:
            if err.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
            log.info("node %s has no FlowBatches service; following observer.GetFlows", self.name)
            call = channel.unary_stream(FLOWS_METHOD, request_serializer=_serialize_request,
                                        response_deserializer=None)(request)
            with self._lock:
                self._call = call
            for response in call:
                self._forward(single_response_batch(response))

    def _forward(self, batch: bytes) -> None:
        """Decode a FlowBatch's bytes (relay.wire: each flow's time and uuid, its bytes kept), drop a
        reconnect's replay, and hand the batch on as one Run. A malformed response is counted and
        logged, and costs only itself."""
        entries, malformed = decode_batch(batch, self.peer.name)
        if malformed:
            self._malformed(malformed)
        if not entries:
            return   # an empty batch (allowed on the wire) has nothing to order or to dedup
        flows = [e for e in entries if type(e) is FlowEntry]
        times = [e.time_ns for e in flows] if len(flows) == len(entries) else list(map(response_time_ns, entries))
        if self._replay is not None:
            times, entries = self._drop_replayed(times, entries)
            flows = [e for e in entries if type(e) is FlowEntry]
        if not entries:
            return
        run = Run(times, entries, flows if len(flows) == len(entries) else None)
        self._remember(run)
        self.info.forwarded += len(entries)
        self._sink(self, run)

    def _malformed(self, malformed: list[tuple[int, str]]) -> None:
        self.info.malformed += len(malformed)
        index, why = malformed[0]
        log.error("node %s (%s) sent %d malformed responses in a batch, left out (%d so far); the first, "
                  "response %d: %s", self.name, self.peer.address, len(malformed), self.info.malformed, index, why)

    def _drop_replayed(self, times, entries):
        """After a reconnect the collector sends again what it sent shortly before the break."""
        horizon, seen = self._replay
        keep = [i for i, (t, e) in enumerate(zip(times, entries))
                if t > horizon or type(e) is not FlowEntry or e.uuid not in seen]
        self.info.duplicates += len(times) - len(keep)
        if min(times) > horizon:
            self._replay = None
        if len(keep) == len(times):
            return times, entries
        return [times[i] for i in keep], [entries[i] for i in keep]

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
            seen.update(f.uuid for f in run.flow_list() if f.time_ns >= floor)
        self._replay = (self._last_ns, seen)

"""The relay's gRPC services on :4245: observer.Observer (the Hubble API, same semantics as a node's),
peer.Peer (the nodes the relay follows, for tools) and gRPC health ("hubble.server.Observer")."""

from __future__ import annotations

import threading
import time
from concurrent import futures

import grpc

from collector.observer import ServerError, TLSConfig, add_health, parse_request
from collector.observer.request import time_bounds
from collector.observer.tls import server_credentials
from flowscope.errors import UserError
from proto.observer import observer_pb2, observer_pb2_grpc
from proto.peer import peer_pb2_grpc
from relay import history
from relay.core import VERSION
from relay.flows import stream_flows

VERSION_HEADER = (("hubble-relay-version", VERSION),)


class RelayObserverServicer(observer_pb2_grpc.ObserverServicer):
    """observer.Observer answered for the whole cluster."""

    def __init__(self, relay) -> None:
        self.relay = relay

    def GetFlows(self, request, context):
        try:
            query = parse_request(request)
        except UserError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        context.send_initial_metadata(VERSION_HEADER)
        yield from stream_flows(query, request, self.relay, context.is_active)

    def GetAgentEvents(self, request, context):
        yield from _no_events(request, context)

    def GetDebugEvents(self, request, context):
        yield from _no_events(request, context)

    def GetNodes(self, request, context):
        return observer_pb2.GetNodesResponse(nodes=[node.describe() for node in self.relay.nodes()])

    def GetNamespaces(self, request, context):
        if self.relay.store is None:
            return observer_pb2.GetNamespacesResponse()
        return observer_pb2.GetNamespacesResponse(
            namespaces=history.recent_namespaces(self.relay.store, time.time_ns()))

    def ServerStatus(self, request, context):
        context.send_initial_metadata(VERSION_HEADER)
        return self.relay.status()


class RelayPeerServicer(peer_pb2_grpc.PeerServicer):
    """peer.Peer: every node the relay follows, then additions and removals as they happen."""

    def __init__(self, relay) -> None:
        self.relay = relay

    def Notify(self, request, context):
        changes = self.relay.watch_peers()
        try:
            while context.is_active():
                for change in changes.take(0.5):
                    yield change
        finally:
            self.relay.unwatch_peers(changes)


def _no_events(request, context):
    """Nodes do not forward agent or debug events: an honest empty answer, held open under follow."""
    try:
        time_bounds(request)
    except UserError as err:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
    if request.follow:
        done = threading.Event()
        context.add_callback(done.set)
        done.wait()
    return iter(())


def create_server(relay, address: str = "0.0.0.0:4245", tls: TLSConfig | None = None,
                  max_workers: int = 64) -> tuple[grpc.Server, int]:
    """Serve the relay's APIs on `address` (port 0 picks one); returns the started server and port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="relay-rpc"),
                         options=[("grpc.so_reuseport", 0)])
    observer_pb2_grpc.add_ObserverServicer_to_server(RelayObserverServicer(relay), server)
    peer_pb2_grpc.add_PeerServicer_to_server(RelayPeerServicer(relay), server)
    add_health(server)
    try:
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, server_credentials(tls))
    except RuntimeError as err:
        raise ServerError(f"relay: cannot listen on {address}: {err}") from None
    if port == 0:
        raise ServerError(f"relay: cannot listen on {address}: address in use or not available")
    server.start()
    return server, port


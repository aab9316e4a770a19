"""Thin gRPC servicers over an Observer: observer.Observer (Hubble's API, one flow per message) and
flowscope.FlowBatches (the same answers grouped, for the node -> relay link)."""

from __future__ import annotations

import threading
from typing import Callable, Iterator

import grpc

from collector.observer.limits import StreamLimit, StreamLimits
from collector.observer.observer import VERSION, Observer
from collector.observer.request import FlowQuery, parse_request, time_bounds
from collector.observer.wire import encode_batch
from common.errors import UserError
from proto.flowscope import flowscope_pb2, flowscope_pb2_grpc
from proto.observer import observer_pb2, observer_pb2_grpc
from proto.relay import relay_pb2

VERSION_HEADER = (("hubble-server-version", VERSION),)
BATCH_SIZE = 1000  # flows per FlowBatch at most
BATCH_LINGER = 0.05  # seconds a batch may wait to fill up under follow


def _query_or_abort(request, context: grpc.ServicerContext) -> FlowQuery:
    try:
        return parse_request(request)
    except UserError as err:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        raise  # abort raises; this line only satisfies type checkers


def _limited(limit: StreamLimit, context: grpc.ServicerContext, stream: Callable[[], Iterator]) -> Iterator:
    """`stream()`'s responses while it holds one of the server's stream slots; RESOURCE_EXHAUSTED when
    none is free (before any work, so a refusal costs the worker a moment only)."""
    if not limit.try_acquire():
        context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, limit.message())
    try:
        yield from stream()
    finally:
        limit.release()


def _stop_event(observer: Observer, context: grpc.ServicerContext) -> threading.Event:
    """Set when the client goes away or the server stops, and wakes the reader at once."""
    stop = threading.Event()

    def cancelled() -> None:
        stop.set()
        observer.wake_readers()

    context.add_callback(cancelled)
    return stop


class ObserverServicer(observer_pb2_grpc.ObserverServicer):
    def __init__(self, observer: Observer, address: str = "", tls: bool = False,
                 limits: StreamLimits | None = None) -> None:
        self.observer = observer
        self.address = address
        self.tls = tls
        self.limits = limits if limits is not None else StreamLimits()

    def GetFlows(self, request, context) -> Iterator[observer_pb2.GetFlowsResponse]:
        return _limited(self.limits.of(request.follow), context, lambda: self._flows(request, context))

    def _flows(self, request, context) -> Iterator[observer_pb2.GetFlowsResponse]:
        query = _query_or_abort(request, context)
        context.send_initial_metadata(VERSION_HEADER)
        for chunk in self.observer.read(query, _stop_event(self.observer, context)):
            yield from chunk

    def GetAgentEvents(self, request, context) -> Iterator[observer_pb2.GetAgentEventsResponse]:
        return _limited(self.limits.of(request.follow), context, lambda: self._no_events(request, context))

    def GetDebugEvents(self, request, context) -> Iterator[observer_pb2.GetDebugEventsResponse]:
        return _limited(self.limits.of(request.follow), context, lambda: self._no_events(request, context))

    def _no_events(self, request, context) -> Iterator:
        """flowscope emits no agent or debug events: an honest empty answer, held open under follow."""
        try:
            time_bounds(request)
        except UserError as err:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        if request.follow:
            _stop_event(self.observer, context).wait()
        return iter(())

    def GetNodes(self, request, context) -> observer_pb2.GetNodesResponse:
        status = self.observer.status()
        node = observer_pb2.Node(
            name=self.observer.node_name, version=status.version, address=self.address,
            state=relay_pb2.NODE_CONNECTED, tls=observer_pb2.TLS(enabled=self.tls),
            uptime_ns=status.uptime_ns, num_flows=status.num_flows, max_flows=status.max_flows,
            seen_flows=status.seen_flows)
        return observer_pb2.GetNodesResponse(nodes=[node])

    def GetNamespaces(self, request, context) -> observer_pb2.GetNamespacesResponse:
        return observer_pb2.GetNamespacesResponse(namespaces=[
            observer_pb2.Namespace(cluster=cluster, namespace=ns)
            for cluster, ns in self.observer.namespaces()])

    def ServerStatus(self, request, context) -> observer_pb2.ServerStatusResponse:
        context.send_initial_metadata(VERSION_HEADER)
        return self.observer.status()


class FlowBatchesServicer(flowscope_pb2_grpc.FlowBatchesServicer):
    """GetFlowBatches. `add_to_server` registers the fast path, which sends batches framed from
    serialized flows (see wire.py); registering it with the generated
    `add_FlowBatchesServicer_to_server` works too, with message objects (about 5x slower)."""

    def __init__(self, observer: Observer, batch_size: int = BATCH_SIZE, linger: float = BATCH_LINGER,
                 limits: StreamLimits | None = None):
        self.observer = observer
        self.batch_size = batch_size
        self.linger = linger
        self.limits = limits if limits is not None else StreamLimits()

    def GetFlowBatches(self, request, context) -> Iterator[flowscope_pb2.FlowBatch]:
        for batch in self.encoded_batches(request, context):
            yield flowscope_pb2.FlowBatch.FromString(batch)

    def encoded_batches(self, request, context) -> Iterator[bytes]:
        return _limited(self.limits.of(request.follow), context,
                        lambda: self._encoded_batches(request, context))

    def _encoded_batches(self, request, context) -> Iterator[bytes]:
        query = _query_or_abort(request, context)
        stop = _stop_event(self.observer, context)
        chunks = self.observer.read(query, stop, min_chunk=self.batch_size, linger=self.linger, encoded=True)
        for chunk in chunks:
            for i in range(0, len(chunk), self.batch_size):
                yield encode_batch(chunk[i:i + self.batch_size])

    def add_to_server(self, server: grpc.Server) -> None:
        handler = grpc.unary_stream_rpc_method_handler(
            self.encoded_batches, request_deserializer=observer_pb2.GetFlowsRequest.FromString,
            response_serializer=bytes)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
            "flowscope.FlowBatches", {"GetFlowBatches": handler}),))

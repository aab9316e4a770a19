"""The relay's gRPC services on :4245: observer.Observer (the Hubble API, same semantics as a node's),
peer.Peer (the nodes the relay follows, for tools) and gRPC health ("hubble.server.Observer")."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent import futures

import grpc

from collector.observer import ServerError, StreamLimit, StreamLimits, add_health, parse_request
from collector.observer.request import time_bounds
from common.tls import TLSConfig, server_credentials
from common.errors import UserError
from proto.observer import observer_pb2, observer_pb2_grpc
from proto.peer import peer_pb2_grpc
from proto.wire import TimestampCache
from relay import history
from relay.core import VERSION
from relay.flows import LiveFilter, Seam, chunks, masked, node_problems, past_flows
from relay.hub import Subscriber
from relay.merge import Item
from relay.wire import FlowEntry
from storage.errors import StorageError

log = logging.getLogger(__name__)

VERSION_HEADER = (("hubble-relay-version", VERSION),)
# A relay stream holds no thread (asyncio) but a subscriber queue of up to a few MB and a share of the
# fan-out work of every flow: more than a node's, still bounded.
DEFAULT_RELAY_STREAMS = 256
STOP_DRAIN = 1.0  # seconds the cancelled calls' tasks get to unwind once the server has stopped


class RelayObserverServicer(observer_pb2_grpc.ObserverServicer):
    """observer.Observer answered for the whole cluster. GetFlows (and the event streams) are coroutines
    on the server's event loop; the quick unary calls are plain methods run in the server's thread pool."""

    def __init__(self, relay, limits: StreamLimits) -> None:
        self.relay = relay
        self.limits = limits

    async def GetFlows(self, request, context):
        await _limited(self.limits.of(request.follow), context, self._flows(request, context))

    async def _flows(self, request, context):
        """Writes serialized responses (the GetFlows handler passes bytes through): a flow's are framed
        around the bytes its collector sent (relay.wire.FlowEntry.response)."""
        try:
            query = parse_request(request)
        except UserError as err:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
        await context.send_initial_metadata(VERSION_HEADER)
        ring, subscriber = self.relay.hub.snapshot(query.follow)
        stamps = TimestampCache()
        try:
            seam = Seam()
            loop = asyncio.get_running_loop()
            pages = chunks(past_flows(query, request, self.relay, ring))
            # Storage is read off the event loop, a page at a time, so a long history holds no more.
            while (page := await loop.run_in_executor(None, next, pages, None)) is not None:
                for response in page:
                    if type(response) is FlowEntry:
                        seam.add(response)
                    await context.write(_serialized(masked(response, query), stamps))
            if subscriber is None:
                return
            for response in node_problems(self.relay):
                await context.write(response.SerializeToString())
            live = LiveFilter(query, seam)
            async for batch in _live_batches(subscriber):
                for response in live.select(batch):
                    await context.write(_serialized(response, stamps))
                if live.finished:
                    return
        finally:
            if subscriber is not None:
                self.relay.hub.unsubscribe(subscriber)

    async def GetAgentEvents(self, request, context):
        await _limited(self.limits.of(request.follow), context, _no_events(request, context))

    async def GetDebugEvents(self, request, context):
        await _limited(self.limits.of(request.follow), context, _no_events(request, context))

    def GetNodes(self, request, context):
        return observer_pb2.GetNodesResponse(nodes=[node.describe() for node in self.relay.nodes()])

    def GetNamespaces(self, request, context):
        if self.relay.store is None:
            return observer_pb2.GetNamespacesResponse()
        try:
            return observer_pb2.GetNamespacesResponse(
                namespaces=history.recent_namespaces(self.relay.store, time.time_ns()))
        except StorageError as err:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"namespaces come from storage: {err}")

    def ServerStatus(self, request, context):
        context.send_initial_metadata(VERSION_HEADER)
        return self.relay.status()


def _serialized(response: Item, stamps: TimestampCache) -> bytes:
    return response.response(stamps) if type(response) is FlowEntry else response.SerializeToString()


class _Handlers:
    """Takes what a generated add_*Servicer_to_server registers, to register it changed."""

    def add_generic_rpc_handlers(self, handlers) -> None:
        pass  # the same handlers as below, for grpc versions without registered methods

    def add_registered_method_handlers(self, service: str, handlers: dict) -> None:
        self.service, self.handlers = service, handlers


def _add_observer(server, servicer: RelayObserverServicer) -> None:
    """observer.Observer as generated, but GetFlows sends bytes as they are (the generated handler
    would serialize messages)."""
    generated = _Handlers()
    observer_pb2_grpc.add_ObserverServicer_to_server(servicer, generated)
    handlers = dict(generated.handlers, GetFlows=grpc.unary_stream_rpc_method_handler(
        servicer.GetFlows, request_deserializer=observer_pb2.GetFlowsRequest.FromString, response_serializer=None))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(generated.service, handlers),))
    server.add_registered_method_handlers(generated.service, handlers)


async def _limited(limit: StreamLimit, context, stream) -> None:
    """Runs the coroutine `stream` while it holds one of the server's stream slots; RESOURCE_EXHAUSTED
    when none is free."""
    if not limit.try_acquire():
        stream.close()  # never started: close it so asyncio does not warn that it was never awaited
        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, limit.message())
    try:
        await stream
    except grpc.aio.InternalError as err:
        # A write that raced the client's leaving (`observe | head -1`) fails its batch: the call is over,
        # nothing is wrong with the relay.
        log.debug("client %s went away mid-stream (%s)", context.peer(), err)
    finally:
        limit.release()


async def _live_batches(subscriber: Subscriber, poll: float = 0.5):
    """What the subscriber (of flows or peer changes) receives, batch by batch, until it closes; waits on the event loop (the
    publisher wakes it) so a follow stream holds no thread."""
    loop = asyncio.get_running_loop()
    ready = asyncio.Event()

    def wake() -> None:
        try:
            loop.call_soon_threadsafe(ready.set)
        except RuntimeError:  # the server's loop has closed: nobody is waiting any more
            pass

    subscriber.wakeup = wake
    while True:
        ready.clear()  # before take(): an offer after this point sets it again
        batch = subscriber.take(0)
        if batch:
            yield batch
        elif subscriber.closed:
            return
        else:
            try:
                await asyncio.wait_for(ready.wait(), poll)
            except TimeoutError:
                pass


class RelayPeerServicer(peer_pb2_grpc.PeerServicer):
    """peer.Peer: every node the relay follows, then additions and removals as they happen."""

    def __init__(self, relay, limits: StreamLimits) -> None:
        self.relay = relay
        self.limits = limits

    async def Notify(self, request, context):
        await _limited(self.limits.follow, context, self._notify(context))

    async def _notify(self, context):
        changes = self.relay.watch_peers()
        try:
            async for batch in _live_batches(changes):
                for change in batch:
                    await context.write(change)
        finally:
            self.relay.unwatch_peers(changes)


async def _no_events(request, context) -> None:
    """Nodes do not forward agent or debug events: an honest empty answer, held open under follow."""
    try:
        time_bounds(request)
    except UserError as err:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(err))
    if request.follow:
        await asyncio.Event().wait()  # until the client leaves (the call is cancelled)


class RelayServer:
    """The relay's gRPC server: grpc.aio on an event loop in its own thread. asyncio streams about
    1.5x the messages per second of grpcio's sync server, which waits on a thread handoff per message
    (Hubble's GetFlows sends one flow per message; docs/benchmarks.md, Relay)."""

    def __init__(self, relay, address: str, tls: TLSConfig | None, max_workers: int, max_streams: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._stopped = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="relay-grpc", daemon=True)
        self._thread.start()
        try:
            self.port = asyncio.run_coroutine_threadsafe(
                self._start(relay, address, tls, max_workers, max_streams), self._loop).result()
        except BaseException:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            raise

    def _run(self) -> None:
        self._loop.run_forever()
        self._loop.close()
        self._stopped.set()

    async def _start(self, relay, address: str, tls: TLSConfig | None, max_workers: int,
                     max_streams: int) -> int:
        pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="relay-rpc")
        self._server = grpc.aio.server(migration_thread_pool=pool, options=[("grpc.so_reuseport", 0)])
        self.limits = StreamLimits(max_streams)
        _add_observer(self._server, RelayObserverServicer(relay, self.limits))
        peer_pb2_grpc.add_PeerServicer_to_server(RelayPeerServicer(relay, self.limits), self._server)
        add_health(self._server)
        try:
            if tls is None:
                port = self._server.add_insecure_port(address)
            else:
                port = self._server.add_secure_port(address, server_credentials(tls))
        except RuntimeError as err:
            raise ServerError(f"relay: cannot listen on {address}: {err}") from None
        if port == 0:
            raise ServerError(f"relay: cannot listen on {address}: address in use or not available")
        await self._server.start()
        return port

    def stop(self, grace: float | None = None) -> threading.Event:
        """Stops serving (active calls get `grace` seconds); the returned event is set once stopped,
        like grpc.Server.stop."""
        if not self._stopping:
            self._stopping = True
            stopping = asyncio.run_coroutine_threadsafe(self._shutdown(grace), self._loop)
            stopping.add_done_callback(lambda _: self._loop.call_soon_threadsafe(self._loop.stop))
        return self._stopped

    async def _shutdown(self, grace: float | None) -> None:
        """grpc.aio cancels the calls still open after `grace`, but their tasks finish on later turns of
        the loop: stopping it at once destroyed them half-way, an ERROR and a traceback per open stream.
        They are left to finish first: cancelling grpc's own task around a call that is unwinding makes it
        log the CancelledError as an unhandled exception (and a traceback) too. Only what is still running
        after STOP_DRAIN is cancelled."""
        await self._server.stop(grace)
        pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        if pending:
            _, pending = await asyncio.wait(pending, timeout=STOP_DRAIN)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=STOP_DRAIN)


def create_server(relay, address: str = "0.0.0.0:4245", tls: TLSConfig | None = None,
                  max_workers: int = 64, max_streams: int = DEFAULT_RELAY_STREAMS) -> tuple[RelayServer, int]:
    """Serve the relay's APIs on `address` (port 0 picks one); returns the started server and port.
    At most `max_streams` flow, event and peer streams at once, RESOURCE_EXHAUSTED beyond."""
    server = RelayServer(relay, address, tls, max_workers, max_streams)
    return server, server.port

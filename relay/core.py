"""The relay: follows every node collector, merges their flows in time order, keeps the recent ones in
memory for GetFlows, and hands each flow exactly once to storage.

Threads: one per node (relay.node), one merging (node batches -> time-ordered heap -> ring, live
subscribers and the storage queue) and one handing flows to the storage writer, so one slow insert
does not stall the live streams. The queues between them are bounded: storage that stays slower than
the flow rate slows the collectors' streams (gRPC flow control) instead of growing memory; what a
collector then cannot keep, it reports as a LostEvent.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

from common.version import __version__
from proto.flow import flow_pb2
from proto.observer import observer_pb2
from proto.peer import peer_pb2
from proto.relay import relay_pb2
from relay import history
from relay.hub import Hub, Subscriber, now_timestamp
from relay.merge import MergeBuffer, Run
from relay.node import NodeClient, Peer
from relay.wire import FlowEntry, parsed
from storage.errors import StorageError

log = logging.getLogger(__name__)

VERSION = f"{__version__}+flowscope-relay"
# Called from the merging thread with each merged batch of flows, in time order (exporters): a hook
# must return quickly and must not change the flows. The relay carries flows as bytes; they are parsed
# for the hooks only when there are hooks.
BatchHook = Callable[[list[flow_pb2.Flow]], None]


@dataclass(frozen=True)
class RelayOptions:
    ring_capacity: int = 65536
    drain_timeout: float = 0.2
    merge_capacity: int = 200_000
    ingest_batches: int = 64
    storage_batches: int = 64
    backoff: tuple[float, float] = (0.2, 5.0)


class Relay:
    """Cluster-wide flow source; `store`/`writer` are storage.FlowStore/FlowWriter or None."""

    def __init__(self, store=None, writer=None, options: RelayOptions = RelayOptions(),
                 hooks: tuple[BatchHook, ...] = ()) -> None:
        self.options = options
        self.store = store
        self.writer = writer
        self.hub = Hub(options.ring_capacity)
        self.started_ns = time.time_ns()
        self._nodes: dict[str, NodeClient] = {}
        self._nodes_lock = threading.Lock()
        self._ingest: queue.Queue = queue.Queue(options.ingest_batches)
        self._storage: queue.Queue = queue.Queue(options.storage_batches)
        self._stopping = threading.Event()
        self._merger = threading.Thread(target=self._merge_loop, name="relay-merge", daemon=True)
        self._store_thread = threading.Thread(target=self._store_loop, name="relay-store", daemon=True)
        self.stored_flows = 0
        self._peer_watchers: set[Subscriber] = set()
        self.hooks: list[BatchHook] = list(hooks)
        self.hook_errors = 0

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self) -> "Relay":
        self._merger.start()
        if self.writer is not None:
            self._store_thread.start()
        return self

    def stop(self) -> None:
        """Stop following, publish what is still in the merge heap, flush storage (idempotent)."""
        if self._stopping.is_set():
            return
        with self._nodes_lock:
            nodes, self._nodes = list(self._nodes.values()), {}
        for node in nodes:
            node.stop()
        self._stopping.set()
        self._merger.join(timeout=10)
        if self.writer is not None:
            self._storage.put(None)
            self._store_thread.join(timeout=30)
        self.hub.close()

    # -- nodes ------------------------------------------------------------------------------------

    def add_peer(self, peer: Peer) -> None:
        """Start following a node (a new address for a known name replaces the old one)."""
        with self._nodes_lock:
            old = self._nodes.get(peer.name)
            if old is not None and old.peer == peer:
                return
        if old is not None:
            old.stop()
        since_ns, seen = self._resume_point(peer.name)
        client = NodeClient(peer, self._sink, self._node_state, since_ns=since_ns, seen=seen,
                            backoff=self.options.backoff)
        with self._nodes_lock:
            self._nodes[peer.name] = client
            self._notify_peer(peer, peer_pb2.PEER_UPDATED if old else peer_pb2.PEER_ADDED)
        client.start()

    def _resume_point(self, name: str) -> tuple[int, list[str]]:
        if self.store is None:
            return 0, []
        try:
            return history.resume_point(self.store, name)
        except StorageError as err:
            # Storage down: follow from the node's oldest flow; spooled batches are checked against the
            # store by uuid when they are replayed, so nothing is stored twice.
            log.warning("node %s: no resume point from storage (%s); following from its oldest flow", name, err)
            return 0, []

    def remove_peer(self, name: str) -> None:
        with self._nodes_lock:
            client = self._nodes.pop(name, None)
            if client is not None:
                self._notify_peer(client.peer, peer_pb2.PEER_DELETED)
        if client is not None:
            client.stop(gone=True)

    def _notify_peer(self, peer: Peer, kind: int) -> None:
        change = _peer_change(peer, kind)
        for watcher in self._peer_watchers:
            watcher.offer([change])

    def watch_peers(self) -> Subscriber:
        """A queue of peer.ChangeNotification: every current node as added, then the changes."""
        watcher = Subscriber(10_000)
        with self._nodes_lock:
            watcher.offer([_peer_change(n.peer, peer_pb2.PEER_ADDED) for n in self._nodes.values()])
            self._peer_watchers.add(watcher)
        return watcher

    def unwatch_peers(self, watcher: Subscriber) -> None:
        with self._nodes_lock:
            self._peer_watchers.discard(watcher)

    @property
    def malformed(self) -> int:
        """Responses the nodes followed now sent that were not valid protobuf (left out, logged)."""
        return sum(node.info.malformed for node in self.nodes())

    def nodes(self) -> list[NodeClient]:
        with self._nodes_lock:
            return sorted(self._nodes.values(), key=lambda n: n.name)

    def _sink(self, node: NodeClient, run: Run) -> None:
        self._ingest.put(run)

    def _node_state(self, node: NodeClient, state: int, message: str) -> None:
        event = relay_pb2.NodeStatusEvent(state_change=state, node_names=[node.name], message=message)
        self.hub.broadcast(observer_pb2.GetFlowsResponse(node_status=event, time=now_timestamp()))

    # -- merging and storage ----------------------------------------------------------------------

    def _merge_loop(self) -> None:
        merge = MergeBuffer(self.options.drain_timeout, self.options.merge_capacity)
        while True:
            deadline = merge.next_deadline()
            try:
                merge.push(self._ingest.get(timeout=0.05 if deadline is None else max(deadline, 0.001)))
                while True:
                    merge.push(self._ingest.get_nowait())
            except queue.Empty:
                pass
            stopping = self._stopping.is_set()
            runs = merge.pop_runs(flush=stopping)
            if runs:
                responses = [r for run in runs for r in run.responses]
                flows = [f for run in runs for f in run.flow_list()]
                self.hub.publish(responses, flows)
                if flows and self.hooks:
                    self._run_hooks(flows)
                if self.writer is not None and flows:
                    self._storage.put(flows)
            if stopping and self._ingest.empty() and not len(merge):
                return

    def _run_hooks(self, entries: list[FlowEntry]) -> None:
        flows = parsed(entries)
        for hook in self.hooks:
            try:
                hook(flows)
            except Exception:  # a consumer's bug must not stop the merge
                self.hook_errors += 1
                if self.hook_errors == 1 or self.hook_errors % 1000 == 0:
                    log.exception("relay hook %r failed (%d hook errors so far)",
                                  getattr(hook, "__qualname__", hook), self.hook_errors)

    def _store_loop(self) -> None:
        while True:
            flows = self._storage.get()
            if flows is None:
                break
            try:
                self.writer.write_bytes(flows)
                self.stored_flows += len(flows)
            except Exception:  # the writer spools and retries itself; never let one batch kill us
                log.exception("storage writer refused %d flows", len(flows))
        self.writer.flush()

    # -- status -----------------------------------------------------------------------------------

    def status(self) -> observer_pb2.ServerStatusResponse:
        nodes = self.nodes()
        unavailable = [n.name for n in nodes if n.info.state != relay_pb2.NODE_CONNECTED]
        response = observer_pb2.ServerStatusResponse(
            num_flows=len(self.hub), max_flows=self.hub.capacity, seen_flows=self.hub.seen_flows,
            uptime_ns=time.time_ns() - self.started_ns, unavailable_nodes=unavailable,
            version=VERSION, flows_rate=self.hub.flows_rate())
        response.num_connected_nodes.value = len(nodes) - len(unavailable)
        response.num_unavailable_nodes.value = len(unavailable)
        if self.store is not None and not getattr(self.store, "available", True):
            # Hubble's ServerStatus has no storage field; its clients print every unavailable_nodes entry.
            response.unavailable_nodes.append(f"storage unavailable ({self.store.url.redacted()}): "
                                              f"{self.store.error}; flows are spooled")
        return response

    def storage_available(self) -> bool:
        return self.store is None or getattr(self.store, "available", True)


def _peer_change(peer: Peer, kind: int) -> peer_pb2.ChangeNotification:
    change = peer_pb2.ChangeNotification(name=peer.name, address=peer.address, type=kind)
    if peer.tls is not None and peer.tls.server_name:
        change.tls.server_name = peer.tls.server_name
    return change

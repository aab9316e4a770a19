"""Where the node collectors are: a static list (--peer name=addr), the lab's state file, or a
peer.Peer Notify stream (another relay, or any server of the Peer service)."""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from typing import Callable

import grpc

from common.backoff import Backoff
from common.errors import UserError
from proto.peer import peer_pb2, peer_pb2_grpc
from relay.node import Peer
from common.tls import ClientTLS, channel as secure_channel

log = logging.getLogger(__name__)

# On one machine the lab's nodes are told apart by port: node i (in the order of the state file's
# "nodes") has its collector on LAB_COLLECTOR_BASE_PORT + i, the first one on Hubble's usual 4244.
LAB_COLLECTOR_BASE_PORT = 4244
_ADDRESS = re.compile(r"^(unix:.+|(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.-]*):\d{1,5})$")


class PeerSpecError(UserError):
    """A --peer value that is not name=host:port."""


def normalize_address(address: str) -> str:
    """":4244" -> "localhost:4244"; host:port and unix:path kept as they are."""
    if not _ADDRESS.match(address):
        raise PeerSpecError(f"collector address {address!r}: expected host:port, :port or unix:/path")
    return f"localhost{address}" if address.startswith(":") else address


def parse_peer(spec: str, tls: ClientTLS | None = None) -> Peer:
    """A --peer value: "name=host:port" (or just "host:port", named after the address)."""
    name, sep, address = spec.partition("=")
    if not sep:
        name, address = spec, spec
    if not name:
        raise PeerSpecError(f"--peer {spec!r}: empty node name; expected name=host:port")
    return Peer(name=name, address=normalize_address(address), tls=tls)


def peers_from_lab(path: str, tls: ClientTLS | None = None, host: str = "localhost",
                   base_port: int = LAB_COLLECTOR_BASE_PORT) -> list[Peer]:
    """One peer per lab node: node i's collector on host:base_port+i."""
    from lab.state import load_state
    state = load_state(path)
    nodes = state.nodes or sorted({h.node for h in state.pods if h.node})
    return [Peer(name=node, address=f"{host}:{base_port + i}", tls=tls) for i, node in enumerate(nodes)]


class PeerWatcher:
    """Follows a peer.Peer Notify stream and calls on_add(Peer) / on_remove(name) for each change;
    reconnects with backoff when the peer service goes away."""

    def __init__(self, address: str, on_add: Callable[[Peer], None], on_remove: Callable[[str], None],
                 tls: ClientTLS | None = None, node_tls: ClientTLS | None = None,
                 backoff: tuple[float, float] = (0.5, 10.0)) -> None:
        self.address = normalize_address(address)
        self._on_add, self._on_remove = on_add, on_remove
        self._tls, self._node_tls = tls, node_tls
        self._backoff = Backoff(*backoff)
        self._stop = threading.Event()
        self._call = None
        self._thread = threading.Thread(target=self._run, name="relay-peers", daemon=True)

    def start(self) -> "PeerWatcher":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._call is not None:
            self._call.cancel()
        self._thread.join(timeout=5)

    def _peer(self, change: peer_pb2.ChangeNotification) -> Peer:
        tls = self._node_tls
        if tls is not None and change.tls.server_name:
            tls = dataclasses.replace(tls, server_name=change.tls.server_name)
        return Peer(name=change.name, address=normalize_address(change.address), tls=tls)

    def _run(self) -> None:
        while not self._stop.is_set():
            channel = secure_channel(self.address, self._tls)
            try:
                self._call = peer_pb2_grpc.PeerStub(channel).Notify(peer_pb2.NotifyRequest())
                for change in self._call:
                    self._backoff.reset()
                    if change.type == peer_pb2.PEER_DELETED:
                        self._on_remove(change.name)
                    elif change.type in (peer_pb2.PEER_ADDED, peer_pb2.PEER_UPDATED):
                        self._on_add(self._peer(change))
            except grpc.RpcError as err:
                if not self._stop.is_set():
                    log.warning("peer service %s: %s: %s", self.address, err.code().name, err.details())
            except PeerSpecError as err:
                log.warning("peer service %s sent a bad address: %s", self.address, err)
            finally:
                channel.close()
            self._stop.wait(self._backoff.next_delay())

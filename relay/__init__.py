"""The relay: one Observer API (:4245) for every node collector, live and from storage."""

from relay.core import Relay, RelayOptions
from relay.discovery import PeerWatcher, parse_peer, peers_from_lab
from relay.node import Peer
from relay.tls import TLSError, TLSFiles

__all__ = ["Peer", "PeerWatcher", "Relay", "RelayOptions", "TLSError", "TLSFiles", "create_server",
           "parse_peer", "peers_from_lab"]


def __getattr__(name: str):
    # The gRPC services import collector.filters; loaded on first use so `import relay` stays light.
    if name == "create_server":
        from relay.service import create_server
        return create_server
    raise AttributeError(name)

"""The relay: one Observer API (:4245) for every node collector, live and from storage."""

from relay.core import Relay, RelayOptions
from relay.discovery import PeerWatcher, parse_peer, peers_from_lab
from relay.node import Peer
from relay.service import create_server

__all__ = ["Peer", "PeerWatcher", "Relay", "RelayOptions", "create_server", "parse_peer", "peers_from_lab"]

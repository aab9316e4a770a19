"""The single-machine lab: network-namespace "pods" made like a CNI makes them, with real traffic."""

from lab.endpoints import WorldHost, endpoints_from_state, world_hosts_from_state
from lab.manager import down, down_all, status, up
from lab.state import DEFAULT_STATE_DIR, HostState, LabState, load_state, state_path, watch_lock, watched
from lab.topology import Topology, TopologyError, load_topology, parse_topology

__all__ = [
    "DEFAULT_STATE_DIR", "HostState", "LabState", "Topology", "TopologyError", "WorldHost", "down",
    "down_all", "endpoints_from_state", "load_state", "load_topology", "parse_topology", "state_path",
    "status", "up", "watch_lock", "watched", "world_hosts_from_state",
]

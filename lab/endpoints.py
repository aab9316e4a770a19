"""The lab's pods as collector Endpoints: how `flowscope collector` finds them with no extra flags."""

from __future__ import annotations

from dataclasses import dataclass

from common.endpoints import Endpoint
from lab.state import HostState, LabState, load_state, state_files


@dataclass(frozen=True)
class WorldHost:
    """An outside host of the lab: not a pod, so flows to it carry reserved:world."""

    name: str
    ips: tuple[str, ...]
    dns_names: tuple[str, ...]
    device: str
    ifindex: int


def _states(path: str | None) -> list[LabState]:
    """One lab (path given) or every lab recorded in the default state directory."""
    return [load_state(path)] if path else [load_state(p) for p in state_files()]


def endpoint_of(host: HostState) -> Endpoint:
    return Endpoint(
        namespace=host.namespace, pod_name=host.name, ips=(host.ipv4, host.ipv6),
        labels=dict(host.labels), namespace_labels=dict(host.namespace_labels),
        workload_name=host.workload_name, workload_kind=host.workload_kind,
        service_account=host.service_account, node_name=host.node, device=host.device,
        ifindex=host.ifindex, endpoint_id=host.ifindex)


def endpoints_from_state(path: str | None = None, node_name: str | None = None) -> list[Endpoint]:
    """Pods of the lab at `path` (default: every lab in lab.state.DEFAULT_STATE_DIR); with node_name,
    only the pods the topology puts on that node (one collector per node on one machine)."""
    return [endpoint_of(h) for state in _states(path) for h in state.pods
            if node_name is None or h.node == node_name]


def world_hosts_from_state(path: str | None = None) -> list[WorldHost]:
    return [WorldHost(name=h.name, ips=(h.ipv4, h.ipv6), dns_names=tuple(h.dns_names), device=h.device,
                      ifindex=h.ifindex) for state in _states(path) for h in state.world]

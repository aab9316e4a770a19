"""Who is behind an address: a pod's Endpoint message, or a reserved identity (world, host).

Built once per (address, endpoint version) and copied into each flow: the per-event cost is a dict
lookup and a message copy, not label sorting and hashing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from common.endpoints import Endpoint, EndpointSource
from collector.identity import RESERVED_HOST, RESERVED_WORLD, IdentityAllocator
from proto.flow import flow_pb2

_CACHE_LIMIT = 65536


@dataclass(frozen=True, slots=True)
class Peer:
    """What the decoder needs about one address."""

    endpoint: flow_pb2.Endpoint
    is_pod: bool
    identity: int
    service: flow_pb2.Service | None = None  # when the address is a service's cluster IP


def endpoint_message(ep: Endpoint, identity: int) -> flow_pb2.Endpoint:
    msg = flow_pb2.Endpoint(ID=ep.endpoint_id, identity=identity, namespace=ep.namespace,
                            labels=ep.hubble_labels(), pod_name=ep.pod_name, cluster_name=ep.cluster)
    if ep.workload_name:
        msg.workloads.add(name=ep.workload_name, kind=ep.workload_kind)
    return msg


class Enricher:
    """Address -> Peer, cached. Call `invalidate()` when the endpoint source changed."""

    def __init__(self, endpoints: EndpointSource | None, identities: IdentityAllocator,
                 host_ips: Iterable[str] = ()) -> None:
        self._endpoints = endpoints
        self._identities = identities
        self._host_ips = frozenset(host_ips)
        self._cache: dict[str, Peer] = {}
        self._world = Peer(flow_pb2.Endpoint(identity=RESERVED_WORLD, labels=["reserved:world"]),
                           False, RESERVED_WORLD)
        self._host = Peer(flow_pb2.Endpoint(identity=RESERVED_HOST, labels=["reserved:host"]),
                          False, RESERVED_HOST)

    def set_host_ips(self, host_ips: Iterable[str]) -> None:
        self._host_ips = frozenset(host_ips)
        self.invalidate()

    def invalidate(self) -> None:
        self._cache = {}

    def peer(self, ip: str) -> Peer:
        found = self._cache.get(ip)
        if found is None:
            found = self._resolve(ip)
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache = {}
            self._cache[ip] = found
        return found

    def _resolve(self, ip: str) -> Peer:
        ep = self._endpoints.endpoint_by_ip(ip) if self._endpoints is not None else None
        if ep is None:
            service = self._endpoints.service_by_ip(ip) if self._endpoints is not None else None
            if service is not None:
                # A cluster IP before kube-proxy's translation: named by its service, as Hubble does.
                return Peer(self._world.endpoint, False, RESERVED_WORLD,
                            flow_pb2.Service(name=service.name, namespace=service.namespace))
            return self._host if ip in self._host_ips else self._world
        if ep.host_network:
            return self._host
        identity = self._identities.identity_for(ep.identity_labels())
        return Peer(endpoint_message(ep, identity), True, identity)

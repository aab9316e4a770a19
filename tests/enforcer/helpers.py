"""Peers and flows for enforcer tests: the demo shop's pods as PeerInfo and as flow_pb2.Flow."""

from __future__ import annotations

from common.endpoints import Endpoint
from enforcer.peers import from_endpoint
from proto.flow import flow_pb2

SHOP = {"team": "shop"}
DATA = {"team": "data"}

ENDPOINTS = {
    "frontend": Endpoint("shop", "frontend-7d9f-abcde", ("10.244.0.10",), {"app": "frontend", "tier": "web",
                         "pod-template-hash": "7d9f"}, SHOP, "frontend", "Deployment", "frontend"),
    "backend": Endpoint("shop", "backend-55c-x1", ("10.244.0.11",), {"app": "backend", "tier": "api",
                        "pod-template-hash": "55c"}, SHOP, "backend", "Deployment", "backend"),
    "backend2": Endpoint("shop", "backend-55c-x2", ("10.244.0.12",), {"app": "backend", "tier": "api",
                         "pod-template-hash": "55c"}, SHOP, "backend", "Deployment", "backend"),
    "database": Endpoint("data", "database-0", ("10.244.0.13",), {"app": "database", "tier": "db",
                         "statefulset.kubernetes.io/pod-name": "database-0"}, DATA, "database", "StatefulSet",
                         "database"),
    "coredns": Endpoint("kube-system", "coredns-1", ("10.244.0.2",), {"k8s-app": "kube-dns"}, {}, "coredns",
                        "Deployment", "coredns"),
    "intruder": Endpoint("shop", "intruder", ("10.244.0.66",), {"app": "intruder"}, SHOP, "intruder", "Pod"),
}
PEERS = {name: from_endpoint(ep) for name, ep in ENDPOINTS.items()}


def flow_endpoint(ep: Endpoint) -> flow_pb2.Endpoint:
    out = flow_pb2.Endpoint(namespace=ep.namespace, pod_name=ep.pod_name, labels=ep.hubble_labels())
    if ep.workload_name:
        out.workloads.add(name=ep.workload_name, kind=ep.workload_kind)
    return out


def make_flow(src: str, dst: str, port: int, proto: str = "TCP", *, dst_ip: str | None = None,
              names=(), http: tuple[str, str] | None = None, dns_query: str | None = None,
              time_s: int = 1_700_000_000, verdict=flow_pb2.FORWARDED, reply: bool = False) -> flow_pb2.Flow:
    """A flow from pod `src` to pod `dst` (or "world" at dst_ip), like the collector makes it."""
    flow = flow_pb2.Flow(verdict=verdict, Type=flow_pb2.L3_L4)
    flow.time.seconds = time_s
    source = ENDPOINTS[src]
    flow.source.CopyFrom(flow_endpoint(source))
    flow.IP.source = source.ips[0]
    flow.IP.ipVersion = flow_pb2.IPv4
    if dst == "world":
        flow.destination.labels.append("reserved:world")
        flow.IP.destination = dst_ip or "198.51.100.10"
        flow.destination_names.extend(names)
    else:
        flow.destination.CopyFrom(flow_endpoint(ENDPOINTS[dst]))
        flow.IP.destination = ENDPOINTS[dst].ips[0]
    getattr(flow.l4, proto).destination_port = port
    getattr(flow.l4, proto).source_port = 40000
    flow.is_reply.value = reply
    flow.traffic_direction = flow_pb2.EGRESS
    if http:
        flow.Type = flow_pb2.L7
        flow.l7.type = flow_pb2.REQUEST
        flow.l7.http.method, path = http
        flow.l7.http.url = f"http://{dst}:{port}{path}"
        flow.l7.http.protocol = "HTTP/1.1"
    if dns_query:
        flow.Type = flow_pb2.L7
        flow.l7.type = flow_pb2.REQUEST
        flow.l7.dns.query = dns_query
    return flow

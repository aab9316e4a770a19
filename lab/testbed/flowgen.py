"""Flows like the demo lab's (deploy/lab/demo.yaml) makes, built from collector Endpoints the way the
collector enriches them: frontend -> backend HTTP (200, 500 on /api/error, 404 on /missing),
frontend -> api.example.com (world, named by DNS), backend -> database redis, DNS to coredns (with an
NXDOMAIN), and frontend -> database dropped by policy. `synthetic_flows` scales the same shapes to
many workloads for the benchmark.
"""

from __future__ import annotations

import itertools
import uuid as uuid_mod

from common.endpoints import Endpoint
from proto.flow import flow_pb2

NS = 1_000_000_000


def _ep(namespace: str, pod: str, ip: str, workload: str, kind: str, labels: dict, identity: int) -> tuple:
    e = Endpoint(namespace=namespace, pod_name=pod, ips=(ip,), labels=labels, workload_name=workload,
                 workload_kind=kind)
    return e, identity


PODS = {
    "coredns": _ep("kube-system", "coredns-5d78c9869d-abcde", "10.244.0.10", "coredns", "Deployment",
                   {"k8s-app": "kube-dns"}, 40001),
    "frontend": _ep("shop", "frontend-7c9d8f-x2x4q", "10.244.0.11", "frontend", "Deployment",
                    {"app": "frontend", "tier": "web"}, 40002),
    "backend-0": _ep("shop", "backend-6b5f7d-k8s2a", "10.244.0.12", "backend", "Deployment",
                     {"app": "backend", "tier": "api"}, 40003),
    "backend-1": _ep("shop", "backend-6b5f7d-p9q7z", "10.244.0.13", "backend", "Deployment",
                     {"app": "backend", "tier": "api"}, 40003),
    "database": _ep("data", "database-0", "10.244.0.14", "database", "StatefulSet",
                    {"app": "database", "tier": "db"}, 40004),
}
WORLD_IP, WORLD_NAME = "198.51.100.10", "api.example.com"
# (path, status, latency ms) of the frontend's loop
HTTP_CALLS = (("/api/users", 200, 4), ("/api/orders", 200, 7), ("/api/error", 500, 2), ("/missing", 404, 1))


def endpoint_pb(ep: Endpoint, identity: int) -> flow_pb2.Endpoint:
    out = flow_pb2.Endpoint(identity=identity, namespace=ep.namespace, pod_name=ep.pod_name,
                            cluster_name=ep.cluster, labels=ep.hubble_labels())
    if ep.workload_name:
        out.workloads.add(name=ep.workload_name, kind=ep.workload_kind)
    return out


def world_pb() -> flow_pb2.Endpoint:
    return flow_pb2.Endpoint(identity=2, labels=["reserved:world"])


class FlowMaker:
    def __init__(self, node: str = "lab-node") -> None:
        self.node = node
        self.ports = itertools.count(40000)

    def flow(self, t_ns: int, src, dst, sport: int, dport: int, proto: str = "TCP",
             verdict: int = flow_pb2.FORWARDED, reply: bool = False, l7: flow_pb2.Layer7 | None = None,
             src_names=(), dst_names=(), drop_reason: int = 0, size: int = 600) -> flow_pb2.Flow:
        (src_pb, src_ip), (dst_pb, dst_ip) = src, dst
        f = flow_pb2.Flow(uuid=str(uuid_mod.uuid4()), node_name=self.node, verdict=verdict,
                          Type=flow_pb2.L7 if l7 else flow_pb2.L3_L4,
                          traffic_direction=flow_pb2.INGRESS if reply else flow_pb2.EGRESS,
                          source=src_pb, destination=dst_pb, source_names=list(src_names),
                          destination_names=list(dst_names), drop_reason_desc=drop_reason)
        f.time.FromNanoseconds(t_ns)
        f.IP.source, f.IP.destination, f.IP.ipVersion = src_ip, dst_ip, flow_pb2.IPv4
        layer4 = f.l4.TCP if proto == "TCP" else f.l4.UDP
        layer4.source_port, layer4.destination_port = sport, dport
        if proto == "TCP":
            if reply:
                layer4.flags.SYN = layer4.flags.ACK = True
            else:
                layer4.flags.SYN = True
        f.is_reply.value = reply
        if l7 is not None:
            f.l7.CopyFrom(l7)
        f.counters.packets_forward, f.counters.bytes_forward = 4, size
        f.Summary = f"{proto} Flags" if not l7 else "L7"
        return f

    def http(self, t_ns: int, client, server, dport: int, path: str, code: int, latency_ms: int,
             host: str, server_names=()) -> list[flow_pb2.Flow]:
        sport = next(self.ports)
        url = f"http://{host}:{dport}{path}" if dport != 80 else f"http://{host}{path}"
        request = flow_pb2.Layer7(type=flow_pb2.REQUEST, http=flow_pb2.HTTP(method="GET", url=url,
                                                                             protocol="HTTP/1.1"))
        response = flow_pb2.Layer7(type=flow_pb2.RESPONSE, latency_ns=latency_ms * 1_000_000,
                                   http=flow_pb2.HTTP(code=code, method="GET", url=url, protocol="HTTP/1.1"))
        return [self.flow(t_ns, client, server, sport, dport, dst_names=server_names),
                self.flow(t_ns + 1000, server, client, dport, sport, reply=True, src_names=server_names),
                self.flow(t_ns + 2000, client, server, sport, dport, l7=request, dst_names=server_names),
                self.flow(t_ns + 2000 + latency_ms * 1_000_000, server, client, dport, sport, reply=True,
                          l7=response, src_names=server_names)]

    def dns(self, t_ns: int, client, server, query: str, rcode: int = 0) -> list[flow_pb2.Flow]:
        sport = next(self.ports)
        q = flow_pb2.Layer7(type=flow_pb2.REQUEST, dns=flow_pb2.DNS(query=query, qtypes=["A"]))
        r = flow_pb2.Layer7(type=flow_pb2.RESPONSE, latency_ns=300_000,
                            dns=flow_pb2.DNS(query=query, qtypes=["A"], rcode=rcode,
                                             ips=[] if rcode else ["10.96.0.20"]))
        return [self.flow(t_ns, client, server, sport, 53, "UDP", l7=q),
                self.flow(t_ns + 300_000, server, client, 53, sport, "UDP", reply=True, l7=r)]

    def tcp(self, t_ns: int, client, server, dport: int) -> list[flow_pb2.Flow]:
        sport = next(self.ports)
        return [self.flow(t_ns, client, server, sport, dport),
                self.flow(t_ns + 500, server, client, dport, sport, reply=True)]


def _peer(name: str):
    ep, identity = PODS[name]
    return endpoint_pb(ep, identity), ep.ips[0]


def demo_flows(start_ns: int, rounds: int, interval_s: float = 2.0, node: str = "lab-node") -> list[flow_pb2.Flow]:
    """`rounds` loops of the demo's traffic, one every `interval_s` from `start_ns`."""
    m = FlowMaker(node)
    coredns, frontend, database = _peer("coredns"), _peer("frontend"), _peer("database")
    backends = [_peer("backend-0"), _peer("backend-1")]
    world = (world_pb(), WORLD_IP)
    out: list[flow_pb2.Flow] = []
    for r in range(rounds):
        t = start_ns + int(r * interval_s * NS)
        backend = backends[r % 2]
        out += m.dns(t, frontend, coredns, "backend.shop.svc.cluster.local.")
        for i, (path, code, ms) in enumerate(HTTP_CALLS):
            out += m.http(t + (i + 1) * 10_000_000, frontend, backend, 8080, path, code, ms, "backend")
        out += m.dns(t + 60_000_000, frontend, coredns, "api.example.com.")
        out += m.http(t + 70_000_000, frontend, world, 80, "/", 200, 12, WORLD_NAME, [WORLD_NAME])
        out += m.dns(t + 80_000_000, backend, coredns, "database.data.svc.cluster.local.")
        out += m.tcp(t + 90_000_000, backend, database, 6379)
        if r % 5 == 0:
            out += m.dns(t + 95_000_000, frontend, coredns, "nope.shop.svc.cluster.local.", rcode=3)
            out.append(m.flow(t + 99_000_000, frontend, database, next(m.ports), 6379,
                              verdict=flow_pb2.DROPPED, drop_reason=flow_pb2.POLICY_DENIED))
    return out


def legacy_flows(start_ns: int, rounds: int) -> list[flow_pb2.Flow]:
    """An older conversation only the past has: backend -> database on port 5432 (an old Postgres)."""
    m = FlowMaker()
    backend, database = _peer("backend-0"), _peer("database")
    out = []
    for r in range(rounds):
        out += m.tcp(start_ns + r * 10 * NS, backend, database, 5432)
    return out


def synthetic_flows(start_ns: int, count: int, workloads: int = 500, namespaces: int = 25,
                    edges: int = 5000, span_s: int = 3600, seed: int = 1):
    """`count` flows over `edges` client -> server pairs among `workloads` workloads in `namespaces`,
    spread over `span_s` seconds; yields lists of 10,000 flows (for a FlowWriter)."""
    import random
    rng = random.Random(seed)
    pods = []
    for i in range(workloads):
        ns = f"ns-{i % namespaces:02d}"
        ep = Endpoint(namespace=ns, pod_name=f"wl-{i:03d}-0", ips=(f"10.{100 + i // 250}.{i % 250}.1",),
                      labels={"app": f"wl-{i:03d}"}, workload_name=f"wl-{i:03d}", workload_kind="Deployment")
        pods.append((endpoint_pb(ep, 50000 + i), ep.ips[0]))
    pairs = [(rng.randrange(workloads), rng.randrange(workloads), rng.choice((80, 443, 8080, 6379, 5432)))
             for _ in range(edges)]
    m = FlowMaker("bench-node")
    batch = []
    for n in range(count):
        a, b, port = pairs[n % edges]
        t = start_ns + (n * span_s * NS) // max(count, 1)
        verdict = flow_pb2.DROPPED if n % 97 == 0 else flow_pb2.FORWARDED
        batch.append(m.flow(t, pods[a], pods[b], 30000 + n % 30000, port, verdict=verdict,
                            drop_reason=flow_pb2.POLICY_DENIED if verdict == flow_pb2.DROPPED else 0))
        if len(batch) == 10_000:
            yield batch
            batch = []
    if batch:
        yield batch
